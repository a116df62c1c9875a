/*
 * shmq_mpmc produce LOCATION ID COUNT SIZE
 * shmq_mpmc consume LOCATION
 * shmq_mpmc forkconsume LOCATION WORKERS
 * shmq_mpmc forkcheck LOCATION
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
 * numbers of one producer, then "messages=N entry=I skipped=S".
 *
 * forkconsume opens the queue once, then forks WORKERS children, each of
 * which attaches a consumer through the inherited segment and runs
 * consume, prefixing its lines with "wK " (each line one write, so lines
 * of different workers do not mix); a worker first prints "attached
 * entry=I" once it holds its entry. It exits 1 if any worker failed.
 *
 * forkcheck attaches a producer (entry 0 of a fresh queue) and reserves a
 * slot, then forks. The child must get SHMQ_EFORKED from the parent's
 * producer (with the fork handler), close it without touching the queue
 * (its first call without the handler), attach a producer of its own
 * (entry 1) and send message 0 as producer ID 1; then the parent
 * commits its reservation as message 0 of producer ID 0. It prints
 * "forkcheck ok", or what went wrong (exit 1).
 *
 * Message format (n >= 16 bytes, all little-endian): u64 seq at 0, u32
 * producer id at 8, byte(seq ^ id*13 ^ i*7) at 12 <= i < n-4, and the
 * CRC-32C of bytes [0, n-4) at n-4. A stop message has id 0xFFFFFFFF.
 * Message seq of producer ID has size_for(SIZE, seq) bytes (payload.h).
 *
 * SHMQ_TIMEOUT_MS bounds every wait. Crash tests: SHMQ_HANG_AFTER=K (and
 * SHMQ_FORK_HOLDER, payload.h): after K messages, produce reserves a slot,
 * consume peeks a message, and both hang until killed.
 * SHMQ_ABANDON_AFTER=K: after K messages, produce reserves and fills a
 * slot and closes without committing it (a tombstone), and exits.
 */
#include "payload.h"

#include <stdarg.h>
#include <sys/wait.h>

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

static uint64_t env_after(const char *name)
{
	const char *s = getenv(name);
	uint64_t k;
	if (s && parse_u64(s, &k) == 0)
		return k;
	return UINT64_MAX;
}

/* Output lines, each one write(2) (atomic on a pipe below PIPE_BUF), with
 * the worker's prefix. */
static const char *line_prefix = "";

static void out(const char *fmt, ...)
{
	char buf[256];
	int n = snprintf(buf, sizeof buf, "%s", line_prefix);
	va_list ap;
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof buf - 1)
		n = (int)sizeof buf - 1;
	if (write(1, buf, (size_t)n) != n)
		exit(1);
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
	uint64_t hang_at = hang_after(), abandon_at = env_after("SHMQ_ABANDON_AFTER");
	for (uint64_t seq = 0; seq < count; seq++) {
		size_t n = size_for(sp, seq);
		if (seq == hang_at || seq == abandon_at) {
			void *b;
			if ((err = shmq_mpmc_reserve_wait(&p, n, &b, timeout)))
				die("reserve", err);
			make(b, n, id, seq); /* written, never committed */
			if (seq == hang_at)
				hang();
			/* Close turns the reservation into a tombstone. */
			out("messages=%llu entry=%d\n", (unsigned long long)seq, p.e.index);
			free(buf);
			if ((err = shmq_mpmc_producer_close(&p)))
				die("detach", err);
			return 0;
		}
		if (seq % 128 < 64) {
			make(buf, n, id, seq);
			if ((err = shmq_mpmc_send(&p, buf, n, timeout)))
				die("send", err);
			continue;
		}
		void *b;
		if ((err = shmq_mpmc_reserve_wait(&p, n, &b, timeout)))
			die("reserve", err);
		make(b, n, id, seq);
		if ((err = shmq_mpmc_commit(&p)))
			die("commit", err);
	}
	out("messages=%llu entry=%d\n", (unsigned long long)count, p.e.index);
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
	if (*line_prefix) /* a forked worker: say it holds its entry */
		out("attached entry=%d\n", c.e.index);
	size_t cap = seg->hdr.max_message;
	unsigned char *buf = malloc(cap);
	size_t nruns = 0, maxruns = 1024;
	struct run *runs = malloc(maxruns * sizeof *runs);
	if (!buf || !runs)
		return 1;
	uint64_t total = 0, hang_at = hang_after();
	for (;;) {
		const unsigned char *m;
		size_t n = 0;
		int peeked = total % 128 >= 64 || total == hang_at;
		if (peeked) {
			const void *v;
			if ((err = shmq_mpmc_peek_wait(&c, &v, &n, timeout)))
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
			fprintf(stderr, "%smessage %llu: %zu bytes, bad checksum\n", line_prefix, (unsigned long long)total, n);
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
			fprintf(stderr, "%sproducer %u: seq %llu after %llu (duplicated or reordered)\n", line_prefix, id,
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
		out("run %u %llu %llu\n", runs[i].id, (unsigned long long)runs[i].first,
		    (unsigned long long)runs[i].last);
	out("messages=%llu entry=%d skipped=%llu\n", (unsigned long long)total, c.e.index,
	    (unsigned long long)c.tombstones);
	free(buf);
	free(runs);
	if ((err = shmq_mpmc_consumer_close(&c)))
		die("detach", err);
	return 0;
}

/* forkconsume: one open, then WORKERS forked consumers on it. */
static int fork_consume(shmq_segment *seg, uint64_t workers, int64_t timeout)
{
	static char prefixes[64][8];
	pid_t pids[64];
	if (workers == 0 || workers > 64)
		return 2;
	fflush(stdout);
	for (uint64_t k = 0; k < workers; k++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			snprintf(prefixes[k], sizeof prefixes[k], "w%llu ", (unsigned long long)k);
			line_prefix = prefixes[k];
			int rc = consume(seg, timeout);
			shmq_close(seg);
			exit(rc);
		}
		pids[k] = pid;
	}
	int rc = 0;
	for (uint64_t k = 0; k < workers; k++) {
		int st;
		if (waitpid(pids[k], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			rc = 1;
	}
	return rc;
}

#define CHECK(cond, ...)                                                                                       \
	do {                                                                                                   \
		if (!(cond)) {                                                                                 \
			fprintf(stderr, __VA_ARGS__);                                                          \
			exit(1);                                                                               \
		}                                                                                              \
	} while (0)

/* forkcheck: handles attached before a fork stay the parent's. */
static int fork_check(shmq_segment *seg, int64_t timeout)
{
	shmq_mpmc_producer p;
	int err = shmq_mpmc_producer_open(seg, &p);
	CHECK(err == 0 && p.e.index == 0, "parent attach: %s, entry %d\n", shmq_strerror(err), p.e.index);
	void *b;
	if ((err = shmq_mpmc_reserve_wait(&p, 16, &b, timeout)))
		die("parent reserve", err);
	make(b, 16, 0, 0);
	fflush(stdout);
	pid_t pid = fork();
	CHECK(pid >= 0, "fork failed\n");
	if (pid == 0) {
		unsigned char msg[16];
		make(msg, sizeof msg, 1, 0);
#ifndef SHMQ_NO_ATFORK
		/* The fork handler marked the parent's handles at once. */
		err = shmq_mpmc_try_send(&p, msg, sizeof msg);
		CHECK(err == SHMQ_EFORKED, "child, parent's producer: %s\n", shmq_strerror(err));
		err = shmq_mpmc_commit(&p);
		CHECK(err == SHMQ_EFORKED, "child, parent's commit: %s\n", shmq_strerror(err));
#endif
		/* Without the handler, the close is the first call that notices. */
		CHECK(shmq_mpmc_producer_close(&p) == 0, "child, close of the parent's producer failed\n");
		shmq_mpmc_producer mine;
		err = shmq_mpmc_producer_open(seg, &mine);
		CHECK(err == 0 && mine.e.index == 1, "child attach: %s, entry %d (the parent holds 0)\n",
		      shmq_strerror(err), mine.e.index);
		if ((err = shmq_mpmc_send(&mine, msg, sizeof msg, timeout)))
			die("child send", err);
		if ((err = shmq_mpmc_producer_close(&mine)))
			die("child detach", err);
		shmq_close(seg);
		exit(0);
	}
	int st;
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child failed\n");
	/* The child's close left our entry (its state, and its lock, as seen
	 * through another description) and our reservation alone. */
	CHECK(atomic_load(p.e.state) == SHMQ_ENTRY_ATTACHED, "parent: entry 0 no longer attached\n");
	int probe = shmq__reopen(seg->fd);
	CHECK(probe >= 0 && shmq_ofd_held(probe, SHMQ_ENTRY_LOCK_BYTE(0)) == 1, "parent: entry 0's lock is gone\n");
	close(probe);
	if ((err = shmq_mpmc_commit(&p)))
		die("parent commit", err);
	if ((err = shmq_mpmc_producer_close(&p)))
		die("parent detach", err);
	out("forkcheck ok\n");
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t id = 0, count = 0, workers = 0;
	struct size_spec sp = { 16, 16 };
	int prod = argc == 6 && strcmp(argv[1], "produce") == 0;
	int cons = argc == 3 && strcmp(argv[1], "consume") == 0;
	int forked = argc == 4 && strcmp(argv[1], "forkconsume") == 0;
	int check = argc == 3 && strcmp(argv[1], "forkcheck") == 0;
	if (!(prod || cons || forked || check) ||
	    (prod && (parse_u64(argv[3], &id) || id >= STOP_ID || parse_u64(argv[4], &count) ||
		      parse_size_spec(argv[5], &sp) || sp.min < 16)) ||
	    (forked && parse_u64(argv[3], &workers))) {
		fprintf(stderr, "usage: %s produce LOCATION ID COUNT SIZE|MIN-MAX (sizes >= 16)\n"
				"       %s consume LOCATION\n"
				"       %s forkconsume LOCATION WORKERS\n"
				"       %s forkcheck LOCATION\n",
			argv[0], argv[0], argv[0], argv[0]);
		return 2;
	}
	int64_t timeout = timeout_ns_from_env();
	shmq_segment seg;
	open_queue(argv[2], SHMQ_KIND_MPMC, timeout, sp.max, &seg);
	int rc = prod     ? produce(&seg, (uint32_t)id, count, &sp, timeout)
		 : forked ? fork_consume(&seg, workers, timeout)
		 : check  ? fork_check(&seg, timeout)
			  : consume(&seg, timeout);
	shmq_close(&seg);
	return rc;
}
