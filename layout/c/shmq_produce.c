/*
 * shmq_produce LOCATION COUNT SIZE
 *
 * Attaches the producer role of an existing SPSC queue (LOCATION: shm NAME,
 * shm:NAME, file:PATH or fd:N) and sends COUNT messages following the
 * payload convention of payload.h, alternating the copying send with
 * reserve/commit batches. Prints "messages=N bytes=B crc32c=HEX", the
 * CRC-32C of the payloads in order. SHMQ_TIMEOUT_MS bounds every wait;
 * SHMQ_HANG_AFTER and SHMQ_FORK_HOLDER (payload.h) stop it, attached, after
 * committing that many messages, for the crash tests.
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
	shmq_segment seg;
	open_queue(argv[1], SHMQ_KIND_SPSC, timeout, sp.max, &seg);
	shmq_spsc_producer p;
	int err = shmq_spsc_producer_open(&seg, &p);
	if (err)
		die("attach producer", err);
	unsigned char *buf = malloc(sp.max);
	if (!buf)
		return 1;
	uint32_t crc = 0;
	uint64_t bytes = 0, hang_at = hang_after();
	for (uint64_t seq = 0; seq < count;) {
		if (seq >= hang_at)
			hang(); /* everything before seq is committed */
		size_t n = size_for(&sp, seq);
		if ((seq / 64) % 2 == 0) {
			/* copying send */
			fill(buf, n, seq);
			if ((err = shmq_spsc_send(&p, buf, n, timeout)))
				die("send", err);
			crc = shmq_crc32c(crc, buf, n);
			bytes += n;
			seq++;
			continue;
		}
		/* reserve/commit: fill up to 16 records in place, publish once */
		int batch = 0;
		while (seq < count && seq < hang_at && batch < 16) {
			n = size_for(&sp, seq);
			void *b;
			err = shmq_spsc_reserve(&p, n, &b);
			if (err == SHMQ_EFULL)
				break;
			if (err)
				die("reserve", err);
			fill(b, n, seq);
			crc = shmq_crc32c(crc, b, n);
			bytes += n;
			seq++;
			batch++;
		}
		shmq_spsc_commit(&p);
		if (batch == 0 && (err = shmq_spsc_wait_space(&p, n, timeout)))
			die("wait for space", err);
	}
	printf("messages=%llu bytes=%llu crc32c=%08x\n", (unsigned long long)count, (unsigned long long)bytes, crc);
	fflush(stdout);
	free(buf);
	if ((err = shmq_spsc_producer_close(&p)))
		die("detach", err);
	shmq_close(&seg);
	return 0;
}
