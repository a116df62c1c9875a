/*
 * shmq_consume LOCATION COUNT SIZE
 *
 * Attaches the consumer role of an existing SPSC queue and receives COUNT
 * messages, alternating the copying recv with peek/release batches, and
 * checks every message's length, sequence number and bytes against the
 * payload convention of payload.h. Prints "messages=N bytes=B crc32c=HEX".
 * Exits 1 with a message on stderr on any error (corrupt records included).
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
	shmq_spsc_consumer c;
	int err = shmq_spsc_consumer_open(&seg, &c);
	if (err)
		die("attach consumer", err);
	size_t cap = seg.hdr.max_message;
	unsigned char *buf = malloc(cap);
	if (!buf)
		return 1;
	uint32_t crc = 0;
	uint64_t bytes = 0;
	for (uint64_t seq = 0; seq < count;) {
		size_t n;
		if ((seq / 64) % 2 == 0) {
			if ((err = shmq_spsc_recv(&c, buf, cap, &n, timeout)))
				die("recv", err);
			check_message(buf, n, seq, &sp);
			crc = shmq_crc32c(crc, buf, n);
			bytes += n;
			seq++;
			continue;
		}
		/* peek up to 16 messages in place, then release them together */
		int batch = 0;
		while (seq < count && batch < 16) {
			const void *m;
			err = shmq_spsc_peek(&c, &m, &n);
			if (err == SHMQ_EEMPTY)
				break;
			if (err)
				die("peek", err);
			check_message(m, n, seq, &sp);
			crc = shmq_crc32c(crc, m, n);
			bytes += n;
			seq++;
			batch++;
		}
		shmq_spsc_release(&c);
		if (batch == 0 && (err = shmq_spsc_wait_data(&c, timeout)))
			die("wait for data", err);
	}
	printf("messages=%llu bytes=%llu crc32c=%08x\n", (unsigned long long)count, (unsigned long long)bytes, crc);
	fflush(stdout);
	free(buf);
	if ((err = shmq_spsc_consumer_close(&c)))
		die("detach", err);
	shmq_close(&seg);
	return 0;
}
