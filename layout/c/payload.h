/*
 * payload.h - the test payload convention shared with the Go tests
 * (spsc/process_test.go's fill): message seq of n bytes holds seq as a
 * little-endian u64 in its first 8 bytes (truncated if n < 8) and then
 * byte(seq) ^ byte(i*7) at every index i >= 8. A size spec is "N" (every
 * message N bytes) or "MIN-MAX" (message seq has MIN + seq*7919 % (MAX-MIN+1)
 * bytes), so both sides agree on every length.
 */
#ifndef SHMQ_PAYLOAD_H
#define SHMQ_PAYLOAD_H

#include "../shmq.h"

#include <signal.h>
#include <stdlib.h>

struct size_spec {
	uint64_t min, max;
};

static inline int parse_u64(const char *s, uint64_t *v)
{
	char *end;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != 0)
		return -1;
	*v = x;
	return 0;
}

static inline int parse_size_spec(const char *s, struct size_spec *sp)
{
	char buf[64];
	if (strlen(s) >= sizeof buf)
		return -1;
	strcpy(buf, s);
	char *dash = strchr(buf, '-');
	if (dash) {
		*dash = 0;
		if (parse_u64(buf, &sp->min) || parse_u64(dash + 1, &sp->max))
			return -1;
	} else {
		if (parse_u64(buf, &sp->min))
			return -1;
		sp->max = sp->min;
	}
	return sp->min == 0 || sp->max < sp->min ? -1 : 0;
}

static inline size_t size_for(const struct size_spec *sp, uint64_t seq)
{
	return (size_t)(sp->min + (seq * 7919) % (sp->max - sp->min + 1));
}

static inline void fill(unsigned char *b, size_t n, uint64_t seq)
{
	for (size_t i = 0; i < n && i < 8; i++)
		b[i] = (unsigned char)(seq >> (8 * i));
	for (size_t i = 8; i < n; i++)
		b[i] = (unsigned char)((unsigned char)seq ^ (unsigned char)(i * 7));
}

/* Returns the index of the first wrong byte, or -1. */
static inline long verify(const unsigned char *b, size_t n, uint64_t seq)
{
	for (size_t i = 0; i < n && i < 8; i++)
		if (b[i] != (unsigned char)(seq >> (8 * i)))
			return (long)i;
	for (size_t i = 8; i < n; i++)
		if (b[i] != (unsigned char)((unsigned char)seq ^ (unsigned char)(i * 7)))
			return (long)i;
	return -1;
}

static inline int64_t timeout_ns_from_env(void)
{
	const char *t = getenv("SHMQ_TIMEOUT_MS");
	uint64_t ms = 30000;
	if (t && parse_u64(t, &ms) != 0)
		ms = 30000;
	return (int64_t)ms * 1000000;
}

/* Crash-test hooks, from the environment. SHMQ_HANG_AFTER=K: the peer
 * stops after K messages (what it then holds is up to the program) and
 * hang()s. SHMQ_FORK_HOLDER=1: hang() first forks a child that keeps every
 * descriptor and never calls shmq again, as a program that forks a worker
 * would, and prints its pid. */
static inline uint64_t hang_after(void)
{
	const char *s = getenv("SHMQ_HANG_AFTER");
	uint64_t k;
	if (s && parse_u64(s, &k) == 0)
		return k;
	return UINT64_MAX;
}

static inline void hang(void)
{
	const char *h = getenv("SHMQ_FORK_HOLDER");
	if (h && strcmp(h, "1") == 0) {
		fflush(stdout);
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			exit(1);
		}
		if (pid == 0) {
			/* Off the parent's standard streams, so that whoever waits
			 * for those to close does not wait for this child. */
			int null = open("/dev/null", O_RDWR);
			if (null >= 0) {
				dup2(null, 0);
				dup2(null, 1);
				dup2(null, 2);
			}
			for (;;)
				pause();
		}
		printf("hanging child=%d\n", (int)pid);
	} else {
		printf("hanging\n");
	}
	fflush(stdout);
	for (;;)
		pause();
}

static inline void die(const char *what, int err)
{
	if (err == SHMQ_ESYS)
		fprintf(stderr, "%s: %s: %s\n", what, shmq_strerror(err), strerror(errno));
	else
		fprintf(stderr, "%s: %s\n", what, shmq_strerror(err));
	exit(1);
}

/* Opens the queue of the given kind at loc (shmq_open's spelling), waiting
 * up to timeout_ns for its creator, for a peer whose messages are at most
 * max bytes; exits with a message if it cannot. */
static inline void open_queue(const char *loc, uint32_t kind, int64_t timeout_ns, uint64_t max, shmq_segment *seg)
{
	shmq_open_options opts = { timeout_ns, 0 };
	int err = shmq_open(loc, kind, &opts, seg);
	if (err)
		die("open", err);
	if (max > seg->hdr.max_message) {
		fprintf(stderr, "size %llu exceeds the queue's max message %u\n", (unsigned long long)max,
			seg->hdr.max_message);
		exit(1);
	}
}

/* Exits with a message unless m (n bytes) is message seq of the size spec
 * sp, by the convention above. */
static inline void check_message(const unsigned char *m, size_t n, uint64_t seq, const struct size_spec *sp)
{
	size_t want = size_for(sp, seq);
	if (n != want) {
		fprintf(stderr, "message %llu: %zu bytes, want %zu\n", (unsigned long long)seq, n, want);
		exit(1);
	}
	long bad = verify(m, n, seq);
	if (bad >= 0) {
		fprintf(stderr, "message %llu: byte %ld is %#x (torn, lost, duplicated, reordered or corrupted)\n",
			(unsigned long long)seq, bad, m[bad]);
		exit(1);
	}
}

#endif
