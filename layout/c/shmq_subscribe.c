/*
 * shmq_subscribe LOCATION COUNT SIZE|MIN-MAX next|latest|oldest
 *
 * Subscribes to an existing pub/sub queue (LOCATION: shm NAME, shm:NAME,
 * file:PATH or fd:N) and receives until COUNT messages arrived or were
 * lost, or the stream ended, alternating the copying recv with
 * peek/release batches. Every message must follow payload.h's convention
 * with its sequence number in the queue as its number. A lossy queue's
 * losses are counted, and the number of the next message checked against
 * them. Prints "messages=N bytes=B crc32c=HEX" (CRC-32C of the payloads in
 * order), then "lost=L first=F next=S ended=E"; "subscribed" on stderr once
 * attached. With SHMQ_SLOW set it sleeps 1 ms every 256 messages;
 * SHMQ_HANG_AFTER and SHMQ_FORK_HOLDER (payload.h) stop it, attached,
 * after receiving that many messages, for the crash tests. Exits 1 with a
 * message on stderr on any error (a torn or corrupt message included).
 */
#include "payload.h"

int main(int argc, char **argv)
{
	uint64_t count;
	struct size_spec sp;
	int from = -1;
	if (argc == 5)
		from = strcmp(argv[4], "next") == 0     ? SHMQ_PUBSUB_FROM_NEXT
		       : strcmp(argv[4], "latest") == 0 ? SHMQ_PUBSUB_FROM_LATEST
		       : strcmp(argv[4], "oldest") == 0 ? SHMQ_PUBSUB_FROM_OLDEST
							: -1;
	if (from < 0 || parse_u64(argv[2], &count) || parse_size_spec(argv[3], &sp)) {
		fprintf(stderr, "usage: %s LOCATION COUNT SIZE|MIN-MAX next|latest|oldest\n", argv[0]);
		return 2;
	}
	int64_t timeout = timeout_ns_from_env();
	int slow = getenv("SHMQ_SLOW") != NULL;

	shmq_segment seg;
	open_queue(argv[1], SHMQ_KIND_PUBSUB, timeout, sp.max, &seg);
	shmq_pubsub_subscriber sub;
	int err = shmq_pubsub_subscriber_open(&seg, from, &sub);
	if (err)
		die("subscribe", err);
	fprintf(stderr, "subscribed\n");
	int lossy = sub.q.lossy;
	uint64_t first = sub.seq;
	size_t cap = seg.hdr.max_message;
	unsigned char *buf = malloc(cap);
	if (!buf)
		return 1;
	uint32_t crc = 0;
	uint64_t got = 0, bytes = 0, hang_at = hang_after();
	int ended = 0;
	while (got + sub.lost < count && !ended) {
		if (got >= hang_at)
			hang(); /* holding everything from the last release on */
		if (slow && got % 256 == 255)
			shmq__sleep_ns(1000000);
		size_t n;
		uint64_t seq, want = sub.seq;
		if ((got / 64) % 2 == 0) {
			err = shmq_pubsub_recv(&sub, buf, cap, &n, &seq, timeout);
			if (err == SHMQ_ELOST) {
				if (sub.seq != want + sub.last_lost) {
					fprintf(stderr, "lost %llu after %llu, resumes at %llu\n", (unsigned long long)sub.last_lost,
						(unsigned long long)want, (unsigned long long)sub.seq);
					return 1;
				}
				continue;
			}
			if (err == SHMQ_EEOF) {
				ended = 1;
				continue;
			}
			if (err)
				die("recv", err);
			check_message(buf, n, seq, &sp);
			crc = shmq_crc32c(crc, buf, n);
			bytes += n;
			got++;
			continue;
		}
		/* Peek up to 16 messages in place, check them, and keep them only
		 * if the release confirms that none was overwritten meanwhile. */
		uint64_t bgot = 0, bbytes = 0, head = sub.seq;
		uint32_t bcrc = crc;
		while (got + bgot + sub.lost < count && bgot < 16) {
			const void *m;
			err = shmq_pubsub_peek(&sub, &m, &n, &seq);
			if (err == SHMQ_EEMPTY || err == SHMQ_ELOST)
				break;
			if (err)
				die("peek", err);
			if (lossy) {
				/* A lossy view may change under us: check a copy, and only
				 * after the release has confirmed it. */
				memcpy(buf, m, n);
				m = buf;
			} else {
				check_message(m, n, seq, &sp);
			}
			bcrc = shmq_crc32c(bcrc, m, n);
			bbytes += n;
			bgot++;
			if (lossy)
				break; /* one view at a time, so the copy in buf is the one checked */
		}
		if (err == SHMQ_ELOST)
			continue;
		err = shmq_pubsub_release(&sub);
		if (err == SHMQ_ELOST) {
			if (sub.seq != head + sub.last_lost) {
				fprintf(stderr, "lost %llu of a peeked batch from %llu, resumes at %llu\n",
					(unsigned long long)sub.last_lost, (unsigned long long)head, (unsigned long long)sub.seq);
				return 1;
			}
			continue; /* the views were overwritten: they count as lost */
		}
		if (err)
			die("release", err);
		if (lossy && bgot == 1)
			check_message(buf, n, seq, &sp);
		crc = bcrc;
		bytes += bbytes;
		got += bgot;
		if (bgot == 0) {
			err = shmq_pubsub_wait_data(&sub, timeout);
			if (err == SHMQ_EEOF)
				ended = 1;
			else if (err)
				die("wait for data", err);
		}
	}
	printf("messages=%llu bytes=%llu crc32c=%08x\n", (unsigned long long)got, (unsigned long long)bytes, crc);
	printf("lost=%llu first=%llu next=%llu ended=%d\n", (unsigned long long)sub.lost, (unsigned long long)first,
	       (unsigned long long)sub.seq, ended);
	fflush(stdout);
	free(buf);
	if ((err = shmq_pubsub_subscriber_close(&sub)))
		die("unsubscribe", err);
	shmq_close(&seg);
	return 0;
}
