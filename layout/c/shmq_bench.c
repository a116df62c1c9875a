/*
 * shmq_bench produce LOCATION COUNT
 * shmq_bench consume LOCATION COUNT
 *
 * Streams COUNT 64-byte messages through an existing SPSC queue for the
 * throughput benchmark (interop BenchmarkStream64). Message i holds i as a
 * little-endian u64 in its first 8 bytes; the consumer checks it. Each side
 * prints "elapsed_ns=N": from its first to its last message (the
 * consumer's figure is the stream's throughput, free of process start-up).
 */
#include "payload.h"

#define MSG 64

int main(int argc, char **argv)
{
	uint64_t count;
	int prod = argc == 4 && strcmp(argv[1], "produce") == 0;
	int cons = argc == 4 && strcmp(argv[1], "consume") == 0;
	if (!(prod || cons) || parse_u64(argv[3], &count) || count == 0) {
		fprintf(stderr, "usage: %s produce|consume LOCATION COUNT\n", argv[0]);
		return 2;
	}
	int64_t timeout = timeout_ns_from_env();
	shmq_open_options opts = { timeout, 0 };
	shmq_segment seg;
	int err = shmq_open(argv[2], SHMQ_KIND_SPSC, &opts, &seg);
	if (err)
		die("open", err);
	unsigned char buf[MSG] = { 0 };
	int64_t first = 0;
	if (prod) {
		shmq_spsc_producer p;
		if ((err = shmq_spsc_producer_open(&seg, &p)))
			die("attach producer", err);
		first = shmq__now_ns(CLOCK_MONOTONIC);
		for (uint64_t i = 0; i < count; i++) {
			memcpy(buf, &i, 8);
			if ((err = shmq_spsc_send(&p, buf, MSG, timeout)))
				die("send", err);
		}
		shmq_spsc_producer_close(&p);
	} else {
		shmq_spsc_consumer c;
		if ((err = shmq_spsc_consumer_open(&seg, &c)))
			die("attach consumer", err);
		for (uint64_t i = 0; i < count; i++) {
			size_t n;
			if ((err = shmq_spsc_recv(&c, buf, sizeof buf, &n, timeout)))
				die("recv", err);
			uint64_t got;
			memcpy(&got, buf, 8);
			if (n != MSG || got != i) {
				fprintf(stderr, "message %llu: %zu bytes, seq %llu\n", (unsigned long long)i, n,
					(unsigned long long)got);
				return 1;
			}
			if (i == 0)
				first = shmq__now_ns(CLOCK_MONOTONIC);
		}
		shmq_spsc_consumer_close(&c);
	}
	printf("elapsed_ns=%lld\n", (long long)(shmq__now_ns(CLOCK_MONOTONIC) - first));
	shmq_close(&seg);
	return 0;
}
