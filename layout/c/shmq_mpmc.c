/*
 * shmq_mpmc produce LOCATION ID COUNT SIZE
 * shmq_mpmc consume LOCATION
 *
 * A peer for the MPMC interop tests (interop/mpmc_test.go).
 *
 * produce attaches a producer to an existing MPMC queue and sends COUNT
 * messages tagged with producer ID (alternating the copying send with
 * reserve/commit), then prints "messages=N entry=I".
 *
 * consume attaches a consumer and receives (alternating the copying recv
 * with peek/release) until it takes a stop message, checking every
 * message's checksum and that each producer's sequence numbers increase.
 * It prints one line "run ID FIRST LAST" per run of consecutive sequence
 * numbers of one producer, then "messages=N entry=I".
 *
 * Message format (n >= 16 bytes, all little-endian): u64 seq at 0, u32
 * producer id at 8, byte(seq ^ id*13 ^ i*7) at 12 <= i < n-4, and the
 * CRC-32C of bytes [0, n-4) at n-4. A stop message has id 0xFFFFFFFF.
 * Message seq of producer ID has size_for(SIZE, seq) bytes (payload.h).
 *
 * SHMQ_TIMEOUT_MS bounds every wait. SHMQ_HANG_AFTER=K (crash tests): after
 * K messages, produce reserves a slot, consume peeks a message, prints
 * "hanging", and sleeps until killed.
 */
#include "payload.h"

#include <signal.h>

#define STOP_ID 0xFFFFFFFFu

static void put32(unsigned char *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t get64(const unsigned char *b)
{
	return (uint64_t)get32(b) | (uint64_t)get32(b + 4) << 32;
}

static void make(unsigned char *b, size_t n, uint32_t id, uint64_t seq)
{
	put32(b, (uint32_t)seq);
	put32(b + 4, (uint32_t)(seq >> 32));
	put32(b + 8, id);
	for (size_t i = 12; i < n - 4; i++)
		b[i] = (unsigned char)((unsigned char)seq ^ (unsigned char)(id * 13) ^ (unsigned char)(i * 7));
	put32(b + n - 4, shmq_crc32c(0, b, n - 4));
}

static void hang(void)
{
	printf("hanging\n");
	fflush(stdout);
	for (;;)
		pause();
}

static uint64_t hang_after(void)
{
	const char *s = getenv("SHMQ_HANG_AFTER");
	uint64_t k;
	if (s && parse_u64(s, &k) == 0)
		return k;
	return UINT64_MAX;
}

static int produce(shmq_segment *seg, uint32_t id, uint64_t count, const struct size_spec *sp, int64_t timeout)
{
	shmq_mpmc_producer p;
	int err = shmq_mpmc_producer_open(seg, &p);
	if (err)
		die("attach producer", err);
	unsigned char *buf = malloc(sp->max);
	if (!buf)
		return 1;
	uint64_t hang_at = hang_after();
	for (uint64_t seq = 0; seq < count; seq++) {
		size_t n = size_for(sp, seq);
		if (seq == hang_at) {
			void *b;
			while ((err = shmq_mpmc_reserve(&p, n, &b)) == SHMQ_EFULL)
				shmq__sleep_ns(100000);
			if (err)
				die("reserve", err);
			make(b, n, id, seq); /* written, never committed */
			hang();
		}
		if (seq % 128 < 64) {
			make(buf, n, id, seq);
			if ((err = shmq_mpmc_send(&p, buf, n, timeout)))
				die("send", err);
			continue;
		}
		void *b;
		int64_t deadline = shmq__deadline(timeout);
		while ((err = shmq_mpmc_reserve(&p, n, &b)) == SHMQ_EFULL) {
			struct shmq__mpmc_moved m = { p.q.enq, shmq__mpmc_seq(&p.q, p.last_pos), p.last_pos, p.last_word };
			if ((err = shmq__mpmc_wait(&p.q.producer_wake, &p.e, deadline, shmq__mpmc_moved, &m)))
				die("wait for space", err);
		}
		if (err)
			die("reserve", err);
		make(b, n, id, seq);
		if ((err = shmq_mpmc_commit(&p)))
			die("commit", err);
	}
	printf("messages=%llu entry=%d\n", (unsigned long long)count, p.e.index);
	fflush(stdout);
	free(buf);
	if ((err = shmq_mpmc_producer_close(&p)))
		die("detach", err);
	return 0;
}

struct run {
	uint32_t id;
	uint64_t first, last;
};

static int consume(shmq_segment *seg, int64_t timeout)
{
	shmq_mpmc_consumer c;
	int err = shmq_mpmc_consumer_open(seg, &c);
	if (err)
		die("attach consumer", err);
	size_t cap = seg->hdr.max_message;
	unsigned char *buf = malloc(cap);
	size_t nruns = 0, maxruns = 1024;
	struct run *runs = malloc(maxruns * sizeof *runs);
	if (!buf || !runs)
		return 1;
	uint64_t total = 0, hang_at = hang_after();
	for (;;) {
		const unsigned char *m;
		size_t n;
		int peeked = total % 128 >= 64 || total == hang_at;
		if (peeked) {
			const void *v;
			int64_t deadline = shmq__deadline(timeout);
			while ((err = shmq_mpmc_peek(&c, &v, &n)) == SHMQ_EEMPTY) {
				struct shmq__mpmc_moved mv = { c.q.deq, shmq__mpmc_seq(&c.q, c.last_pos), c.last_pos,
							       c.last_word };
				if ((err = shmq__mpmc_wait(&c.q.consumer_wake, &c.e, deadline, shmq__mpmc_moved, &mv)))
					die("wait for data", err);
			}
			if (err)
				die("peek", err);
			if (total == hang_at)
				hang();
			/* copy before checking: a peer could change the slot */
			memcpy(buf, v, n);
			m = buf;
		} else {
			if ((err = shmq_mpmc_recv(&c, buf, cap, &n, timeout)))
				die("recv", err);
			m = buf;
		}
		if (n < 16 || get32(m + n - 4) != shmq_crc32c(0, m, n - 4)) {
			fprintf(stderr, "message %llu: %zu bytes, bad checksum\n", (unsigned long long)total, n);
			return 1;
		}
		uint64_t seq = get64(m);
		uint32_t id = get32(m + 8);
		if (peeked && (err = shmq_mpmc_release(&c)))
			die("release", err);
		if (id == STOP_ID)
			break;
		total++;
		/* per-producer order: sequence numbers of one producer increase */
		struct run *r = NULL;
		for (size_t i = nruns; i-- > 0;)
			if (runs[i].id == id) {
				r = &runs[i];
				break;
			}
		if (r && seq <= r->last) {
			fprintf(stderr, "producer %u: seq %llu after %llu (duplicated or reordered)\n", id,
				(unsigned long long)seq, (unsigned long long)r->last);
			return 1;
		}
		if (r && seq == r->last + 1) { /* extend the producer's latest run */
			r->last = seq;
			continue;
		}
		if (nruns == maxruns) {
			maxruns *= 2;
			struct run *nr = realloc(runs, maxruns * sizeof *runs);
			if (!nr)
				return 1;
			runs = nr;
		}
		runs[nruns].id = id;
		runs[nruns].first = runs[nruns].last = seq;
		nruns++;
	}
	for (size_t i = 0; i < nruns; i++)
		printf("run %u %llu %llu\n", runs[i].id, (unsigned long long)runs[i].first,
		       (unsigned long long)runs[i].last);
	printf("messages=%llu entry=%d\n", (unsigned long long)total, c.e.index);
	fflush(stdout);
	free(buf);
	free(runs);
	if ((err = shmq_mpmc_consumer_close(&c)))
		die("detach", err);
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t id = 0, count = 0;
	struct size_spec sp = { 16, 16 };
	int prod = argc == 6 && strcmp(argv[1], "produce") == 0;
	int cons = argc == 3 && strcmp(argv[1], "consume") == 0;
	if (!(prod || cons) ||
	    (prod && (parse_u64(argv[3], &id) || id >= STOP_ID || parse_u64(argv[4], &count) ||
		      parse_size_spec(argv[5], &sp) || sp.min < 16))) {
		fprintf(stderr, "usage: %s produce LOCATION ID COUNT SIZE|MIN-MAX (sizes >= 16)\n"
				"       %s consume LOCATION\n",
			argv[0], argv[0]);
		return 2;
	}
	int64_t timeout = timeout_ns_from_env();
	shmq_open_options opts = { timeout, 0 };
	shmq_segment seg;
	int err = shmq_open(argv[2], SHMQ_KIND_MPMC, &opts, &seg);
	if (err)
		die("open", err);
	if (sp.max > seg.hdr.max_message) {
		fprintf(stderr, "size %llu exceeds the queue's max message %u\n", (unsigned long long)sp.max,
			seg.hdr.max_message);
		return 1;
	}
	int rc = prod ? produce(&seg, (uint32_t)id, count, &sp, timeout) : consume(&seg, timeout);
	shmq_close(&seg);
	return rc;
}
