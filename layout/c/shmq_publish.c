/*
 * shmq_publish LOCATION COUNT SIZE|MIN-MAX
 *
 * Attaches the publisher role of an existing pub/sub queue (LOCATION: shm
 * NAME, shm:NAME, file:PATH or fd:N) and publishes COUNT messages following
 * payload.h's convention with each message's sequence number in the queue
 * as its number, alternating the copying send with reserve/commit batches
 * (whose first reservation waits for room). Prints "messages=N bytes=B
 * crc32c=HEX" (CRC-32C of the payloads in order), then "first=F next=S"
 * (the sequence numbers of its first message and of the one after its
 * last). SHMQ_TIMEOUT_MS bounds every wait; with SHMQ_PAUSE set it sleeps
 * 20 ms every 100 messages, so that subscribers park; SHMQ_HANG_AFTER and
 * SHMQ_FORK_HOLDER (payload.h) stop it, attached, after committing that
 * many messages, for the crash tests.
 */
#include "payload.h"

int main(int argc, char **argv)
{
	uint64_t count;
	struct size_spec sp;
	if (argc != 4 || parse_u64(argv[2], &count) || parse_size_spec(argv[3], &sp)) {
		fprintf(stderr, "usage: %s LOCATION COUNT SIZE|MIN-MAX\n", argv[0]);
		return 2;
	}
	int64_t timeout = timeout_ns_from_env();
	int pause = getenv("SHMQ_PAUSE") != NULL;
	shmq_segment seg;
	open_queue(argv[1], SHMQ_KIND_PUBSUB, timeout, sp.max, &seg);
	shmq_pubsub_publisher p;
	int err = shmq_pubsub_publisher_open(&seg, &p);
	if (err)
		die("attach publisher", err);
	unsigned char *buf = malloc(sp.max);
	if (!buf)
		return 1;
	uint32_t crc = 0;
	uint64_t first = p.seq, bytes = 0, hang_at = hang_after();
	for (uint64_t i = 0; i < count;) {
		if (i >= hang_at)
			hang(); /* everything before i is committed */
		if (pause && i % 100 == 99)
			shmq__sleep_ns(20000000);
		if ((i / 64) % 2 == 0) {
			uint64_t seq = p.seq;
			size_t n = size_for(&sp, seq);
			fill(buf, n, seq);
			if ((err = shmq_pubsub_send(&p, buf, n, timeout)))
				die("send", err);
			crc = shmq_crc32c(crc, buf, n);
			bytes += n;
			i++;
			continue;
		}
		/* reserve/commit: fill up to 16 records in place, publish once */
		for (int batch = 0; i < count && i < hang_at && batch < 16; batch++) {
			uint64_t seq = p.seq;
			size_t n = size_for(&sp, seq);
			void *b;
			err = batch == 0 ? shmq_pubsub_reserve_wait(&p, n, &b, timeout) : shmq_pubsub_reserve(&p, n, &b);
			if (err == SHMQ_EFULL && batch > 0)
				break;
			if (err)
				die("reserve", err);
			fill(b, n, seq);
			crc = shmq_crc32c(crc, b, n);
			bytes += n;
			i++;
		}
		shmq_pubsub_commit(&p);
	}
	printf("messages=%llu bytes=%llu crc32c=%08x\n", (unsigned long long)count, (unsigned long long)bytes, crc);
	printf("first=%llu next=%llu\n", (unsigned long long)first, (unsigned long long)p.seq);
	fflush(stdout);
	free(buf);
	if ((err = shmq_pubsub_publisher_close(&p)))
		die("detach", err);
	shmq_close(&seg);
	return 0;
}
