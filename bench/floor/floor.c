/*
 * Floors for the bench: what this machine does with the same work and
 * nothing of shmq's, in C, across processes. Each mode forks its peers
 * over an anonymous shared mapping, runs once, and prints one JSON line.
 *
 *   floor ring   SIZE COUNT            SPSC stream: a ring with cached
 *                                      indices, release/acquire cursors and
 *                                      shmq's record format (8-byte header,
 *                                      8-byte alignment, padding at the end)
 *   floor spin   SIZE COUNT WARMUP     ping-pong over two such rings, both
 *                                      processes spinning
 *   floor futex  SIZE COUNT WARMUP     ping-pong parking at once: the
 *                                      message in a shared buffer, a futex
 *                                      word per direction, woken every time
 *   floor vyukov P C SIZE COUNT        Vyukov's bounded MPMC queue, P
 *                                      producer and C consumer processes,
 *                                      COUNT messages in all
 *   floor claim  P C SIZE COUNT        the same queue with shmq's MPMC
 *                                      claim protocol (LAYOUT.md 14.4-14.7):
 *                                      an owner in every sequence word, three
 *                                      sequentially consistent read-modify-
 *                                      writes a side, no liveness checks
 *   floor memcpy SIZE COUNT            memcpy of SIZE bytes into a ring of
 *                                      the stream's capacity, one process
 *
 * Every message is stamped and checked as bench/payload.go does (sequence
 * in the first and last 8 bytes, a folded checksum), so the floors do the
 * harness's per-message work too. Round trips are timed with RDTSCP,
 * calibrated against CLOCK_MONOTONIC, as the Go side times them.
 *
 * A waiting side spins with a pause instruction and yields the processor
 * every 64 checks, so that a stream or more processes than CPUs still make
 * progress when two of them share a CPU. The spin ping-pong never yields:
 * on a loaded machine a yield hands the CPU to a neighbour for a whole time
 * slice, which is not the round trip this floor is about (shmq-spsc-spin
 * does not yield either).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#define LINE 128
#define TYPE_MESSAGE 1
#define TYPE_PADDING 2

static void die(const char *what)
{
	printf("{\"err\":\"%s: %s\"}\n", what, strerror(errno));
	exit(1);
}

static void *shared(size_t n)
{
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap");
	memset(p, 0, n);
	return p;
}

static int64_t mono_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int64_t cpu_ns(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
	       ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

/* yield_every: checks between sched_yield calls while waiting; 0: never. */
static unsigned yield_every = 64;

static inline void relax(unsigned *spins)
{
	if (yield_every && ++*spins % yield_every == 0) {
		sched_yield();
		return;
	}
#if defined(__x86_64__)
	_mm_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* ---- timestamps for round trips ---- */

static inline uint64_t ticks(void)
{
#if defined(__x86_64__)
	unsigned aux;
	return __rdtscp(&aux);
#else
	return (uint64_t)mono_ns();
#endif
}

/* ns_per_tick calibrates ticks against CLOCK_MONOTONIC over 20 ms. */
static double ns_per_tick(void)
{
#if defined(__x86_64__)
	int64_t t0 = mono_ns();
	uint64_t c0 = ticks();
	while (mono_ns() - t0 < 20000000)
		;
	int64_t t1 = mono_ns();
	uint64_t c1 = ticks();
	return (double)(t1 - t0) / (double)(c1 - c0);
#else
	return 1;
#endif
}

/* ---- the payload, as bench/payload.go ---- */

static uint64_t le64(const unsigned char *b)
{
	uint64_t v;
	memcpy(&v, b, 8);
	return v;
}

static void put64(unsigned char *b, uint64_t v) { memcpy(b, &v, 8); }

static void fill(unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (unsigned char)(i * 7 + 1);
}

static inline void stamp(unsigned char *b, size_t n, uint64_t seq)
{
	put64(b, seq);
	if (n >= 16)
		put64(b + n - 8, seq);
}

static inline int check(const unsigned char *b, size_t n, uint64_t want)
{
	return le64(b) == want && (n < 16 || le64(b + n - 8) == want);
}

static inline uint64_t fold(uint64_t sum, const unsigned char *b, size_t n)
{
	return (sum ^ le64(b)) * 0x9E3779B97F4A7C15ull + le64(b + n - 8) + b[n / 2];
}

/* ---- an SPSC ring in shmq's record format, with cached indices ---- */

struct cursor {
	_Alignas(LINE) _Atomic uint64_t pos;
};

struct ring {
	struct cursor tail; /* written by the producer */
	struct cursor head; /* written by the consumer */
	uint64_t cap, mask;
	unsigned char *data;
};

struct end {
	uint64_t pos;   /* this side's cursor, private copy */
	uint64_t cache; /* the other side's cursor, as last loaded */
};

static struct ring *ring_new(uint64_t cap)
{
	struct ring *r = shared(sizeof *r);
	r->cap = cap;
	r->mask = cap - 1;
	r->data = shared(cap);
	return r;
}

static inline uint64_t align8(uint64_t n) { return (n + 7) & ~(uint64_t)7; }

static inline void header(unsigned char *p, uint32_t len, uint32_t type)
{
	memcpy(p, &len, 4);
	memcpy(p + 4, &type, 4);
}

static void ring_send(struct ring *r, struct end *e, const unsigned char *msg, size_t n)
{
	uint64_t size = align8(n + 8), idx = e->pos & r->mask, room = r->cap - idx;
	uint64_t need = size > room ? size + room : size;
	unsigned spins = 0;
	while (r->cap - (e->pos - e->cache) < need) {
		e->cache = atomic_load_explicit(&r->head.pos, memory_order_acquire);
		if (r->cap - (e->pos - e->cache) >= need)
			break;
		relax(&spins);
	}
	if (size > room) {
		header(r->data + idx, (uint32_t)room, TYPE_PADDING);
		e->pos += room;
		idx = 0;
	}
	header(r->data + idx, (uint32_t)(n + 8), TYPE_MESSAGE);
	memcpy(r->data + idx + 8, msg, n);
	e->pos += size;
	atomic_store_explicit(&r->tail.pos, e->pos, memory_order_release);
}

/* ring_recv copies the next message into buf and frees it; it returns its
 * length. */
static size_t ring_recv(struct ring *r, struct end *e, unsigned char *buf)
{
	unsigned spins = 0;
	for (;;) {
		while (e->cache == e->pos) {
			e->cache = atomic_load_explicit(&r->tail.pos, memory_order_acquire);
			if (e->cache != e->pos)
				break;
			relax(&spins);
		}
		uint64_t idx = e->pos & r->mask;
		uint32_t len, type;
		memcpy(&len, r->data + idx, 4);
		memcpy(&type, r->data + idx + 4, 4);
		e->pos += align8(len);
		if (type == TYPE_PADDING)
			continue;
		memcpy(buf, r->data + idx + 8, len - 8);
		atomic_store_explicit(&r->head.pos, e->pos, memory_order_release);
		return len - 8;
	}
}

/* capacity mirrors bench/mech_shmq.go's shmqCapacity. */
static uint64_t capacity(size_t size)
{
	uint64_t c = 1 << 20;
	while (c < 8 * ((uint64_t)size + 8))
		c <<= 1;
	return c;
}

/* ---- start and finish ---- */

struct control {
	_Alignas(LINE) _Atomic int ready;
	_Alignas(LINE) _Atomic int go;
	_Alignas(LINE) int64_t child_cpu;
	int64_t end_ns;
	uint64_t received, checksum;
	int failed;
};

static void await_ready(struct control *c, int n)
{
	unsigned spins = 0;
	while (atomic_load(&c->ready) < n)
		relax(&spins);
}

static void await_go(struct control *c)
{
	atomic_fetch_add(&c->ready, 1);
	unsigned spins = 0;
	while (!atomic_load(&c->go))
		relax(&spins);
}

static int reap(pid_t pid)
{
	int st;
	if (waitpid(pid, &st, 0) < 0)
		die("waitpid");
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* ---- modes ---- */

static int mode_ring(size_t size, long count)
{
	struct ring *r = ring_new(capacity(size));
	struct control *c = shared(sizeof *c);
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		unsigned char *buf = malloc(size);
		struct end e = {0};
		await_go(c);
		int64_t cpu0 = cpu_ns();
		uint64_t sum = 0;
		for (long i = 0; i < count; i++) {
			if (ring_recv(r, &e, buf) != size || !check(buf, size, (uint64_t)i)) {
				c->failed = 1;
				break;
			}
			sum = fold(sum, buf, size);
			c->received++;
		}
		c->end_ns = mono_ns();
		c->child_cpu = cpu_ns() - cpu0;
		c->checksum = sum;
		_exit(0);
	}
	unsigned char *msg = malloc(size);
	fill(msg, size);
	struct end e = {0};
	await_ready(c, 1);
	int64_t cpu0 = cpu_ns(), t0 = mono_ns();
	atomic_store(&c->go, 1);
	for (long i = 0; i < count; i++) {
		stamp(msg, size, (uint64_t)i);
		ring_send(r, &e, msg, size);
	}
	int64_t cpu = cpu_ns() - cpu0;
	if (!reap(pid) || c->failed)
		return printf("{\"err\":\"consumer failed after %llu messages\"}\n", (unsigned long long)c->received), 1;
	double secs = (double)(c->end_ns - t0) / 1e9;
	printf("{\"received\":%llu,\"checksum\":%llu,\"msgs_per_sec\":%.1f,\"cpu_ns_per_msg\":%.2f}\n",
	       (unsigned long long)c->received, (unsigned long long)c->checksum, count / secs,
	       (double)(cpu + c->child_cpu) / count);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* report_pingpong prints the percentiles of rtt (ticks), sorting it. */
static void report_pingpong(uint64_t *rtt, long count, double secs, int64_t cpu)
{
	double k = ns_per_tick();
	qsort(rtt, count, sizeof *rtt, cmp_u64);
#define AT(q) ((long long)(rtt[(long)((q) * (count - 1))] * k))
	printf("{\"received\":%ld,\"p50_ns\":%lld,\"p90_ns\":%lld,\"p99_ns\":%lld,\"p999_ns\":%lld,\"max_ns\":%lld,"
	       "\"msgs_per_sec\":%.1f,\"cpu_ns_per_msg\":%.2f}\n",
	       count, AT(0.50), AT(0.90), AT(0.99), AT(0.999), (long long)(rtt[count - 1] * k), count / secs,
	       (double)cpu / count);
#undef AT
}

static int mode_spin(size_t size, long count, long warmup)
{
	yield_every = 0;
	struct ring *ping = ring_new(capacity(size)), *pong = ring_new(capacity(size));
	struct control *c = shared(sizeof *c);
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		unsigned char *buf = malloc(size);
		struct end in = {0}, out = {0};
		await_go(c);
		int64_t cpu0 = 0;
		for (long i = 0; i < warmup + count; i++) {
			if (i == warmup)
				cpu0 = cpu_ns();
			if (ring_recv(ping, &in, buf) != size || !check(buf, size, (uint64_t)i)) {
				c->failed = 1;
				break;
			}
			ring_send(pong, &out, buf, size);
		}
		c->child_cpu = cpu_ns() - cpu0;
		_exit(0);
	}
	unsigned char *msg = malloc(size), *buf = malloc(size);
	uint64_t *rtt = malloc(count * sizeof *rtt);
	fill(msg, size);
	struct end in = {0}, out = {0};
	await_ready(c, 1);
	atomic_store(&c->go, 1);
	int64_t cpu0 = 0, t0 = 0;
	for (long i = 0; i < warmup + count; i++) {
		if (i == warmup)
			cpu0 = cpu_ns(), t0 = mono_ns();
		stamp(msg, size, (uint64_t)i);
		uint64_t s = ticks();
		ring_send(ping, &out, msg, size);
		if (ring_recv(pong, &in, buf) != size) {
			c->failed = 1;
			break;
		}
		uint64_t e = ticks();
		if (!check(buf, size, (uint64_t)i)) {
			c->failed = 1;
			break;
		}
		if (i >= warmup)
			rtt[i - warmup] = e - s;
	}
	double secs = (double)(mono_ns() - t0) / 1e9;
	int64_t cpu = cpu_ns() - cpu0;
	if (!reap(pid) || c->failed)
		return printf("{\"err\":\"ping-pong failed\"}\n"), 1;
	report_pingpong(rtt, count, secs, cpu + c->child_cpu);
	return 0;
}

/* ---- futex ping-pong ---- */

struct mailbox {
	_Alignas(LINE) _Atomic uint32_t seq; /* the futex word: bumped per message */
	_Alignas(LINE) unsigned char data[];
};

static void futex_wait(_Atomic uint32_t *w, uint32_t old)
{
	syscall(SYS_futex, w, FUTEX_WAIT, old, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *w) { syscall(SYS_futex, w, FUTEX_WAKE, 1, NULL, NULL, 0); }

static void mail_send(struct mailbox *m, const unsigned char *msg, size_t n)
{
	memcpy(m->data, msg, n);
	atomic_fetch_add_explicit(&m->seq, 1, memory_order_release);
	futex_wake(&m->seq);
}

static void mail_recv(struct mailbox *m, uint32_t *seen, unsigned char *buf, size_t n)
{
	uint32_t v;
	while ((v = atomic_load_explicit(&m->seq, memory_order_acquire)) == *seen)
		futex_wait(&m->seq, *seen);
	*seen = v;
	memcpy(buf, m->data, n);
}

static int mode_futex(size_t size, long count, long warmup)
{
	struct mailbox *ping = shared(sizeof *ping + size), *pong = shared(sizeof *pong + size);
	struct control *c = shared(sizeof *c);
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		unsigned char *buf = malloc(size);
		uint32_t seen = 0;
		await_go(c);
		int64_t cpu0 = 0;
		for (long i = 0; i < warmup + count; i++) {
			if (i == warmup)
				cpu0 = cpu_ns();
			mail_recv(ping, &seen, buf, size);
			if (!check(buf, size, (uint64_t)i)) {
				c->failed = 1;
				break;
			}
			mail_send(pong, buf, size);
		}
		c->child_cpu = cpu_ns() - cpu0;
		_exit(0);
	}
	unsigned char *msg = malloc(size), *buf = malloc(size);
	uint64_t *rtt = malloc(count * sizeof *rtt);
	fill(msg, size);
	uint32_t seen = 0;
	await_ready(c, 1);
	atomic_store(&c->go, 1);
	int64_t cpu0 = 0, t0 = 0;
	for (long i = 0; i < warmup + count; i++) {
		if (i == warmup)
			cpu0 = cpu_ns(), t0 = mono_ns();
		stamp(msg, size, (uint64_t)i);
		uint64_t s = ticks();
		mail_send(ping, msg, size);
		mail_recv(pong, &seen, buf, size);
		uint64_t e = ticks();
		if (!check(buf, size, (uint64_t)i)) {
			c->failed = 1;
			break;
		}
		if (i >= warmup)
			rtt[i - warmup] = e - s;
	}
	double secs = (double)(mono_ns() - t0) / 1e9;
	int64_t cpu = cpu_ns() - cpu0;
	if (!reap(pid) || c->failed)
		return printf("{\"err\":\"ping-pong failed\"}\n"), 1;
	report_pingpong(rtt, count, secs, cpu + c->child_cpu);
	return 0;
}

/* ---- Vyukov's bounded MPMC queue ---- */

/* A slot is a sequence word and the message, padded to 64 bytes as shmq's
 * MPMC slots are (a 16-byte header, then the payload). */
struct vqueue {
	_Alignas(LINE) _Atomic uint64_t enq;
	_Alignas(LINE) _Atomic uint64_t deq;
	_Alignas(LINE) uint64_t slots, mask, slot_size;
	unsigned char *data;
};

#define SLOT_HEADER 16

static inline _Atomic uint64_t *vseq(struct vqueue *q, uint64_t pos)
{
	return (_Atomic uint64_t *)(q->data + (pos & q->mask) * q->slot_size);
}

static void v_send(struct vqueue *q, const unsigned char *msg, size_t n)
{
	unsigned spins = 0;
	uint64_t pos = atomic_load_explicit(&q->enq, memory_order_relaxed);
	for (;;) {
		_Atomic uint64_t *seq = vseq(q, pos);
		uint64_t s = atomic_load_explicit(seq, memory_order_acquire);
		int64_t d = (int64_t)(s - pos);
		if (d == 0) {
			if (atomic_compare_exchange_weak_explicit(&q->enq, &pos, pos + 1, memory_order_relaxed,
								  memory_order_relaxed)) {
				memcpy((unsigned char *)seq + SLOT_HEADER, msg, n);
				atomic_store_explicit(seq, pos + 1, memory_order_release);
				return;
			}
		} else if (d < 0) {
			relax(&spins); /* full */
			pos = atomic_load_explicit(&q->enq, memory_order_relaxed);
		} else {
			pos = atomic_load_explicit(&q->enq, memory_order_relaxed);
		}
	}
}

static void v_recv(struct vqueue *q, unsigned char *buf, size_t n)
{
	unsigned spins = 0;
	uint64_t pos = atomic_load_explicit(&q->deq, memory_order_relaxed);
	for (;;) {
		_Atomic uint64_t *seq = vseq(q, pos);
		uint64_t s = atomic_load_explicit(seq, memory_order_acquire);
		int64_t d = (int64_t)(s - (pos + 1));
		if (d == 0) {
			if (atomic_compare_exchange_weak_explicit(&q->deq, &pos, pos + 1, memory_order_relaxed,
								  memory_order_relaxed)) {
				memcpy(buf, (unsigned char *)seq + SLOT_HEADER, n);
				atomic_store_explicit(seq, pos + q->slots, memory_order_release);
				return;
			}
		} else if (d < 0) {
			relax(&spins); /* empty */
			pos = atomic_load_explicit(&q->deq, memory_order_relaxed);
		} else {
			pos = atomic_load_explicit(&q->deq, memory_order_relaxed);
		}
	}
}

/* ---- shmq's MPMC claim protocol ---- */

/* The sequence word of LAYOUT.md 14.4: rank = (position << 2 | state) in
 * bits 63..16, the claimant's index in bits 15..0. A producer claims a slot
 * by a CAS of its word to W(p, me) before it moves the enqueue cursor, and a
 * consumer by a CAS to R(p, me) before it moves the dequeue cursor, so that
 * a slot always names the process that holds it; that is what crash
 * recovery needs, and what costs the third read-modify-write a side over
 * Vyukov's queue (where the cursor CAS is the claim and a release store
 * publishes). What this floor leaves out of shmq: liveness checks of a
 * stuck claimant, tombstones, requeues, validation and the wake protocol. */
enum { C_EMPTY, C_WRITING, C_FULL, C_READING };

static inline uint64_t cword(uint64_t pos, uint64_t state, uint64_t owner)
{
	return (pos << 2 | state) << 16 | owner;
}

/* cdist is the signed distance in ranks from E(pos) to word w (48 bits). */
static inline int64_t cdist(uint64_t w, uint64_t pos)
{
	uint64_t x = ((w >> 16) - (pos << 2)) & ((1ull << 48) - 1);
	return x & (1ull << 47) ? (int64_t)x - (int64_t)(1ull << 48) : (int64_t)x;
}

static void c_send(struct vqueue *q, uint64_t me, const unsigned char *msg, size_t n)
{
	unsigned spins = 0;
	uint64_t pos = atomic_load(&q->enq);
	for (;;) {
		_Atomic uint64_t *seq = vseq(q, pos);
		uint64_t w = atomic_load(seq), p = pos;
		int64_t d = cdist(w, pos);
		if (d == C_EMPTY) {
			if (atomic_compare_exchange_strong(seq, &w, cword(pos, C_WRITING, me))) {
				atomic_compare_exchange_strong(&q->enq, &p, pos + 1);
				unsigned char *slot = (unsigned char *)seq;
				memcpy(slot + 8, &(uint32_t){(uint32_t)n}, 4);
				memcpy(slot + 12, &(uint32_t){(uint32_t)me}, 4);
				memcpy(slot + SLOT_HEADER, msg, n);
				uint64_t mine = cword(pos, C_WRITING, me);
				if (!atomic_compare_exchange_strong(seq, &mine, cword(pos, C_FULL, me)))
					die("claimed slot taken");
				return;
			}
		} else if (d > C_EMPTY && d <= C_READING) {
			atomic_compare_exchange_strong(&q->enq, &p, pos + 1); /* help */
		} else if (d < 0) {
			relax(&spins); /* the previous lap is still there: full */
		}
		pos = atomic_load(&q->enq);
	}
}

static void c_recv(struct vqueue *q, uint64_t me, unsigned char *buf, size_t n)
{
	unsigned spins = 0;
	uint64_t pos = atomic_load(&q->deq);
	for (;;) {
		_Atomic uint64_t *seq = vseq(q, pos);
		uint64_t w = atomic_load(seq), p = pos;
		int64_t d = cdist(w, pos);
		if (d == C_FULL) {
			if (atomic_compare_exchange_strong(seq, &w, cword(pos, C_READING, me))) {
				atomic_compare_exchange_strong(&q->deq, &p, pos + 1);
				uint32_t len;
				memcpy(&len, (unsigned char *)seq + 8, 4);
				memcpy(buf, (unsigned char *)seq + SLOT_HEADER, len < n ? len : n);
				uint64_t mine = cword(pos, C_READING, me);
				if (!atomic_compare_exchange_strong(seq, &mine, cword(pos + q->slots, C_EMPTY, 0)))
					die("taken slot taken");
				return;
			}
		} else if (d == C_READING) {
			atomic_compare_exchange_strong(&q->deq, &p, pos + 1); /* help */
		} else if (d < C_FULL) {
			relax(&spins); /* nothing committed at pos yet: empty */
		}
		pos = atomic_load(&q->deq);
	}
}

/* claim selects shmq's claim protocol over Vyukov's in mode_vyukov. */
static int claim;

static void q_send(struct vqueue *q, uint64_t me, const unsigned char *msg, size_t n)
{
	if (claim)
		c_send(q, me, msg, n);
	else
		v_send(q, msg, n);
}

static void q_recv(struct vqueue *q, uint64_t me, unsigned char *buf, size_t n)
{
	if (claim)
		c_recv(q, me, buf, n);
	else
		v_recv(q, buf, n);
}

/* mpmcSlots and mpmcMaxRing mirror bench/mech_shmq_mpmc.go. */
static struct vqueue *vqueue_new(size_t size)
{
	struct vqueue *q = shared(sizeof *q);
	q->slot_size = (size + SLOT_HEADER + 63) / 64 * 64;
	q->slots = 1024;
	while (q->slots > 16 && q->slots * q->slot_size > (4 << 20))
		q->slots >>= 1;
	q->mask = q->slots - 1;
	q->data = shared(q->slots * q->slot_size);
	for (uint64_t i = 0; i < q->slots; i++)
		atomic_store(vseq(q, i), claim ? cword(i, C_EMPTY, 0) : i);
	return q;
}

#define STOP UINT64_MAX

/* The first 8 bytes carry producer<<48 | seq, the last 8 the same. */
static int mode_vyukov(int np, int nc, size_t size, long count)
{
	if (np < 1 || nc < 1 || np > 64 || size < 8)
		return printf("{\"err\":\"bad shape\"}\n"), 1;
	struct vqueue *q = vqueue_new(size);
	struct control *c = shared(sizeof *c);
	struct tally {
		uint64_t received, sum;
		int64_t cpu;
		int failed;
	} *t = shared((size_t)nc * sizeof *t);
	int64_t *pcpu = shared((size_t)np * sizeof *pcpu);
	long per = count / np;
	pid_t pids[128];
	for (int k = 0; k < nc; k++) {
		if ((pids[k] = fork()) < 0)
			die("fork");
		if (pids[k] == 0) {
			unsigned char *buf = malloc(size);
			int64_t last[64];
			for (int i = 0; i < 64; i++)
				last[i] = -1;
			await_go(c);
			int64_t cpu0 = cpu_ns();
			for (;;) {
				q_recv(q, (uint64_t)(np + k), buf, size);
				uint64_t w = le64(buf);
				if (w == STOP)
					break;
				int p = (int)(w >> 48);
				int64_t s = (int64_t)(w & ((1ull << 48) - 1));
				if (p >= np || s <= last[p] || !check(buf, size, w)) {
					t[k].failed = 1;
					break;
				}
				last[p] = s;
				t[k].sum += w;
				t[k].received++;
			}
			t[k].cpu = cpu_ns() - cpu0;
			_exit(0);
		}
	}
	for (int k = 0; k < np; k++) {
		if ((pids[nc + k] = fork()) < 0)
			die("fork");
		if (pids[nc + k] == 0) {
			unsigned char *msg = malloc(size);
			fill(msg, size);
			await_go(c);
			int64_t cpu0 = cpu_ns();
			for (long i = 0; i < per; i++) {
				stamp(msg, size, (uint64_t)k << 48 | (uint64_t)i);
				q_send(q, (uint64_t)k, msg, size);
			}
			pcpu[k] = cpu_ns() - cpu0;
			_exit(0);
		}
	}
	await_ready(c, np + nc);
	int64_t t0 = mono_ns();
	atomic_store(&c->go, 1);
	int ok = 1;
	for (int k = 0; k < np; k++)
		ok &= reap(pids[nc + k]);
	unsigned char *stop = malloc(size);
	fill(stop, size);
	stamp(stop, size, STOP);
	for (int k = 0; k < nc; k++)
		q_send(q, (uint64_t)np, stop, size);
	for (int k = 0; k < nc; k++)
		ok &= reap(pids[k]);
	int64_t elapsed = mono_ns() - t0;
	uint64_t received = 0, sum = 0, want = 0;
	int64_t cpu = 0;
	for (int k = 0; k < nc; k++) {
		ok &= !t[k].failed;
		received += t[k].received;
		sum += t[k].sum;
		cpu += t[k].cpu;
	}
	for (int k = 0; k < np; k++) {
		cpu += pcpu[k];
		for (long i = 0; i < per; i++)
			want += (uint64_t)k << 48 | (uint64_t)i;
	}
	if (!ok || received != (uint64_t)(per * np) || sum != want)
		return printf("{\"err\":\"received %llu of %ld messages, sum %s\"}\n", (unsigned long long)received,
			      per * np, sum == want ? "ok" : "wrong"),
		       1;
	printf("{\"received\":%llu,\"ns_per_msg\":%.2f,\"msgs_per_sec\":%.1f,\"cpu_ns_per_msg\":%.2f}\n",
	       (unsigned long long)received, (double)elapsed / received, received / ((double)elapsed / 1e9),
	       (double)cpu / received);
	return 0;
}

static int mode_memcpy(size_t size, long count)
{
	uint64_t cap = capacity(size);
	unsigned char *dst = shared(cap), *msg = malloc(size);
	fill(msg, size);
	uint64_t pos = 0, sum = 0;
	int64_t cpu0 = cpu_ns(), t0 = mono_ns();
	for (long i = 0; i < count; i++) {
		uint64_t rec = align8(size + 8);
		if ((pos & (cap - 1)) + rec > cap)
			pos += cap - (pos & (cap - 1));
		stamp(msg, size, (uint64_t)i);
		memcpy(dst + (pos & (cap - 1)) + 8, msg, size);
		sum += dst[(pos & (cap - 1)) + 8 + size / 2];
		pos += rec;
	}
	double secs = (double)(mono_ns() - t0) / 1e9;
	printf("{\"received\":%ld,\"msgs_per_sec\":%.1f,\"cpu_ns_per_msg\":%.2f,\"sink\":%llu}\n", count, count / secs,
	       (double)(cpu_ns() - cpu0) / count, (unsigned long long)sum);
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 4 && !strcmp(argv[1], "ring"))
		return mode_ring(strtoul(argv[2], NULL, 10), strtol(argv[3], NULL, 10));
	if (argc >= 4 && !strcmp(argv[1], "memcpy"))
		return mode_memcpy(strtoul(argv[2], NULL, 10), strtol(argv[3], NULL, 10));
	if (argc >= 5 && !strcmp(argv[1], "spin"))
		return mode_spin(strtoul(argv[2], NULL, 10), strtol(argv[3], NULL, 10), strtol(argv[4], NULL, 10));
	if (argc >= 5 && !strcmp(argv[1], "futex"))
		return mode_futex(strtoul(argv[2], NULL, 10), strtol(argv[3], NULL, 10), strtol(argv[4], NULL, 10));
	if (argc >= 6 && (!strcmp(argv[1], "vyukov") || !strcmp(argv[1], "claim"))) {
		claim = !strcmp(argv[1], "claim");
		return mode_vyukov(atoi(argv[2]), atoi(argv[3]), strtoul(argv[4], NULL, 10), strtol(argv[5], NULL, 10));
	}
	fprintf(stderr, "usage: floor ring|memcpy SIZE COUNT | spin|futex SIZE COUNT WARMUP | vyukov|claim P C SIZE COUNT\n");
	return 2;
}
