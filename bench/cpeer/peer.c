/*
 * The bench harness's peer, in C, over shmq SPSC queues through
 * layout/shmq.h: it plays the part of bench/peer.go's runPeer so that a Go
 * process and a C process can be measured across one queue.
 *
 * Usage: peer PATTERN SIZE COUNT WARMUP FULLCHECK, with fd 3 the report
 * pipe, fd 4 the queue to this process and fd 5 the queue back. Reports are
 * JSON lines: {"Ready":true}, then {"Received":N,"Checksum":X,"CPUNanos":C}
 * or {"Received":N,"Err":"..."}.
 */
#define _GNU_SOURCE
#include "shmq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static FILE *report;

static uint64_t le64(const unsigned char *b)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

static int64_t cpu_ns(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
	       ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

static int fail(long received, const char *what, int err)
{
	fprintf(report, "{\"Received\":%ld,\"Err\":\"%s: %s\"}\n", received, what, err ? shmq_strerror(err) : "");
	fflush(report);
	return 1;
}

/* check mirrors bench/payload.go's checkMessage. */
static int check(const unsigned char *b, size_t n, uint64_t want, int full)
{
	if (le64(b) != want)
		return 0;
	if (n >= 16 && le64(b + n - 8) != want)
		return 0;
	if (full)
		for (size_t i = 8; i + 8 < n; i++)
			if (b[i] != (unsigned char)(i * 7 + 1))
				return 0;
	return 1;
}

/* fold mirrors bench/payload.go's foldChecksum. */
static uint64_t fold(uint64_t sum, const unsigned char *b, size_t n)
{
	return (sum ^ le64(b)) * 0x9E3779B97F4A7C15ull + le64(b + n - 8) + b[n / 2];
}

int main(int argc, char **argv)
{
	report = fdopen(3, "w");
	if (!report || argc != 6)
		return 2;
	const char *pattern = argv[1];
	size_t size = strtoul(argv[2], NULL, 10);
	long count = strtol(argv[3], NULL, 10), warmup = strtol(argv[4], NULL, 10);
	int full = atoi(argv[5]);
	shmq_segment in, out;
	shmq_spsc_consumer c;
	shmq_spsc_producer p;
	int err;
	if ((err = shmq_open_fd(4, SHMQ_KIND_SPSC, NULL, &in)) || (err = shmq_open_fd(5, SHMQ_KIND_SPSC, NULL, &out)))
		return fail(0, "open", err);
	if ((err = shmq_spsc_consumer_open(&in, &c)) || (err = shmq_spsc_producer_open(&out, &p)))
		return fail(0, "attach", err);
	unsigned char *buf = malloc(size ? size : 1);
	fprintf(report, "{\"Ready\":true}\n");
	fflush(report);
	uint64_t sum = 0;
	int64_t cpu0 = 0;
	long received = 0;
	size_t n;
	if (strcmp(pattern, "stream") == 0) {
		cpu0 = cpu_ns();
		for (long i = 0; i < count; i++) {
			if ((err = shmq_spsc_recv(&c, buf, size, &n, -1)))
				return fail(i, "receive", err);
			if (n != size || !check(buf, n, (uint64_t)i, full))
				return fail(i, "message lost, duplicated, reordered or corrupted", 0);
			sum = fold(sum, buf, n);
			received++;
		}
	} else {
		for (long i = 0; i < warmup + count; i++) {
			if (i == warmup)
				cpu0 = cpu_ns();
			if ((err = shmq_spsc_recv(&c, buf, size, &n, -1)))
				return fail(i, "receive ping", err);
			if (n != size || !check(buf, n, (uint64_t)i, full))
				return fail(i, "ping lost, duplicated, reordered or corrupted", 0);
			if ((err = shmq_spsc_send(&p, buf, n, -1)))
				return fail(i, "echo", err);
			received++;
		}
	}
	fprintf(report, "{\"Received\":%ld,\"Checksum\":%llu,\"CPUNanos\":%lld}\n", received,
		(unsigned long long)sum, (long long)(cpu_ns() - cpu0));
	fflush(report);
	/* Stay attached until the parent is done with its end (EOF on stdin). */
	char drain[64];
	while (read(0, drain, sizeof drain) > 0)
		;
	shmq_spsc_consumer_close(&c);
	shmq_spsc_producer_close(&p);
	return 0;
}
