/*
 * shmq_pubsub.h - header-only C11 subscriber of shmq publish/subscribe
 * queues, layout version 2 (layout/LAYOUT.md section 18, which is normative, and
 * LAYOUT.md sections 6-7 for the wake protocol and the registry).
 *
 * It stands alone: it does not need shmq.h, and its names all start with
 * shmq_ps_ / SHMQ_PS_, so both headers may be included together. Linux
 * only, 64-bit little-endian only, C11 <stdatomic.h> and libc only.
 *
 * What it provides:
 *   - the pub/sub layout's constants (checked against the Go constants by
 *     interop/pubsub_test.go);
 *   - shmq_ps_open / shmq_ps_close: open and map an existing queue ("fd:N",
 *     a path, or a /dev/shm name), validating its header as layout.Decode
 *     does, waiting (bounded) for its creator to publish it;
 *   - shmq_ps_subscribe: take a registry entry (OFD lock on a private lock
 *     description) and start at the latest, oldest or next message, in
 *     either policy (LAYOUT.md 18.7);
 *   - shmq_ps_peek / shmq_ps_release / shmq_ps_try_recv / shmq_ps_recv:
 *     read records with the Go subscriber's validation; in a lossy queue,
 *     detect being overwritten (and torn reads) through the publisher's
 *     intent, resume at the oldest whole record and report the exact number
 *     of messages lost (18.8); blocking with the futex wake protocol (18.9);
 *   - shmq_ps_unsubscribe.
 *
 * Not implemented: creating queues, and the publisher (LAYOUT.md 18.4-18.6
 * say what one must do). Errors are negative SHMQ_PS_E* values (errno is
 * preserved for SHMQ_PS_ESYS); shmq_ps_strerror names them. A subscriber
 * belongs to one thread at a time; after fork(2) a child must open the
 * queue anew (the lock description is reopened when the pid changed, so a
 * child never acts through its parent's locks).
 */
#ifndef SHMQ_PUBSUB_H
#define SHMQ_PUBSUB_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>

#if !defined(__LP64__) || !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "shmq layout v2 is defined for 64-bit little-endian ABIs only"
#endif
#if ATOMIC_LLONG_LOCK_FREE != 2 || ATOMIC_INT_LOCK_FREE != 2
#error "shmq needs lock-free 32- and 64-bit atomics"
#endif

#ifndef F_OFD_GETLK
#define F_OFD_GETLK 36
#define F_OFD_SETLK 37
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Segment (layout/layout.go, version 2). */
#define SHMQ_PS_MAGIC 0x0a1a0a0d514d4853ULL
#define SHMQ_PS_VERSION 2u
#define SHMQ_PS_STATE_INIT 0u
#define SHMQ_PS_STATE_READY 0x59444552u
#define SHMQ_PS_LINE_SIZE 128u
#define SHMQ_PS_PAGE_SIZE 4096u
#define SHMQ_PS_HEADER_SIZE 256u
#define SHMQ_PS_KIND 3u           /* KindPubSub */
#define SHMQ_PS_FLAG_LOSSY 2u     /* FlagLossy */
#define SHMQ_PS_MAX_REGISTRY 1024u

#define SHMQ_PS_OFF_MAGIC 0
#define SHMQ_PS_OFF_STATE 8
#define SHMQ_PS_OFF_VERSION 12
#define SHMQ_PS_OFF_KIND 16
#define SHMQ_PS_OFF_FLAGS 20
#define SHMQ_PS_OFF_TOTAL_SIZE 24
#define SHMQ_PS_OFF_CAPACITY 32
#define SHMQ_PS_OFF_MAX_MESSAGE 40
#define SHMQ_PS_OFF_SLOT_SIZE 44
#define SHMQ_PS_OFF_LINE_SIZE 48
#define SHMQ_PS_OFF_HEADER_SIZE 64
#define SHMQ_PS_OFF_TAB_PRODUCER 128
#define SHMQ_PS_OFF_TAB_CONSUMER 136
#define SHMQ_PS_OFF_TAB_PRODUCER_WAKE 144
#define SHMQ_PS_OFF_TAB_CONSUMER_WAKE 152
#define SHMQ_PS_OFF_TAB_REGISTRY 160
#define SHMQ_PS_OFF_TAB_REGISTRY_COUNT 168
#define SHMQ_PS_OFF_TAB_ENTRY_SIZE 172
#define SHMQ_PS_OFF_TAB_DATA 176
#define SHMQ_PS_OFF_TAB_DATA_SIZE 184
#define SHMQ_PS_OFF_TAB_WAITERS 192
#define SHMQ_PS_OFF_TAB_WAITER_SETS 200

#define SHMQ_PS_WAKE_SEQ 0 /* u32 futex word of a wake line */
#define SHMQ_PS_WAITER_SET_PRODUCERS 0
#define SHMQ_PS_WAITER_SET_CONSUMERS 1
#define SHMQ_PS_WAITER_SETS 2

/* Registry entries (section 7) and a subscriber's fields (LAYOUT.md 18.3). */
#define SHMQ_PS_ENTRY_STATE 0
#define SHMQ_PS_ENTRY_ROLE 4
#define SHMQ_PS_ENTRY_PID 8
#define SHMQ_PS_ENTRY_GEN 12
#define SHMQ_PS_ENTRY_ATTACH_NANO 16
#define SHMQ_PS_ENTRY_MESSAGES 24
#define SHMQ_PS_ENTRY_BYTES 32
#define SHMQ_PS_ENTRY_STALLS 40
#define SHMQ_PS_ENTRY_WAITS 48
#define SHMQ_PS_ENTRY_WAKES 56
#define SHMQ_PS_ENTRY_SUB_POSITION 72
#define SHMQ_PS_ENTRY_SUB_SEQ 80
#define SHMQ_PS_ENTRY_SUB_LOST 88
#define SHMQ_PS_ENTRY_FREE 0u
#define SHMQ_PS_ENTRY_ATTACHED 1u
#define SHMQ_PS_ENTRY_DETACHED 2u
#define SHMQ_PS_ROLE_PRODUCER 1u
#define SHMQ_PS_ROLE_CONSUMER 2u
#define SHMQ_PS_PUBLISHER_ENTRY 0
#define SHMQ_PS_FIRST_SUBSCRIBER 1

/* Producer line (LAYOUT.md 18.3). */
#define SHMQ_PS_PUB_TAIL 0
#define SHMQ_PS_PUB_INTENT 8
#define SHMQ_PS_PUB_OLDEST 16
#define SHMQ_PS_PUB_LIMIT 24
#define SHMQ_PS_PUB_WAIT_FOR 32

/* Records (LAYOUT.md 18.2). */
#define SHMQ_PS_RECORD_HEADER_SIZE 16u
#define SHMQ_PS_RECORD_ALIGN 16u
#define SHMQ_PS_RECORD_LENGTH 0
#define SHMQ_PS_RECORD_TYPE 4
#define SHMQ_PS_RECORD_SEQ 8
#define SHMQ_PS_TYPE_MESSAGE 1u
#define SHMQ_PS_TYPE_PADDING 0xffffffffu
#define SHMQ_PS_MIN_CAPACITY 64ULL
#define SHMQ_PS_MAX_CAPACITY (1ULL << 40)

/* Where a subscriber starts (pubsub.Start). */
#define SHMQ_PS_FROM_LATEST 0
#define SHMQ_PS_FROM_OLDEST 1
#define SHMQ_PS_FROM_NEXT 2

/* Errors. */
enum {
	SHMQ_PS_OK = 0,
	SHMQ_PS_EEMPTY = -1,     /* no message now */
	SHMQ_PS_ELOST = -2,      /* overwritten: sub->last_lost messages lost; the next call goes on */
	SHMQ_PS_EOF = -3,        /* the publisher closed and everything was read */
	SHMQ_PS_ETIMEDOUT = -4,
	SHMQ_PS_EPEERDEAD = -5,  /* no message, and the publisher died attached */
	SHMQ_PS_ECORRUPT = -6,
	SHMQ_PS_ESYS = -7,       /* see errno */
	SHMQ_PS_ENOTSEG = -8,
	SHMQ_PS_EVERSION = -9,
	SHMQ_PS_EKIND = -10,
	SHMQ_PS_EFULL = -11,     /* every subscriber entry is held */
	SHMQ_PS_ESHORT = -12,    /* buffer too small; the message stays */
	SHMQ_PS_EINVAL = -13,
	SHMQ_PS_ENOTREADY = -14, /* the creator did not publish the segment in time */
};

static inline const char *shmq_ps_strerror(int err)
{
	switch (err) {
	case SHMQ_PS_OK: return "ok";
	case SHMQ_PS_EEMPTY: return "queue is empty";
	case SHMQ_PS_ELOST: return "messages lost to overwriting";
	case SHMQ_PS_EOF: return "end of stream";
	case SHMQ_PS_ETIMEDOUT: return "timed out";
	case SHMQ_PS_EPEERDEAD: return "publisher died";
	case SHMQ_PS_ECORRUPT: return "corrupt segment";
	case SHMQ_PS_ESYS: return "system call failed";
	case SHMQ_PS_ENOTSEG: return "not a shmq segment";
	case SHMQ_PS_EVERSION: return "unsupported layout version or flags";
	case SHMQ_PS_EKIND: return "not a pub/sub queue";
	case SHMQ_PS_EFULL: return "registry is full";
	case SHMQ_PS_ESHORT: return "buffer too small for the next message";
	case SHMQ_PS_EINVAL: return "invalid argument";
	case SHMQ_PS_ENOTREADY: return "segment not initialized";
	}
	return "unknown error";
}

typedef _Atomic uint32_t shmq_ps_u32;
typedef _Atomic uint64_t shmq_ps_u64;

/* A validated header: private copies of the fields. */
typedef struct {
	uint32_t flags, max_message, registry_count, waiter_sets;
	uint64_t total_size, capacity, producer, consumer, producer_wake, consumer_wake, registry, data, data_size, waiters;
} shmq_ps_header;

typedef struct {
	unsigned char *mem;
	uint64_t size;
	int fd;      /* the mapping's description; never holds a lock */
	int lockfd;  /* a private description for every OFD lock */
	pid_t owner; /* the process that opened lockfd */
	shmq_ps_header h;
} shmq_ps_segment;

typedef struct {
	shmq_ps_segment *s;
	int index, lossy;
	uint64_t cap, mask;
	uint64_t head, head_seq; /* released position and the number expected there */
	uint64_t pos, seq;       /* next record and its number */
	uint64_t tail_cache;
	uint64_t peeked, peeked_bytes;
	int unverified;          /* lossy: views handed out since the last check, */
	uint64_t view_start;     /* the first at this position */
	uint64_t lost, last_lost, msgs, bytes, stalls, waits;
} shmq_ps_subscriber;

/* ---- memory access ---------------------------------------------------- */

static inline shmq_ps_u32 *shmq_ps__u32(const shmq_ps_segment *s, uint64_t off)
{
	return (shmq_ps_u32 *)(void *)(s->mem + off);
}

static inline shmq_ps_u64 *shmq_ps__u64(const shmq_ps_segment *s, uint64_t off)
{
	return (shmq_ps_u64 *)(void *)(s->mem + off);
}

static inline uint64_t shmq_ps__ld64(const unsigned char *m, uint64_t off)
{
	uint64_t v;
	memcpy(&v, m + off, 8);
	return v;
}

static inline uint32_t shmq_ps__ld32(const unsigned char *m, uint64_t off)
{
	uint32_t v;
	memcpy(&v, m + off, 4);
	return v;
}

static inline int64_t shmq_ps__now(int clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void shmq_ps__sleep(int64_t ns)
{
	struct timespec ts = { ns / 1000000000, ns % 1000000000 };
	nanosleep(&ts, NULL);
}

/* ---- header validation (layout.Decode, LAYOUT.md 18.1) ----------------- */

struct shmq_ps__region { uint64_t off, size; };

static inline int shmq_ps_decode(const unsigned char *m, uint64_t size, shmq_ps_header *h)
{
	if (size < SHMQ_PS_HEADER_SIZE || shmq_ps__ld64(m, SHMQ_PS_OFF_MAGIC) != SHMQ_PS_MAGIC)
		return SHMQ_PS_ENOTSEG;
	uint32_t state = atomic_load_explicit(&((shmq_ps_u32 *)(void *)(m + SHMQ_PS_OFF_STATE))[0], memory_order_acquire);
	if (state == SHMQ_PS_STATE_INIT)
		return SHMQ_PS_ENOTREADY;
	if (state != SHMQ_PS_STATE_READY)
		return SHMQ_PS_ECORRUPT;
	if (shmq_ps__ld32(m, SHMQ_PS_OFF_VERSION) != SHMQ_PS_VERSION)
		return SHMQ_PS_EVERSION;
	if (shmq_ps__ld32(m, SHMQ_PS_OFF_LINE_SIZE) != SHMQ_PS_LINE_SIZE)
		return SHMQ_PS_ECORRUPT;
	if (shmq_ps__ld32(m, SHMQ_PS_OFF_KIND) != SHMQ_PS_KIND)
		return SHMQ_PS_EKIND;
	h->flags = shmq_ps__ld32(m, SHMQ_PS_OFF_FLAGS);
	if (h->flags & ~SHMQ_PS_FLAG_LOSSY)
		return SHMQ_PS_EVERSION;
	h->total_size = shmq_ps__ld64(m, SHMQ_PS_OFF_TOTAL_SIZE);
	h->capacity = shmq_ps__ld64(m, SHMQ_PS_OFF_CAPACITY);
	h->max_message = shmq_ps__ld32(m, SHMQ_PS_OFF_MAX_MESSAGE);
	h->producer = shmq_ps__ld64(m, SHMQ_PS_OFF_TAB_PRODUCER);
	h->consumer = shmq_ps__ld64(m, SHMQ_PS_OFF_TAB_CONSUMER);
	h->producer_wake = shmq_ps__ld64(m, SHMQ_PS_OFF_TAB_PRODUCER_WAKE);
	h->consumer_wake = shmq_ps__ld64(m, SHMQ_PS_OFF_TAB_CONSUMER_WAKE);
	h->registry = shmq_ps__ld64(m, SHMQ_PS_OFF_TAB_REGISTRY);
	h->registry_count = shmq_ps__ld32(m, SHMQ_PS_OFF_TAB_REGISTRY_COUNT);
	h->data = shmq_ps__ld64(m, SHMQ_PS_OFF_TAB_DATA);
	h->data_size = shmq_ps__ld64(m, SHMQ_PS_OFF_TAB_DATA_SIZE);
	h->waiters = shmq_ps__ld64(m, SHMQ_PS_OFF_TAB_WAITERS);
	h->waiter_sets = shmq_ps__ld32(m, SHMQ_PS_OFF_TAB_WAITER_SETS);
	uint64_t c = h->capacity;
	uint64_t half = c / 2 < (1ULL << 30) ? c / 2 : (1ULL << 30);
	if (h->total_size != size || size % SHMQ_PS_PAGE_SIZE != 0 ||
	    shmq_ps__ld32(m, SHMQ_PS_OFF_HEADER_SIZE) != SHMQ_PS_HEADER_SIZE ||
	    shmq_ps__ld32(m, SHMQ_PS_OFF_TAB_ENTRY_SIZE) != SHMQ_PS_LINE_SIZE ||
	    h->registry_count < 2 || h->registry_count > SHMQ_PS_MAX_REGISTRY || h->waiter_sets != SHMQ_PS_WAITER_SETS ||
	    c < SHMQ_PS_MIN_CAPACITY || c > SHMQ_PS_MAX_CAPACITY || (c & (c - 1)) != 0 || h->data_size != c ||
	    shmq_ps__ld32(m, SHMQ_PS_OFF_SLOT_SIZE) != SHMQ_PS_RECORD_ALIGN ||
	    h->max_message == 0 || h->max_message > half - SHMQ_PS_RECORD_HEADER_SIZE)
		return SHMQ_PS_ECORRUPT;
	struct shmq_ps__region rs[8] = {
		{ 0, SHMQ_PS_HEADER_SIZE }, { h->producer, SHMQ_PS_LINE_SIZE }, { h->consumer, SHMQ_PS_LINE_SIZE },
		{ h->producer_wake, SHMQ_PS_LINE_SIZE }, { h->consumer_wake, SHMQ_PS_LINE_SIZE },
		{ h->waiters, (uint64_t)h->waiter_sets * SHMQ_PS_LINE_SIZE },
		{ h->registry, (uint64_t)h->registry_count * SHMQ_PS_LINE_SIZE }, { h->data, h->data_size },
	};
	for (int i = 0; i < 8; i++) {
		if (rs[i].off % SHMQ_PS_LINE_SIZE != 0 || rs[i].size == 0 || rs[i].off > size || rs[i].size > size - rs[i].off)
			return SHMQ_PS_ECORRUPT;
		for (int j = 0; j < i; j++)
			if (rs[i].off < rs[j].off + rs[j].size && rs[j].off < rs[i].off + rs[i].size)
				return SHMQ_PS_ECORRUPT;
	}
	return SHMQ_PS_OK;
}

/* ---- opening ---------------------------------------------------------- */

/* shmq_ps__lock_desc opens the private description through which every
 * OFD lock of s is taken (LAYOUT.md section 7): a new open of the same
 * file that no one else references, close-on-exec. */
static inline int shmq_ps__lock_desc(shmq_ps_segment *s)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", s->fd);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return SHMQ_PS_ESYS;
	s->lockfd = fd;
	s->owner = getpid();
	return SHMQ_PS_OK;
}

/* shmq_ps_open opens the queue at loc: "fd:N" (reopened, the caller keeps
 * N), a path containing '/', or a /dev/shm name. It waits up to timeout_ns
 * for the creator to publish the segment. */
static inline int shmq_ps_open(const char *loc, int64_t timeout_ns, shmq_ps_segment *s)
{
	char path[4096];
	memset(s, 0, sizeof *s);
	s->fd = s->lockfd = -1;
	if (strncmp(loc, "fd:", 3) == 0)
		snprintf(path, sizeof path, "/proc/self/fd/%s", loc + 3);
	else if (strchr(loc, '/'))
		snprintf(path, sizeof path, "%s", loc);
	else
		snprintf(path, sizeof path, "/dev/shm/%s", loc);
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return SHMQ_PS_ESYS;
	s->fd = fd;
	int64_t deadline = shmq_ps__now(CLOCK_MONOTONIC) + timeout_ns;
	for (;;) {
		struct stat st;
		if (fstat(fd, &st) != 0)
			goto sys;
		if (!S_ISREG(st.st_mode) || st.st_size < (off_t)SHMQ_PS_PAGE_SIZE) {
			close(fd);
			return SHMQ_PS_ENOTSEG;
		}
		void *m = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (m == MAP_FAILED)
			goto sys;
		int err = shmq_ps_decode(m, (uint64_t)st.st_size, &s->h);
		if (err == SHMQ_PS_OK) {
			s->mem = m;
			s->size = (uint64_t)st.st_size;
			if ((err = shmq_ps__lock_desc(s)) != SHMQ_PS_OK) {
				int e = errno;
				munmap(m, s->size);
				close(fd);
				errno = e;
			}
			return err;
		}
		munmap(m, (size_t)st.st_size);
		if (err != SHMQ_PS_ENOTREADY || shmq_ps__now(CLOCK_MONOTONIC) > deadline) {
			close(fd);
			return err;
		}
		shmq_ps__sleep(1000000);
	}
sys:;
	int e = errno;
	close(fd);
	errno = e;
	return SHMQ_PS_ESYS;
}

static inline void shmq_ps_close(shmq_ps_segment *s)
{
	if (s->mem)
		munmap(s->mem, s->size);
	if (s->lockfd >= 0)
		close(s->lockfd);
	if (s->fd >= 0)
		close(s->fd);
	s->mem = NULL;
	s->fd = s->lockfd = -1;
}

/* ---- registry (LAYOUT.md section 7) ----------------------------------- */

static inline int shmq_ps__lock(int fd, int cmd, short type, int64_t byte)
{
	struct flock lk;
	memset(&lk, 0, sizeof lk);
	lk.l_type = type;
	lk.l_whence = SEEK_SET;
	lk.l_start = byte;
	lk.l_len = 1;
	if (fcntl(fd, cmd, &lk) != 0)
		return errno == EAGAIN || errno == EACCES ? 1 : SHMQ_PS_ESYS;
	return cmd == F_OFD_GETLK ? lk.l_type != F_UNLCK : 0;
}

static inline uint64_t shmq_ps__entry(const shmq_ps_segment *s, int i)
{
	return s->h.registry + (uint64_t)i * SHMQ_PS_LINE_SIZE;
}

/* A lock description inherited across fork(2) belongs to the parent. */
static inline int shmq_ps__own_lock_desc(shmq_ps_segment *s)
{
	if (s->owner == getpid())
		return SHMQ_PS_OK;
	close(s->lockfd);
	return shmq_ps__lock_desc(s);
}

/* shmq_ps__waiter_word is the word of waiter set k that holds entry i. */
static inline shmq_ps_u64 *shmq_ps__waiter_word(const shmq_ps_segment *s, int k, int i)
{
	return shmq_ps__u64(s, s->h.waiters + (uint64_t)k * SHMQ_PS_LINE_SIZE + 8 * (uint64_t)(i / 64));
}

static inline void shmq_ps__clear_waiter(const shmq_ps_segment *s, int i)
{
	for (int k = 0; k < SHMQ_PS_WAITER_SETS; k++)
		atomic_fetch_and(shmq_ps__waiter_word(s, k, i), ~(1ULL << (i % 64)));
}

/* shmq_ps__publisher_dead: the publisher's entry is attached and no live
 * process holds its lock. */
static inline int shmq_ps__publisher_dead(shmq_ps_segment *s)
{
	uint64_t base = shmq_ps__entry(s, SHMQ_PS_PUBLISHER_ENTRY);
	if (atomic_load(shmq_ps__u32(s, base + SHMQ_PS_ENTRY_STATE)) != SHMQ_PS_ENTRY_ATTACHED)
		return 0;
	return shmq_ps__lock(s->lockfd, F_OFD_GETLK, F_WRLCK, 1 + SHMQ_PS_PUBLISHER_ENTRY) == 0;
}

/* ---- waking and waiting (LAYOUT.md section 6) -------------------------- */

/* shmq_ps__wake_publisher is the publishing side of the wake protocol on
 * the producer wake line, after a release from position old (any_release:
 * 0), or after attaching or detaching (any_release: 1); count: advance the
 * entry's wake counter (not once it is detached). A release wakes the
 * parked publisher only if it moves this subscriber from before the
 * position the publisher waits for (PubWaitFor) to at or past it. */
static inline void shmq_ps__wake_publisher(shmq_ps_subscriber *sub, int any_release, uint64_t old, int count)
{
	shmq_ps_segment *s = sub->s;
	int any = 0;
	for (uint32_t w = 0; w < (s->h.registry_count + 63) / 64; w++)
		any |= atomic_load(shmq_ps__u64(s, s->h.waiters + SHMQ_PS_WAITER_SET_PRODUCERS * SHMQ_PS_LINE_SIZE + 8 * w)) != 0;
	if (!any)
		return;
	if (!any_release) {
		uint64_t d = atomic_load(shmq_ps__u64(s, s->h.producer + SHMQ_PS_PUB_WAIT_FOR)) - old;
		if (d == 0 || d > sub->head - old)
			return;
	}
	shmq_ps_u32 *seq = shmq_ps__u32(s, s->h.producer_wake + SHMQ_PS_WAKE_SEQ);
	atomic_fetch_add(seq, 1);
	syscall(SYS_futex, (void *)seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
	if (!count)
		return;
	shmq_ps_u64 *wakes = shmq_ps__u64(s, shmq_ps__entry(s, sub->index) + SHMQ_PS_ENTRY_WAKES);
	atomic_store(wakes, atomic_load(wakes) + 1);
}

static inline int shmq_ps__ready(shmq_ps_subscriber *sub)
{
	shmq_ps_segment *s = sub->s;
	return atomic_load(shmq_ps__u64(s, s->h.producer + SHMQ_PS_PUB_TAIL)) != sub->pos ||
	       atomic_load(shmq_ps__u32(s, shmq_ps__entry(s, SHMQ_PS_PUBLISHER_ENTRY) + SHMQ_PS_ENTRY_STATE)) ==
		       SHMQ_PS_ENTRY_DETACHED;
}

static inline int shmq_ps__ended(shmq_ps_subscriber *sub)
{
	shmq_ps_segment *s = sub->s;
	return atomic_load(shmq_ps__u32(s, shmq_ps__entry(s, SHMQ_PS_PUBLISHER_ENTRY) + SHMQ_PS_ENTRY_STATE)) ==
		       SHMQ_PS_ENTRY_DETACHED &&
	       atomic_load(shmq_ps__u64(s, s->h.producer + SHMQ_PS_PUB_TAIL)) == sub->pos;
}

/* shmq_ps_wait_data waits until a message may be there (0), the stream
 * ended (SHMQ_PS_EOF), the publisher died (SHMQ_PS_EPEERDEAD) or
 * timeout_ns passed (SHMQ_PS_ETIMEDOUT; negative: forever). It spins for
 * about 20 us, then registers in the subscribers' waiter set and parks on
 * the consumer wake line, at most 50 ms at a time. */
static inline int shmq_ps_wait_data(shmq_ps_subscriber *sub, int64_t timeout_ns)
{
	shmq_ps_segment *s = sub->s;
	if (shmq_ps__ended(sub))
		return SHMQ_PS_EOF;
	int64_t now = shmq_ps__now(CLOCK_MONOTONIC), spin_end = now + 20000;
	int64_t deadline = timeout_ns < 0 ? INT64_MAX : now + timeout_ns;
	while (shmq_ps__now(CLOCK_MONOTONIC) < spin_end) {
		for (int i = 0; i < 64; i++)
			if (shmq_ps__ready(sub))
				return SHMQ_PS_OK;
		sched_yield();
	}
	shmq_ps_u64 *word = shmq_ps__waiter_word(s, SHMQ_PS_WAITER_SET_CONSUMERS, sub->index);
	uint64_t bit = 1ULL << (sub->index % 64);
	shmq_ps_u32 *seq = shmq_ps__u32(s, s->h.consumer_wake + SHMQ_PS_WAKE_SEQ);
	atomic_fetch_or(word, bit);
	int err = SHMQ_PS_OK, parked = 0;
	for (;;) {
		uint32_t v = atomic_load(seq);
		if (shmq_ps__ready(sub))
			break;
		now = shmq_ps__now(CLOCK_MONOTONIC);
		if (now >= deadline) {
			err = SHMQ_PS_ETIMEDOUT;
			break;
		}
		int64_t park = deadline - now < 50000000 ? deadline - now : 50000000;
		struct timespec ts = { park / 1000000000, park % 1000000000 };
		syscall(SYS_futex, (void *)seq, FUTEX_WAIT, v, &ts, NULL, 0);
		parked = 1;
		if (shmq_ps__publisher_dead(s) && !shmq_ps__ready(sub)) {
			err = SHMQ_PS_EPEERDEAD;
			break;
		}
	}
	atomic_fetch_and(word, ~bit);
	if (parked) {
		sub->waits++;
		atomic_store(shmq_ps__u64(s, shmq_ps__entry(s, sub->index) + SHMQ_PS_ENTRY_WAITS), sub->waits);
	}
	if (err == SHMQ_PS_OK && shmq_ps__ended(sub))
		return SHMQ_PS_EOF;
	return err;
}

/* ---- reading (LAYOUT.md 18.8) ------------------------------------------ */

static inline uint64_t shmq_ps__seq_at(const shmq_ps_subscriber *sub, uint64_t pos)
{
	const shmq_ps_segment *s = sub->s;
	return atomic_load_explicit(shmq_ps__u64(s, s->h.data + (pos & sub->mask) + SHMQ_PS_RECORD_SEQ), memory_order_relaxed);
}

/* shmq_ps__intent_past: a lossy publisher may have overwritten the record
 * at pos. The acquire fence orders every read of the ring before it ahead
 * of the load of the intent. */
static inline int shmq_ps__intent_past(const shmq_ps_subscriber *sub, uint64_t pos)
{
	atomic_thread_fence(memory_order_acquire);
	return atomic_load(shmq_ps__u64(sub->s, sub->s->h.producer + SHMQ_PS_PUB_INTENT)) - pos > sub->cap;
}

/* shmq_ps_check_record validates a record header (CheckPubSubRecord):
 * 0 and its size and whether it is padding, or SHMQ_PS_ECORRUPT. */
static inline int shmq_ps_check_record(uint32_t length, uint32_t type, uint64_t idx, uint64_t avail, uint64_t cap,
				       uint32_t max_message, uint64_t *size, int *padding)
{
	*size = ((uint64_t)length + SHMQ_PS_RECORD_ALIGN - 1) & ~(uint64_t)(SHMQ_PS_RECORD_ALIGN - 1);
	if (length < SHMQ_PS_RECORD_HEADER_SIZE || *size > avail || *size > cap - idx)
		return SHMQ_PS_ECORRUPT;
	if (type == SHMQ_PS_TYPE_MESSAGE) {
		*padding = 0;
		return length - SHMQ_PS_RECORD_HEADER_SIZE > max_message ? SHMQ_PS_ECORRUPT : SHMQ_PS_OK;
	}
	if (type == SHMQ_PS_TYPE_PADDING) {
		*padding = 1;
		return idx + *size == cap ? SHMQ_PS_OK : SHMQ_PS_ECORRUPT;
	}
	return SHMQ_PS_ECORRUPT;
}

static inline void shmq_ps__store_position(shmq_ps_subscriber *sub)
{
	shmq_ps_segment *s = sub->s;
	uint64_t base = shmq_ps__entry(s, sub->index);
	atomic_store(shmq_ps__u64(s, base + SHMQ_PS_ENTRY_SUB_POSITION), sub->head);
	atomic_store(shmq_ps__u64(s, base + SHMQ_PS_ENTRY_SUB_SEQ), sub->head_seq);
}

/* shmq_ps__lapped resumes an overwritten lossy subscriber at the oldest
 * whole record: SHMQ_PS_ELOST with sub->last_lost set, or 0 if only padding
 * was skipped. */
static inline int shmq_ps__lapped(shmq_ps_subscriber *sub)
{
	shmq_ps_segment *s = sub->s;
	uint64_t last[3] = { 0, 0, 0 };
	for (int attempt = 0; attempt < (1 << 20); attempt++) {
		if (attempt % 64 == 63)
			sched_yield();
		uint64_t in = atomic_load(shmq_ps__u64(s, s->h.producer + SHMQ_PS_PUB_INTENT));
		uint64_t o = atomic_load(shmq_ps__u64(s, s->h.producer + SHMQ_PS_PUB_OLDEST));
		uint64_t t = atomic_load(shmq_ps__u64(s, s->h.producer + SHMQ_PS_PUB_TAIL));
		uint64_t seq = 0;
		int ok = o % SHMQ_PS_RECORD_ALIGN == 0 && t % SHMQ_PS_RECORD_ALIGN == 0 && t - o <= sub->cap && in - o <= sub->cap;
		if (ok) {
			seq = shmq_ps__seq_at(sub, o);
			ok = !shmq_ps__intent_past(sub, o);
		}
		if (!ok) {
			/* Progress explains an inconsistency once; the same values twice are corruption. */
			if (attempt > 0 && last[0] == in && last[1] == o && last[2] == t)
				return SHMQ_PS_ECORRUPT;
			last[0] = in, last[1] = o, last[2] = t;
			continue;
		}
		uint64_t lost = seq - sub->head_seq;
		if ((int64_t)lost < 0)
			return SHMQ_PS_ECORRUPT;
		sub->head = sub->pos = o;
		sub->head_seq = sub->seq = seq;
		sub->tail_cache = t;
		sub->peeked = sub->peeked_bytes = 0;
		sub->unverified = 0;
		shmq_ps__store_position(sub);
		if (lost == 0)
			return SHMQ_PS_OK;
		sub->lost += lost;
		sub->last_lost = lost;
		atomic_store(shmq_ps__u64(s, shmq_ps__entry(s, sub->index) + SHMQ_PS_ENTRY_SUB_LOST), sub->lost);
		return SHMQ_PS_ELOST;
	}
	return SHMQ_PS_ECORRUPT;
}

/* shmq_ps_peek returns the next message without releasing it: 0 with *msg
 * and *len, SHMQ_PS_EEMPTY, SHMQ_PS_ELOST (lossy: sub->last_lost messages
 * were overwritten; the next call returns the oldest whole one), or
 * SHMQ_PS_ECORRUPT. *seq_out, if not NULL, receives its sequence number. In
 * a lossy queue the view is to be trusted only if the shmq_ps_release
 * that follows returns 0. */
static inline int shmq_ps_peek(shmq_ps_subscriber *sub, const void **msg, size_t *len, uint64_t *seq_out)
{
	shmq_ps_segment *s = sub->s;
	for (;;) {
		if (sub->pos == sub->tail_cache) {
			uint64_t t = atomic_load(shmq_ps__u64(s, s->h.producer + SHMQ_PS_PUB_TAIL));
			if (t % SHMQ_PS_RECORD_ALIGN != 0 || (int64_t)(t - sub->tail_cache) < 0 ||
			    (!sub->lossy && t - sub->head > sub->cap))
				return SHMQ_PS_ECORRUPT;
			sub->tail_cache = t;
			if (t == sub->pos) {
				sub->stalls++;
				atomic_store(shmq_ps__u64(s, shmq_ps__entry(s, sub->index) + SHMQ_PS_ENTRY_STALLS), sub->stalls);
				return SHMQ_PS_EEMPTY;
			}
		}
		uint64_t at = sub->pos, idx = at & sub->mask, rec = s->h.data + idx;
		uint32_t length = atomic_load_explicit(shmq_ps__u32(s, rec + SHMQ_PS_RECORD_LENGTH), memory_order_relaxed);
		uint32_t type = atomic_load_explicit(shmq_ps__u32(s, rec + SHMQ_PS_RECORD_TYPE), memory_order_relaxed);
		uint64_t seq = atomic_load_explicit(shmq_ps__u64(s, rec + SHMQ_PS_RECORD_SEQ), memory_order_relaxed);
		uint64_t size;
		int padding;
		int err = shmq_ps_check_record(length, type, idx, sub->tail_cache - at, sub->cap, s->h.max_message, &size, &padding);
		if (err == SHMQ_PS_OK && seq != sub->seq)
			err = SHMQ_PS_ECORRUPT;
		if (sub->lossy && shmq_ps__intent_past(sub, at)) {
			/* Overwritten, or the header torn as it was read. */
			if ((err = shmq_ps__lapped(sub)) != SHMQ_PS_OK)
				return err;
			continue;
		}
		if (err)
			return err;
		sub->pos += size;
		if (padding)
			continue;
		if (seq_out)
			*seq_out = sub->seq;
		sub->seq++;
		*len = length - SHMQ_PS_RECORD_HEADER_SIZE;
		*msg = s->mem + rec + SHMQ_PS_RECORD_HEADER_SIZE;
		sub->peeked++;
		sub->peeked_bytes += *len;
		if (sub->lossy && !sub->unverified) {
			sub->unverified = 1;
			sub->view_start = at;
		}
		return SHMQ_PS_OK;
	}
}

/* shmq_ps__verify checks a lossy subscriber's views and copies since the
 * last check: 0, or the result of resuming (SHMQ_PS_ELOST). */
static inline int shmq_ps__verify(shmq_ps_subscriber *sub)
{
	if (shmq_ps__intent_past(sub, sub->view_start))
		return shmq_ps__lapped(sub);
	sub->unverified = 0;
	return SHMQ_PS_OK;
}

/* shmq_ps_release releases what was peeked; in a lossy queue it first
 * checks that it was not overwritten, and returns SHMQ_PS_ELOST if it was
 * (the views held wrong data). */
static inline int shmq_ps_release(shmq_ps_subscriber *sub)
{
	shmq_ps_segment *s = sub->s;
	if (sub->unverified) {
		int err = shmq_ps__verify(sub);
		if (err)
			return err;
	}
	if (sub->pos == sub->head)
		return SHMQ_PS_OK;
	uint64_t old = sub->head;
	sub->head = sub->pos;
	sub->head_seq = sub->seq;
	shmq_ps__store_position(sub);
	sub->msgs += sub->peeked;
	sub->bytes += sub->peeked_bytes;
	sub->peeked = sub->peeked_bytes = 0;
	uint64_t base = shmq_ps__entry(s, sub->index);
	atomic_store(shmq_ps__u64(s, base + SHMQ_PS_ENTRY_MESSAGES), sub->msgs);
	atomic_store(shmq_ps__u64(s, base + SHMQ_PS_ENTRY_BYTES), sub->bytes);
	if (!sub->lossy)
		shmq_ps__wake_publisher(sub, 0, old, 1);
	return SHMQ_PS_OK;
}

/* shmq_ps_try_recv copies the next message into buf (cap bytes) and
 * releases it: 0 with *len and *seq_out (if not NULL), SHMQ_PS_EEMPTY,
 * SHMQ_PS_ESHORT (the message stays), SHMQ_PS_ELOST or SHMQ_PS_ECORRUPT. A
 * lossy copy is checked before it is reported. */
static inline int shmq_ps_try_recv(shmq_ps_subscriber *sub, void *buf, size_t cap, size_t *len, uint64_t *seq_out)
{
	const void *m;
	size_t n;
	uint64_t seq;
	int err = shmq_ps_peek(sub, &m, &n, &seq);
	if (err)
		return err;
	if (n > cap) {
		sub->pos -= (n + SHMQ_PS_RECORD_HEADER_SIZE + SHMQ_PS_RECORD_ALIGN - 1) & ~(uint64_t)(SHMQ_PS_RECORD_ALIGN - 1);
		sub->seq--;
		sub->peeked--;
		sub->peeked_bytes -= n;
		sub->unverified = sub->unverified && sub->pos != sub->view_start;
		return SHMQ_PS_ESHORT;
	}
	memcpy(buf, m, n);
	if ((err = shmq_ps_release(sub)))
		return err;
	*len = n;
	if (seq_out)
		*seq_out = seq;
	return SHMQ_PS_OK;
}

/* shmq_ps_recv is shmq_ps_try_recv that waits (shmq_ps_wait_data) while
 * there is no message; it returns SHMQ_PS_EOF at the end of the stream. */
static inline int shmq_ps_recv(shmq_ps_subscriber *sub, void *buf, size_t cap, size_t *len, uint64_t *seq_out,
			       int64_t timeout_ns)
{
	int64_t deadline = timeout_ns < 0 ? -1 : shmq_ps__now(CLOCK_MONOTONIC) + timeout_ns;
	for (;;) {
		int err = shmq_ps_try_recv(sub, buf, cap, len, seq_out);
		if (err != SHMQ_PS_EEMPTY)
			return err;
		int64_t left = deadline < 0 ? -1 : deadline - shmq_ps__now(CLOCK_MONOTONIC);
		if (deadline >= 0 && left <= 0)
			return SHMQ_PS_ETIMEDOUT;
		if ((err = shmq_ps_wait_data(sub, left)))
			return err;
	}
}

/* ---- attaching (LAYOUT.md 18.7) ---------------------------------------- */

/* shmq_ps__walk_latest walks the records from position from to the tail t
 * and returns the last message's position in *out (t if none). */
static inline int shmq_ps__walk_latest(shmq_ps_subscriber *sub, uint64_t from, uint64_t t, uint64_t *out)
{
	shmq_ps_segment *s = sub->s;
	uint64_t last = t;
	for (uint64_t p = from; p != t;) {
		if (t - p > sub->cap)
			return SHMQ_PS_ECORRUPT;
		uint64_t idx = p & sub->mask, size;
		int padding;
		uint32_t length = atomic_load_explicit(shmq_ps__u32(s, s->h.data + idx + SHMQ_PS_RECORD_LENGTH), memory_order_relaxed);
		uint32_t type = atomic_load_explicit(shmq_ps__u32(s, s->h.data + idx + SHMQ_PS_RECORD_TYPE), memory_order_relaxed);
		if (shmq_ps_check_record(length, type, idx, t - p, sub->cap, s->h.max_message, &size, &padding))
			return SHMQ_PS_ECORRUPT;
		if (!padding)
			last = p;
		p += size;
	}
	*out = last;
	return SHMQ_PS_OK;
}

static inline void shmq_ps__place(shmq_ps_subscriber *sub, uint64_t pos, uint64_t seq, uint64_t tail)
{
	sub->head = sub->pos = pos;
	sub->head_seq = sub->seq = seq;
	sub->tail_cache = tail;
	shmq_ps__store_position(sub);
}

static inline int shmq_ps__start_pinned(shmq_ps_subscriber *sub, int from)
{
	shmq_ps_segment *s = sub->s;
	shmq_ps_u64 *limit = shmq_ps__u64(s, s->h.producer + SHMQ_PS_PUB_LIMIT);
	shmq_ps_u64 *pos_word = shmq_ps__u64(s, shmq_ps__entry(s, sub->index) + SHMQ_PS_ENTRY_SUB_POSITION);
	for (int attempt = 0; attempt < (1 << 20); attempt++) {
		if (attempt % 64 == 63)
			sched_yield();
		uint64_t lim = atomic_load(limit);
		uint64_t t = atomic_load(shmq_ps__u64(s, s->h.producer + SHMQ_PS_PUB_TAIL));
		uint64_t floor = lim - sub->cap;
		if (t % SHMQ_PS_RECORD_ALIGN != 0 || floor % SHMQ_PS_RECORD_ALIGN != 0 || t - floor > sub->cap)
			return SHMQ_PS_ECORRUPT;
		uint64_t pos = from == SHMQ_PS_FROM_NEXT ? t : floor;
		atomic_store(pos_word, pos); /* pin, then check the limit (Dekker with the publisher's scan) */
		uint64_t d = atomic_load(limit) - sub->cap - pos;
		if (d != 0 && (int64_t)d > 0)
			continue;
		if (from == SHMQ_PS_FROM_LATEST) {
			int err = shmq_ps__walk_latest(sub, pos, t, &pos);
			if (err)
				return err;
		}
		shmq_ps__place(sub, pos, shmq_ps__seq_at(sub, pos), t);
		return SHMQ_PS_OK;
	}
	return SHMQ_PS_ECORRUPT;
}

static inline int shmq_ps__start_lossy(shmq_ps_subscriber *sub, int from)
{
	shmq_ps_segment *s = sub->s;
	uint64_t last[3] = { 0, 0, 0 };
	for (int attempt = 0; attempt < (1 << 20); attempt++) {
		if (attempt % 64 == 63)
			sched_yield();
		uint64_t o = atomic_load(shmq_ps__u64(s, s->h.producer + SHMQ_PS_PUB_OLDEST));
		uint64_t t = atomic_load(shmq_ps__u64(s, s->h.producer + SHMQ_PS_PUB_TAIL));
		if (o % SHMQ_PS_RECORD_ALIGN != 0 || t % SHMQ_PS_RECORD_ALIGN != 0)
			return SHMQ_PS_ECORRUPT;
		uint64_t pos = o, base = o;
		int err = SHMQ_PS_OK;
		uint64_t seq = 0;
		int ok = t - o <= sub->cap;
		if (ok) {
			if (from == SHMQ_PS_FROM_NEXT)
				pos = base = t;
			else if (from == SHMQ_PS_FROM_LATEST)
				err = shmq_ps__walk_latest(sub, o, t, &pos);
			if (err)
				pos = t;
			seq = shmq_ps__seq_at(sub, pos);
			ok = !shmq_ps__intent_past(sub, base);
		}
		if (!ok) {
			uint64_t in = atomic_load(shmq_ps__u64(s, s->h.producer + SHMQ_PS_PUB_INTENT));
			if (attempt > 0 && last[0] == in && last[1] == o && last[2] == t)
				return SHMQ_PS_ECORRUPT;
			last[0] = in, last[1] = o, last[2] = t;
			continue;
		}
		if (err)
			return err;
		shmq_ps__place(sub, pos, seq, t);
		return SHMQ_PS_OK;
	}
	return SHMQ_PS_ECORRUPT;
}

/* shmq_ps_subscribe takes a free subscriber entry (one whose holder died
 * included) and starts at from (SHMQ_PS_FROM_*). */
static inline int shmq_ps_subscribe(shmq_ps_segment *s, int from, shmq_ps_subscriber *sub)
{
	if (from < SHMQ_PS_FROM_LATEST || from > SHMQ_PS_FROM_NEXT)
		return SHMQ_PS_EINVAL;
	int err = shmq_ps__own_lock_desc(s);
	if (err)
		return err;
	memset(sub, 0, sizeof *sub);
	sub->s = s;
	sub->index = -1;
	sub->lossy = (s->h.flags & SHMQ_PS_FLAG_LOSSY) != 0;
	sub->cap = s->h.capacity;
	sub->mask = s->h.capacity - 1;
	/* Sweepers hold a dead entry's lock for a moment: two passes. */
	for (int pass = 0; pass < 2 && sub->index < 0; pass++) {
		if (pass)
			shmq_ps__sleep(300000);
		for (int i = SHMQ_PS_FIRST_SUBSCRIBER; i < (int)s->h.registry_count; i++) {
			int r = shmq_ps__lock(s->lockfd, F_OFD_SETLK, F_WRLCK, 1 + i);
			if (r == SHMQ_PS_ESYS)
				return r;
			if (r == 0) {
				sub->index = i;
				break;
			}
		}
	}
	if (sub->index < 0)
		return SHMQ_PS_EFULL;
	int i = sub->index;
	uint64_t base = shmq_ps__entry(s, i);
	shmq_ps__clear_waiter(s, i); /* a dead predecessor's registrations are ours to clear */
	for (uint64_t off = SHMQ_PS_ENTRY_MESSAGES; off <= SHMQ_PS_ENTRY_WAKES; off += 8)
		atomic_store(shmq_ps__u64(s, base + off), 0);
	atomic_store(shmq_ps__u64(s, base + SHMQ_PS_ENTRY_SUB_LOST), 0);
	atomic_store(shmq_ps__u32(s, base + SHMQ_PS_ENTRY_ROLE), SHMQ_PS_ROLE_CONSUMER);
	atomic_store(shmq_ps__u32(s, base + SHMQ_PS_ENTRY_PID), (uint32_t)getpid());
	shmq_ps_u32 *gen = shmq_ps__u32(s, base + SHMQ_PS_ENTRY_GEN);
	atomic_store(gen, atomic_load(gen) + 1);
	atomic_store(shmq_ps__u64(s, base + SHMQ_PS_ENTRY_ATTACH_NANO), (uint64_t)shmq_ps__now(CLOCK_REALTIME));
	atomic_store(shmq_ps__u32(s, base + SHMQ_PS_ENTRY_STATE), SHMQ_PS_ENTRY_ATTACHED);
	err = sub->lossy ? shmq_ps__start_lossy(sub, from) : shmq_ps__start_pinned(sub, from);
	if (err) {
		atomic_store(shmq_ps__u32(s, base + SHMQ_PS_ENTRY_STATE), SHMQ_PS_ENTRY_DETACHED);
		shmq_ps__lock(s->lockfd, F_OFD_SETLK, F_UNLCK, 1 + i);
		return err;
	}
	if (!sub->lossy)
		shmq_ps__wake_publisher(sub, 1, 0, 1); /* it may wait on the predecessor's position */
	return SHMQ_PS_OK;
}

/* shmq_ps_unsubscribe detaches: a back-pressure publisher stops waiting for
 * this subscriber. What was peeked and not released is given up. */
static inline int shmq_ps_unsubscribe(shmq_ps_subscriber *sub)
{
	shmq_ps_segment *s = sub->s;
	if (sub->index < 0)
		return SHMQ_PS_EINVAL;
	shmq_ps__clear_waiter(s, sub->index);
	atomic_store(shmq_ps__u32(s, shmq_ps__entry(s, sub->index) + SHMQ_PS_ENTRY_STATE), SHMQ_PS_ENTRY_DETACHED);
	int err = shmq_ps__lock(s->lockfd, F_OFD_SETLK, F_UNLCK, 1 + sub->index);
	if (!sub->lossy)
		shmq_ps__wake_publisher(sub, 1, 0, 0);
	sub->index = -1;
	return err;
}

#ifdef __cplusplus
}
#endif

#endif /* SHMQ_PUBSUB_H */
