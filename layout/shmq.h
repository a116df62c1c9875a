/*
 * shmq.h - header-only C11 implementation of shmq layout version 1
 * (see LAYOUT.md in this directory, which is normative).
 *
 * Linux only, 64-bit little-endian only, C11 <stdatomic.h> and libc only.
 * Include this header before any system header, or compile with
 * -D_GNU_SOURCE: it needs F_OFD_SETLK, syscall(2) and clock_gettime.
 *
 * What it provides:
 *   - the layout's constants and offsets (SHMQ_* macros, matching the Go
 *     constants of package layout) and structs whose offsetof values equal
 *     them (checked with _Static_assert);
 *   - shmq_decode: header validation, the same checks as layout.Decode;
 *   - shmq_open / shmq_open_name / shmq_open_fd / shmq_open_path: open and
 *     map an existing segment, waiting (bounded) for its creator, detecting
 *     abandoned creation (LAYOUT.md sections 9-10);
 *   - shmq_attach / shmq_detach / shmq_entry_alive: registry entries with
 *     OFD-lock liveness (section 7);
 *   - SPSC producer (reserve/commit, try_send, blocking send) and consumer
 *     (peek/release, try_recv, blocking recv) with the Go consumer's
 *     validation and the futex wake protocol (sections 6, 11-13);
 *   - MPMC producer (reserve/commit, try_send, blocking send) and consumer
 *     (peek/release, try_recv, blocking recv) of the lock-free slot
 *     protocol (section 14), attaching any free registry entry, with the Go
 *     code's validation, bounded retry loops and crash recovery (a dead
 *     producer's claimed slot is skipped, the message in a dead consumer's
 *     taken slot is requeued, a reused entry's stale claims are repaired on
 *     attach).
 *
 * Not implemented: creating segments, and MPMC locked mode (FlagLocked):
 * the MPMC calls refuse such a segment with SHMQ_ENOTIMPL, never touching
 * it. Every flag is must-understand (LAYOUT.md section 3).
 *
 * Errors are negative SHMQ_E* values (errno is preserved for SHMQ_ESYS);
 * shmq_strerror names them. Nothing here is thread-safe per handle: one
 * producer or consumer handle belongs to one thread at a time.
 */
#ifndef SHMQ_H
#define SHMQ_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>

#if !defined(__LP64__) || !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "shmq layout v1 is defined for 64-bit little-endian ABIs only"
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

/* ---------------------------------------------------------------------- */
/* Constants (layout/layout.go, layout/spsc.go, layout/decode.go)          */
/* ---------------------------------------------------------------------- */

#define SHMQ_MAGIC       UINT64_C(0x0a1a0a0d514d4853) /* "SHMQ\r\n\x1a\n" */
#define SHMQ_VERSION     1u
#define SHMQ_LINE_SIZE   128u
#define SHMQ_PAGE_SIZE   4096u
#define SHMQ_HEADER_SIZE 256u /* descriptor line + offset table line */

#define SHMQ_KIND_SPSC 1u
#define SHMQ_KIND_MPMC 2u

/* Flags (must-understand). FlagLocked: an MPMC queue in locked mode, which
 * this header decodes but does not implement (SHMQ_ENOTIMPL). */
#define SHMQ_FLAG_LOCKED 1u

#define SHMQ_STATE_INIT  0u
#define SHMQ_STATE_READY 0x59444552u /* "REDY" */

/* Descriptor line (line 0). */
#define SHMQ_OFF_MAGIC        0  /* u64 */
#define SHMQ_OFF_STATE        8  /* u32 */
#define SHMQ_OFF_VERSION      12 /* u32 */
#define SHMQ_OFF_KIND         16 /* u32 */
#define SHMQ_OFF_FLAGS        20 /* u32 flags, must-understand: 0 or (MPMC) SHMQ_FLAG_LOCKED */
#define SHMQ_OFF_TOTAL_SIZE   24 /* u64 */
#define SHMQ_OFF_CAPACITY     32 /* u64 SPSC data bytes / MPMC slots */
#define SHMQ_OFF_MAX_MESSAGE  40 /* u32 */
#define SHMQ_OFF_SLOT_SIZE    44 /* u32 MPMC slot bytes / SPSC record alignment */
#define SHMQ_OFF_LINE_SIZE    48 /* u32 */
#define SHMQ_OFF_CREATOR_PID  52 /* u32 */
#define SHMQ_OFF_CREATED_NANO 56 /* u64 */
#define SHMQ_OFF_HEADER_SIZE  64 /* u32 */

/* Offset table (line 1). */
#define SHMQ_OFF_TAB_PRODUCER       128 /* u64 */
#define SHMQ_OFF_TAB_CONSUMER       136 /* u64 */
#define SHMQ_OFF_TAB_PRODUCER_WAKE  144 /* u64 */
#define SHMQ_OFF_TAB_CONSUMER_WAKE  152 /* u64 */
#define SHMQ_OFF_TAB_REGISTRY       160 /* u64 */
#define SHMQ_OFF_TAB_REGISTRY_COUNT 168 /* u32 */
#define SHMQ_OFF_TAB_ENTRY_SIZE     172 /* u32 */
#define SHMQ_OFF_TAB_DATA           176 /* u64 */
#define SHMQ_OFF_TAB_DATA_SIZE      184 /* u64 */

/* Cursor line. */
#define SHMQ_CURSOR_POSITION 0 /* u64 */

/* Wake line. */
#define SHMQ_WAKE_SEQ     0 /* u32 futex word */
#define SHMQ_WAKE_WAITERS 4 /* u32 */

/* Registry entry. */
#define SHMQ_ENTRY_STATE       0  /* u32 */
#define SHMQ_ENTRY_ROLE        4  /* u32 */
#define SHMQ_ENTRY_PID         8  /* u32 */
#define SHMQ_ENTRY_GEN         12 /* u32 */
#define SHMQ_ENTRY_ATTACH_NANO 16 /* u64 */
#define SHMQ_ENTRY_MESSAGES    24 /* u64 */
#define SHMQ_ENTRY_BYTES       32 /* u64 */
#define SHMQ_ENTRY_STALLS      40 /* u64 */
#define SHMQ_ENTRY_WAITS       48 /* u64 */
#define SHMQ_ENTRY_WAKES       56 /* u64 */

#define SHMQ_ENTRY_FREE     0u
#define SHMQ_ENTRY_ATTACHED 1u
#define SHMQ_ENTRY_DETACHED 2u

#define SHMQ_ROLE_PRODUCER 1u
#define SHMQ_ROLE_CONSUMER 2u

#define SHMQ_INIT_LOCK_BYTE 0
#define SHMQ_ENTRY_LOCK_BYTE(i) (1 + (int64_t)(i))

#define SHMQ_SPSC_PRODUCER_ENTRY 0
#define SHMQ_SPSC_CONSUMER_ENTRY 1

#define SHMQ_MAX_REGISTRY_ENTRIES 65536u

/* SPSC records. */
#define SHMQ_RECORD_HEADER_SIZE 8u
#define SHMQ_RECORD_ALIGN       8u
#define SHMQ_RECORD_LENGTH      0 /* u32 header + payload length, unaligned */
#define SHMQ_RECORD_TYPE        4 /* u32 */
#define SHMQ_TYPE_MESSAGE       1u
#define SHMQ_TYPE_PADDING       0xFFFFFFFFu

#define SHMQ_MIN_SPSC_CAPACITY UINT64_C(32)
#define SHMQ_MAX_SPSC_CAPACITY (UINT64_C(1) << 40)
#define SHMQ_MAX_RECORD_LENGTH (UINT64_C(1) << 30)

/* MPMC slots (layout/mpmc.go; LAYOUT.md section 14). */
#define SHMQ_SLOT_HEADER_SIZE 16u
#define SHMQ_SLOT_SEQ         0  /* u64 sequence word */
#define SHMQ_SLOT_LENGTH      8  /* u32 payload length, 0 = tombstone */
#define SHMQ_SLOT_PRODUCER    12 /* u32 registry index of the writer (informational) */
#define SHMQ_SLOT_ALIGN       64u
#define SHMQ_MIN_SLOT_SIZE    SHMQ_SLOT_ALIGN
#define SHMQ_MAX_SLOT_SIZE    (1u << 20)
#define SHMQ_MAX_MPMC_SLOTS   (UINT64_C(1) << 24)

#define SHMQ_SLOT_EMPTY   0u /* E(p) */
#define SHMQ_SLOT_WRITING 1u /* W(p) */
#define SHMQ_SLOT_FULL    2u /* F(p) */
#define SHMQ_SLOT_READING 3u /* R(p) */

#define SHMQ_SEQ_RANK_SHIFT 16
#define SHMQ_SEQ_OWNER_MASK ((UINT64_C(1) << SHMQ_SEQ_RANK_SHIFT) - 1)
#define SHMQ_SEQ_RANK_BITS  48
/* The owner of R(p) and W(p) words that no registry entry holds: a message
 * whose consumer is gone, to be requeued (R), or being requeued, complete,
 * for anyone to publish (W). MPMC registry indices stay below it. */
#define SHMQ_SEQ_OWNER_ORPHAN   0xFFFFu
#define SHMQ_MAX_MPMC_REGISTRY  SHMQ_SEQ_OWNER_ORPHAN

/* The MPMC code's bounds (mpmc/queue.go, mpmc/wait.go): retry loops give up
 * with SHMQ_ECORRUPT after this many attempts; a claimed slot word seen
 * unchanged this long is checked against the registry, at most once per
 * period; a waiter re-runs its operation at least this often. */
#define SHMQ_MPMC_MAX_ATTEMPTS (1 << 20)
#define SHMQ_MPMC_SUSPECT_NS   INT64_C(2000000)
#define SHMQ_MPMC_RECHECK_NS   INT64_C(5000000)

/* Fixed positions that version 1 creators use (readers use the table). */
#define SHMQ_V1_PRODUCER_LINE      256
#define SHMQ_V1_CONSUMER_LINE      384
#define SHMQ_V1_PRODUCER_WAKE_LINE 512
#define SHMQ_V1_CONSUMER_WAKE_LINE 640
#define SHMQ_V1_REGISTRY           768

/* Shm names: 1..30 of [A-Za-z0-9._-], not starting with a dot. */
#define SHMQ_MAX_NAME_LEN 30

/* Wait policy (compare spsc/wait.go): check the peer's liveness this often,
 * and park on the futex at most this long at a time, because a Go peer
 * configured with a non-futex notifier (or an older Go build) bumps the seq
 * word without FUTEX_WAKE (LAYOUT.md section 6). */
#define SHMQ_LIVENESS_PERIOD_NS INT64_C(100000000)
#define SHMQ_PARK_MAX_NS        INT64_C(1000000)
#define SHMQ_SPIN_CHECKS        1000

/* ---------------------------------------------------------------------- */
/* Structs mirroring the lines (for offsetof and for readers' convenience) */
/* ---------------------------------------------------------------------- */

struct shmq_descriptor_line {
	uint64_t magic;
	uint32_t state;
	uint32_t version;
	uint32_t kind;
	uint32_t flags;
	uint64_t total_size;
	uint64_t capacity;
	uint32_t max_message;
	uint32_t slot_size;
	uint32_t line_size;
	uint32_t creator_pid;
	uint64_t created_nano;
	uint32_t header_size;
	uint8_t reserved[SHMQ_LINE_SIZE - 68];
};

struct shmq_offset_line {
	uint64_t producer;
	uint64_t consumer;
	uint64_t producer_wake;
	uint64_t consumer_wake;
	uint64_t registry;
	uint32_t registry_count;
	uint32_t entry_size;
	uint64_t data;
	uint64_t data_size;
	uint8_t reserved[SHMQ_LINE_SIZE - 64];
};

struct shmq_segment_header {
	struct shmq_descriptor_line desc;
	struct shmq_offset_line tab;
};

struct shmq_cursor_line {
	uint64_t position;
	uint8_t reserved[SHMQ_LINE_SIZE - 8];
};

struct shmq_wake_line {
	uint32_t seq;
	uint32_t waiters;
	uint8_t reserved[SHMQ_LINE_SIZE - 8];
};

struct shmq_registry_entry {
	uint32_t state;
	uint32_t role;
	uint32_t pid;
	uint32_t gen;
	uint64_t attach_nano;
	uint64_t messages;
	uint64_t bytes;
	uint64_t stalls;
	uint64_t waits;
	uint64_t wakes;
	uint8_t reserved[SHMQ_LINE_SIZE - 64];
};

struct shmq_record_header {
	uint32_t length;
	uint32_t type;
};

struct shmq_slot_header {
	uint64_t seq;
	uint32_t length;
	uint32_t producer;
};

#define SHMQ__CHECK(s, f, off) _Static_assert(offsetof(struct s, f) == (off), #s "." #f)
SHMQ__CHECK(shmq_segment_header, desc.magic, SHMQ_OFF_MAGIC);
SHMQ__CHECK(shmq_segment_header, desc.state, SHMQ_OFF_STATE);
SHMQ__CHECK(shmq_segment_header, desc.version, SHMQ_OFF_VERSION);
SHMQ__CHECK(shmq_segment_header, desc.kind, SHMQ_OFF_KIND);
SHMQ__CHECK(shmq_segment_header, desc.flags, SHMQ_OFF_FLAGS);
SHMQ__CHECK(shmq_segment_header, desc.total_size, SHMQ_OFF_TOTAL_SIZE);
SHMQ__CHECK(shmq_segment_header, desc.capacity, SHMQ_OFF_CAPACITY);
SHMQ__CHECK(shmq_segment_header, desc.max_message, SHMQ_OFF_MAX_MESSAGE);
SHMQ__CHECK(shmq_segment_header, desc.slot_size, SHMQ_OFF_SLOT_SIZE);
SHMQ__CHECK(shmq_segment_header, desc.line_size, SHMQ_OFF_LINE_SIZE);
SHMQ__CHECK(shmq_segment_header, desc.creator_pid, SHMQ_OFF_CREATOR_PID);
SHMQ__CHECK(shmq_segment_header, desc.created_nano, SHMQ_OFF_CREATED_NANO);
SHMQ__CHECK(shmq_segment_header, desc.header_size, SHMQ_OFF_HEADER_SIZE);
SHMQ__CHECK(shmq_segment_header, tab.producer, SHMQ_OFF_TAB_PRODUCER);
SHMQ__CHECK(shmq_segment_header, tab.consumer, SHMQ_OFF_TAB_CONSUMER);
SHMQ__CHECK(shmq_segment_header, tab.producer_wake, SHMQ_OFF_TAB_PRODUCER_WAKE);
SHMQ__CHECK(shmq_segment_header, tab.consumer_wake, SHMQ_OFF_TAB_CONSUMER_WAKE);
SHMQ__CHECK(shmq_segment_header, tab.registry, SHMQ_OFF_TAB_REGISTRY);
SHMQ__CHECK(shmq_segment_header, tab.registry_count, SHMQ_OFF_TAB_REGISTRY_COUNT);
SHMQ__CHECK(shmq_segment_header, tab.entry_size, SHMQ_OFF_TAB_ENTRY_SIZE);
SHMQ__CHECK(shmq_segment_header, tab.data, SHMQ_OFF_TAB_DATA);
SHMQ__CHECK(shmq_segment_header, tab.data_size, SHMQ_OFF_TAB_DATA_SIZE);
SHMQ__CHECK(shmq_cursor_line, position, SHMQ_CURSOR_POSITION);
SHMQ__CHECK(shmq_wake_line, seq, SHMQ_WAKE_SEQ);
SHMQ__CHECK(shmq_wake_line, waiters, SHMQ_WAKE_WAITERS);
SHMQ__CHECK(shmq_registry_entry, state, SHMQ_ENTRY_STATE);
SHMQ__CHECK(shmq_registry_entry, role, SHMQ_ENTRY_ROLE);
SHMQ__CHECK(shmq_registry_entry, pid, SHMQ_ENTRY_PID);
SHMQ__CHECK(shmq_registry_entry, gen, SHMQ_ENTRY_GEN);
SHMQ__CHECK(shmq_registry_entry, attach_nano, SHMQ_ENTRY_ATTACH_NANO);
SHMQ__CHECK(shmq_registry_entry, messages, SHMQ_ENTRY_MESSAGES);
SHMQ__CHECK(shmq_registry_entry, bytes, SHMQ_ENTRY_BYTES);
SHMQ__CHECK(shmq_registry_entry, stalls, SHMQ_ENTRY_STALLS);
SHMQ__CHECK(shmq_registry_entry, waits, SHMQ_ENTRY_WAITS);
SHMQ__CHECK(shmq_registry_entry, wakes, SHMQ_ENTRY_WAKES);
SHMQ__CHECK(shmq_record_header, length, SHMQ_RECORD_LENGTH);
SHMQ__CHECK(shmq_record_header, type, SHMQ_RECORD_TYPE);
SHMQ__CHECK(shmq_slot_header, seq, SHMQ_SLOT_SEQ);
SHMQ__CHECK(shmq_slot_header, length, SHMQ_SLOT_LENGTH);
SHMQ__CHECK(shmq_slot_header, producer, SHMQ_SLOT_PRODUCER);
_Static_assert(sizeof(struct shmq_slot_header) == SHMQ_SLOT_HEADER_SIZE, "slot header");
_Static_assert(sizeof(struct shmq_segment_header) == SHMQ_HEADER_SIZE, "header size");
_Static_assert(sizeof(struct shmq_cursor_line) == SHMQ_LINE_SIZE, "cursor line");
_Static_assert(sizeof(struct shmq_wake_line) == SHMQ_LINE_SIZE, "wake line");
_Static_assert(sizeof(struct shmq_registry_entry) == SHMQ_LINE_SIZE, "registry entry");
_Static_assert(sizeof(struct shmq_record_header) == SHMQ_RECORD_HEADER_SIZE, "record header");

/* ---------------------------------------------------------------------- */
/* Errors                                                                  */
/* ---------------------------------------------------------------------- */

enum {
	SHMQ_OK = 0,
	SHMQ_ESYS = -1,         /* system call failed; errno is set */
	SHMQ_ENOTSEGMENT = -2,  /* not a shmq segment */
	SHMQ_ENOTREADY = -3,    /* creator has not published the header (in time) */
	SHMQ_EABANDONED = -4,   /* creator died before publishing */
	SHMQ_EVERSION = -5,     /* unsupported layout version or flags */
	SHMQ_EKIND = -6,        /* wrong or unknown queue kind */
	SHMQ_ECORRUPT = -7,     /* shared memory holds values no correct peer writes */
	SHMQ_EBADNAME = -8,     /* invalid location */
	SHMQ_EPERM = -9,        /* segment owned by another uid */
	SHMQ_EROLETAKEN = -10,  /* registry entry held by a live process */
	SHMQ_EFULL = -11,       /* ring full */
	SHMQ_EEMPTY = -12,      /* ring empty */
	SHMQ_EMSGSIZE = -13,    /* message size out of range */
	SHMQ_ESHORTBUF = -14,   /* buffer too small for the next message */
	SHMQ_EPENDING = -15,    /* reserved records not committed */
	SHMQ_EPEERDEAD = -16,   /* peer died without detaching */
	SHMQ_ETIMEDOUT = -17,   /* timeout */
	SHMQ_ECLOSED = -18,     /* handle closed */
	SHMQ_EINVAL = -19,      /* invalid argument */
	SHMQ_ENOTIMPL = -20,    /* segment uses a flag this header does not implement (MPMC locked mode) */
	SHMQ_EREGISTRYFULL = -21 /* every registry entry is held by a live process */
};

static inline const char *shmq_strerror(int err)
{
	switch (err) {
	case SHMQ_OK: return "ok";
	case SHMQ_ESYS: return "system call failed";
	case SHMQ_ENOTSEGMENT: return "not a shmq segment";
	case SHMQ_ENOTREADY: return "segment not initialized";
	case SHMQ_EABANDONED: return "segment abandoned by its creator";
	case SHMQ_EVERSION: return "unsupported layout version";
	case SHMQ_EKIND: return "wrong queue kind";
	case SHMQ_ECORRUPT: return "corrupt segment";
	case SHMQ_EBADNAME: return "invalid location";
	case SHMQ_EPERM: return "segment owned by another user";
	case SHMQ_EROLETAKEN: return "role taken by a live process";
	case SHMQ_EFULL: return "queue is full";
	case SHMQ_EEMPTY: return "queue is empty";
	case SHMQ_EMSGSIZE: return "message size out of range";
	case SHMQ_ESHORTBUF: return "buffer too small for the next message";
	case SHMQ_EPENDING: return "reserved records are not committed";
	case SHMQ_EPEERDEAD: return "peer process died";
	case SHMQ_ETIMEDOUT: return "timed out";
	case SHMQ_ECLOSED: return "closed";
	case SHMQ_EINVAL: return "invalid argument";
	case SHMQ_ENOTIMPL: return "segment flags not implemented here (MPMC locked mode)";
	case SHMQ_EREGISTRYFULL: return "registry full: every entry is held by a live process";
	}
	return "unknown error";
}

/* ---------------------------------------------------------------------- */
/* Low-level helpers                                                       */
/* ---------------------------------------------------------------------- */

typedef _Atomic uint32_t shmq_atomic_u32;
typedef _Atomic uint64_t shmq_atomic_u64;

static inline shmq_atomic_u32 *shmq__u32(unsigned char *mem, uint64_t off)
{
	return (shmq_atomic_u32 *)(void *)(mem + off);
}

static inline shmq_atomic_u64 *shmq__u64(unsigned char *mem, uint64_t off)
{
	return (shmq_atomic_u64 *)(void *)(mem + off);
}

/* Single relaxed loads: each shared field is read exactly once, so a peer
 * rewriting it concurrently cannot make a check and a use disagree. */
static inline uint32_t shmq__ld32(const unsigned char *mem, uint64_t off)
{
	return atomic_load_explicit((const shmq_atomic_u32 *)(const void *)(mem + off), memory_order_relaxed);
}

static inline uint64_t shmq__ld64(const unsigned char *mem, uint64_t off)
{
	return atomic_load_explicit((const shmq_atomic_u64 *)(const void *)(mem + off), memory_order_relaxed);
}

static inline int64_t shmq__now_ns(int clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void shmq__sleep_ns(int64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000), (long)(ns % 1000000000) };
	nanosleep(&ts, NULL);
}

static inline uint64_t shmq__align_up(uint64_t n, uint64_t a) { return (n + a - 1) & ~(a - 1); }

static inline int shmq__pow2(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

/* OFD locks (LAYOUT.md section 7). Returns 0, SHMQ_EROLETAKEN or SHMQ_ESYS. */
static inline int shmq_ofd_trylock(int fd, int64_t byte)
{
	struct flock lk;
	memset(&lk, 0, sizeof lk);
	lk.l_type = F_WRLCK;
	lk.l_whence = SEEK_SET;
	lk.l_start = byte;
	lk.l_len = 1;
	if (fcntl(fd, F_OFD_SETLK, &lk) == 0)
		return 0;
	if (errno == EAGAIN || errno == EACCES)
		return SHMQ_EROLETAKEN;
	return SHMQ_ESYS;
}

static inline int shmq_ofd_unlock(int fd, int64_t byte)
{
	struct flock lk;
	memset(&lk, 0, sizeof lk);
	lk.l_type = F_UNLCK;
	lk.l_whence = SEEK_SET;
	lk.l_start = byte;
	lk.l_len = 1;
	return fcntl(fd, F_OFD_SETLK, &lk) == 0 ? 0 : SHMQ_ESYS;
}

/* 1 if an open file description other than fd's holds the byte, 0 if not,
 * SHMQ_ESYS on error. */
static inline int shmq_ofd_held(int fd, int64_t byte)
{
	struct flock lk;
	memset(&lk, 0, sizeof lk);
	lk.l_type = F_WRLCK;
	lk.l_whence = SEEK_SET;
	lk.l_start = byte;
	lk.l_len = 1;
	if (fcntl(fd, F_OFD_GETLK, &lk) != 0)
		return SHMQ_ESYS;
	return lk.l_type != F_UNLCK;
}

/* Shared (not private) futex: the word is mapped by several processes. */
static inline void shmq__futex_wait(shmq_atomic_u32 *word, uint32_t old, int64_t timeout_ns)
{
	struct timespec ts = { (time_t)(timeout_ns / 1000000000), (long)(timeout_ns % 1000000000) };
	syscall(SYS_futex, (void *)word, FUTEX_WAIT, old, &ts, NULL, 0);
}

static inline void shmq__futex_wake(shmq_atomic_u32 *word)
{
	syscall(SYS_futex, (void *)word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* ---------------------------------------------------------------------- */
/* Header                                                                  */
/* ---------------------------------------------------------------------- */

/* Decoded, validated header: private copies (like Go's layout.Header). */
typedef struct shmq_header {
	uint32_t kind;
	uint32_t flags;
	uint64_t total_size;
	uint64_t capacity;
	uint32_t max_message;
	uint32_t slot_size;
	uint32_t creator_pid;
	int64_t created_nano;
	uint32_t header_size;
	uint64_t producer;
	uint64_t consumer;
	uint64_t producer_wake;
	uint64_t consumer_wake;
	uint64_t registry;
	uint32_t registry_count;
	uint32_t entry_size;
	uint64_t data;
	uint64_t data_size;
} shmq_header;

static inline uint64_t shmq_header_entry(const shmq_header *h, int i)
{
	return h->registry + (uint64_t)i * h->entry_size;
}

/* SPSCMaxMessage: min(capacity/2, 2^30) - 8. */
static inline uint32_t shmq_spsc_max_message(uint64_t capacity)
{
	uint64_t r = capacity / 2;
	if (r > SHMQ_MAX_RECORD_LENGTH)
		r = SHMQ_MAX_RECORD_LENGTH;
	return (uint32_t)(r - SHMQ_RECORD_HEADER_SIZE);
}

static inline uint64_t shmq_record_size(uint64_t n)
{
	return shmq__align_up(n + SHMQ_RECORD_HEADER_SIZE, SHMQ_RECORD_ALIGN);
}

struct shmq__region {
	uint64_t off, size;
};

static inline int shmq__check_regions(struct shmq__region *rs, int n, uint64_t size)
{
	for (int i = 0; i < n; i++) {
		if (rs[i].off % SHMQ_LINE_SIZE != 0 || rs[i].size == 0 || rs[i].off > size ||
		    rs[i].size > size - rs[i].off)
			return SHMQ_ECORRUPT;
	}
	/* pairwise disjoint: [a, a+as) and [b, b+bs) overlap iff a < b+bs && b < a+as
	 * (no overflow: both ends are <= size). */
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			if (rs[i].off < rs[j].off + rs[j].size && rs[j].off < rs[i].off + rs[i].size)
				return SHMQ_ECORRUPT;
	return 0;
}

static inline int shmq__validate_spsc(const shmq_header *h)
{
	uint64_t c = h->capacity;
	if (c < SHMQ_MIN_SPSC_CAPACITY || c > SHMQ_MAX_SPSC_CAPACITY || !shmq__pow2(c))
		return SHMQ_ECORRUPT;
	if (h->data_size != c || h->slot_size != SHMQ_RECORD_ALIGN)
		return SHMQ_ECORRUPT;
	if (h->max_message == 0 || h->max_message > shmq_spsc_max_message(c))
		return SHMQ_ECORRUPT;
	if (h->registry_count != 2)
		return SHMQ_ECORRUPT;
	return 0;
}

/* validateMPMC (layout/mpmc.go). */
static inline int shmq__validate_mpmc(const shmq_header *h)
{
	uint64_t c = h->capacity;
	uint32_t s = h->slot_size;
	if (c == 0 || c > SHMQ_MAX_MPMC_SLOTS || !shmq__pow2(c))
		return SHMQ_ECORRUPT;
	if (s < SHMQ_MIN_SLOT_SIZE || s > SHMQ_MAX_SLOT_SIZE || s % SHMQ_SLOT_ALIGN != 0)
		return SHMQ_ECORRUPT;
	if (h->data_size != c * s) /* c <= 2^24, s <= 2^20: no overflow */
		return SHMQ_ECORRUPT;
	if (h->max_message == 0 || h->max_message > s - SHMQ_SLOT_HEADER_SIZE)
		return SHMQ_ECORRUPT;
	if (h->registry_count == 0 || h->registry_count > SHMQ_MAX_MPMC_REGISTRY)
		return SHMQ_ECORRUPT; /* indices must stay below SHMQ_SEQ_OWNER_ORPHAN */
	return 0;
}

/* Decode validates the header at the start of mem, a mapping of size bytes
 * (the file size), into *h. It mirrors layout.Decode. Each field is loaded once. The state word is
 * loaded with acquire semantics first, so that a StateReady reading orders
 * the other reads after the creator's writes. */
static inline int shmq_decode(const void *memv, uint64_t size, shmq_header *h)
{
	const unsigned char *mem = (const unsigned char *)memv;
	memset(h, 0, sizeof *h);
	if (size < SHMQ_HEADER_SIZE)
		return SHMQ_ENOTSEGMENT;
	uint32_t state = atomic_load_explicit((const shmq_atomic_u32 *)(const void *)(mem + SHMQ_OFF_STATE),
					      memory_order_acquire);
	if (shmq__ld64(mem, SHMQ_OFF_MAGIC) != SHMQ_MAGIC)
		return SHMQ_ENOTSEGMENT;
	if (state != SHMQ_STATE_READY)
		return state == SHMQ_STATE_INIT ? SHMQ_ENOTREADY : SHMQ_ECORRUPT;
	if (shmq__ld32(mem, SHMQ_OFF_VERSION) != SHMQ_VERSION)
		return SHMQ_EVERSION;
	if (shmq__ld32(mem, SHMQ_OFF_LINE_SIZE) != SHMQ_LINE_SIZE)
		return SHMQ_ECORRUPT;
	h->kind = shmq__ld32(mem, SHMQ_OFF_KIND);
	h->flags = shmq__ld32(mem, SHMQ_OFF_FLAGS);
	h->total_size = shmq__ld64(mem, SHMQ_OFF_TOTAL_SIZE);
	h->capacity = shmq__ld64(mem, SHMQ_OFF_CAPACITY);
	h->max_message = shmq__ld32(mem, SHMQ_OFF_MAX_MESSAGE);
	h->slot_size = shmq__ld32(mem, SHMQ_OFF_SLOT_SIZE);
	h->creator_pid = shmq__ld32(mem, SHMQ_OFF_CREATOR_PID);
	h->created_nano = (int64_t)shmq__ld64(mem, SHMQ_OFF_CREATED_NANO);
	h->header_size = shmq__ld32(mem, SHMQ_OFF_HEADER_SIZE);
	h->producer = shmq__ld64(mem, SHMQ_OFF_TAB_PRODUCER);
	h->consumer = shmq__ld64(mem, SHMQ_OFF_TAB_CONSUMER);
	h->producer_wake = shmq__ld64(mem, SHMQ_OFF_TAB_PRODUCER_WAKE);
	h->consumer_wake = shmq__ld64(mem, SHMQ_OFF_TAB_CONSUMER_WAKE);
	h->registry = shmq__ld64(mem, SHMQ_OFF_TAB_REGISTRY);
	h->registry_count = shmq__ld32(mem, SHMQ_OFF_TAB_REGISTRY_COUNT);
	h->entry_size = shmq__ld32(mem, SHMQ_OFF_TAB_ENTRY_SIZE);
	h->data = shmq__ld64(mem, SHMQ_OFF_TAB_DATA);
	h->data_size = shmq__ld64(mem, SHMQ_OFF_TAB_DATA_SIZE);

	int err = SHMQ_ECORRUPT;
	/* Flags are must-understand; as layout.Decode, FlagLocked is known for
	 * MPMC (the MPMC calls then refuse it with SHMQ_ENOTIMPL), anything
	 * else is an unsupported version. */
	if ((h->flags & ~(h->kind == SHMQ_KIND_MPMC ? SHMQ_FLAG_LOCKED : 0u)) != 0) {
		err = SHMQ_EVERSION;
		goto bad;
	}
	if (h->total_size != size || size % SHMQ_PAGE_SIZE != 0)
		goto bad;
	if (h->header_size != SHMQ_HEADER_SIZE)
		goto bad;
	if (h->registry_count == 0 || h->registry_count > SHMQ_MAX_REGISTRY_ENTRIES ||
	    h->entry_size != SHMQ_LINE_SIZE)
		goto bad;
	struct shmq__region rs[7] = {
		{ 0, h->header_size },
		{ h->producer, SHMQ_LINE_SIZE },
		{ h->consumer, SHMQ_LINE_SIZE },
		{ h->producer_wake, SHMQ_LINE_SIZE },
		{ h->consumer_wake, SHMQ_LINE_SIZE },
		{ h->registry, (uint64_t)h->registry_count * SHMQ_LINE_SIZE },
		{ h->data, h->data_size },
	};
	if ((err = shmq__check_regions(rs, 7, size)) != 0)
		goto bad;
	switch (h->kind) {
	case SHMQ_KIND_SPSC:
		err = shmq__validate_spsc(h);
		break;
	case SHMQ_KIND_MPMC:
		err = shmq__validate_mpmc(h);
		break;
	default:
		err = SHMQ_EKIND;
	}
	if (err == 0)
		return 0;
bad:
	memset(h, 0, sizeof *h);
	return err;
}

/* ---------------------------------------------------------------------- */
/* Segments                                                                */
/* ---------------------------------------------------------------------- */

typedef struct shmq_segment {
	int fd;             /* own open file description; holds the OFD locks */
	unsigned char *mem; /* the whole mapping */
	uint64_t size;
	shmq_header hdr;
	/* Bitmap of the registry entries held through fd: F_OFD_GETLK does not
	 * report the caller's own locks, so liveness of those is read here. */
	unsigned char *held;
} shmq_segment;

typedef struct shmq_open_options {
	int64_t ready_timeout_ns; /* 0: 5 s, as the Go default */
	int allow_other_owner;    /* map a segment owned by another uid */
} shmq_open_options;

static inline int shmq_valid_shm_name(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > SHMQ_MAX_NAME_LEN || name[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* One try of the Go tryMap: SHMQ_ENOTREADY while the creator works. */
static inline int shmq__try_map(shmq_segment *s)
{
	struct stat st;
	if (fstat(s->fd, &st) != 0)
		return SHMQ_ESYS;
	uint64_t size = (uint64_t)st.st_size;
	if (size < SHMQ_PAGE_SIZE || size % SHMQ_PAGE_SIZE != 0)
		return SHMQ_ENOTREADY;
	void *m = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
	if (m == MAP_FAILED)
		return SHMQ_ESYS;
	unsigned char *mem = (unsigned char *)m;
	if (atomic_load_explicit(shmq__u32(mem, SHMQ_OFF_STATE), memory_order_acquire) == SHMQ_STATE_INIT) {
		uint64_t magic = shmq__ld64(mem, SHMQ_OFF_MAGIC);
		munmap(m, (size_t)size);
		return (magic != 0 && magic != SHMQ_MAGIC) ? SHMQ_ENOTSEGMENT : SHMQ_ENOTREADY;
	}
	int err = shmq_decode(mem, size, &s->hdr);
	if (err != 0) {
		munmap(m, (size_t)size);
		return err;
	}
	s->mem = mem;
	s->size = size;
	return 0;
}

/* Maps the segment open at fd (which s takes over), waiting for ready. */
static inline int shmq__open_fd_owned(int fd, uint32_t kind, const shmq_open_options *opts, shmq_segment *s)
{
	memset(s, 0, sizeof *s);
	s->fd = fd;
	struct stat st;
	int err;
	if (fstat(fd, &st) != 0) {
		err = SHMQ_ESYS;
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		err = SHMQ_ENOTSEGMENT;
		goto fail;
	}
	if (st.st_uid != geteuid() && !(opts && opts->allow_other_owner)) {
		err = SHMQ_EPERM;
		goto fail;
	}
	int64_t timeout = (opts && opts->ready_timeout_ns > 0) ? opts->ready_timeout_ns : INT64_C(5000000000);
	int64_t deadline = shmq__now_ns(CLOCK_MONOTONIC) + timeout;
	int64_t backoff = 50000;
	for (;;) {
		err = shmq__try_map(s);
		if (err != SHMQ_ENOTREADY)
			break;
		/* Not ready: the creator is working or died half way. It unlocks
		 * byte 0 only after publishing, so re-check once after seeing it
		 * free. */
		if (shmq_ofd_held(fd, SHMQ_INIT_LOCK_BYTE) == 0) {
			err = shmq__try_map(s);
			if (err != SHMQ_ENOTREADY)
				break;
			if (fstat(fd, &st) == 0 && st.st_size > 0) {
				err = SHMQ_EABANDONED;
				break;
			}
		}
		if (shmq__now_ns(CLOCK_MONOTONIC) >= deadline)
			break;
		shmq__sleep_ns(backoff);
		backoff = backoff * 2 > 10000000 ? 10000000 : backoff * 2;
	}
	if (err != 0)
		goto fail;
	if (s->hdr.kind != kind) {
		munmap(s->mem, (size_t)s->size);
		err = SHMQ_EKIND;
		goto fail;
	}
	return 0;
fail:;
	int saved = errno;
	close(fd);
	memset(s, 0, sizeof *s);
	s->fd = -1;
	errno = saved;
	return err;
}

/* Opens /dev/shm/NAME (a leading slash is ignored) with O_NOFOLLOW. */
static inline int shmq_open_name(const char *name, uint32_t kind, const shmq_open_options *opts, shmq_segment *s)
{
	char path[64];
	if (name[0] == '/')
		name++;
	if (!shmq_valid_shm_name(name))
		return SHMQ_EBADNAME;
	snprintf(path, sizeof path, "/dev/shm/%s", name);
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return SHMQ_ESYS;
	return shmq__open_fd_owned(fd, kind, opts, s);
}

/* Opens a segment file by path with O_NOFOLLOW. */
static inline int shmq_open_path(const char *path, uint32_t kind, const shmq_open_options *opts, shmq_segment *s)
{
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return SHMQ_ESYS;
	return shmq__open_fd_owned(fd, kind, opts, s);
}

/* Opens the segment behind an inherited descriptor (e.g. a memfd). It
 * reopens /proc/self/fd/N to get an open file description of its own, since
 * OFD locks belong to the description; the caller keeps fd. */
static inline int shmq_open_fd(int fd, uint32_t kind, const shmq_open_options *opts, shmq_segment *s)
{
	char path[64];
	if (fd < 0)
		return SHMQ_EBADNAME;
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	int own = open(path, O_RDWR | O_CLOEXEC);
	if (own < 0)
		return SHMQ_ESYS;
	return shmq__open_fd_owned(own, kind, opts, s);
}

/* Opens a location string as the Go tools spell them: "fd:N", "file:PATH",
 * "shm:NAME" or a bare shm NAME. */
static inline int shmq_open(const char *loc, uint32_t kind, const shmq_open_options *opts, shmq_segment *s)
{
	if (strncmp(loc, "fd:", 3) == 0) {
		char *end;
		errno = 0;
		long fd = strtol(loc + 3, &end, 10);
		if (errno != 0 || *end != 0 || end == loc + 3 || fd < 0 || fd > INT_MAX)
			return SHMQ_EBADNAME;
		return shmq_open_fd((int)fd, kind, opts, s);
	}
	if (strncmp(loc, "file:", 5) == 0)
		return shmq_open_path(loc + 5, kind, opts, s);
	if (strncmp(loc, "shm:", 4) == 0)
		loc += 4;
	return shmq_open_name(loc, kind, opts, s);
}

/* Unmaps and closes, which releases every OFD lock taken through s. */
static inline void shmq_close(shmq_segment *s)
{
	if (s->mem)
		munmap(s->mem, (size_t)s->size);
	if (s->fd >= 0)
		close(s->fd);
	free(s->held);
	s->held = NULL;
	s->mem = NULL;
	s->fd = -1;
}

/* ---------------------------------------------------------------------- */
/* Registry                                                                */
/* ---------------------------------------------------------------------- */

typedef struct shmq_entry {
	shmq_segment *seg;
	int index;
	shmq_atomic_u32 *state;
	shmq_atomic_u64 *messages, *bytes, *stalls, *waits, *wakes;
	/* private copies of the single-writer counters */
	uint64_t n_messages, n_bytes, n_stalls, n_waits, n_wakes;
	int held;
} shmq_entry;

/* Attach takes registry entry i for role (LAYOUT.md section 7). A dead
 * holder's entry is taken over; its counters continue. */
static inline int shmq_attach(shmq_segment *s, int i, uint32_t role, shmq_entry *e)
{
	memset(e, 0, sizeof *e);
	if (i < 0 || (uint32_t)i >= s->hdr.registry_count)
		return SHMQ_EINVAL;
	if (!s->held && !(s->held = (unsigned char *)calloc((s->hdr.registry_count + 7) / 8, 1)))
		return SHMQ_ESYS;
	if (s->held[i / 8] & (1u << (i % 8)))
		return SHMQ_EROLETAKEN; /* held through this very description */
	int err = shmq_ofd_trylock(s->fd, SHMQ_ENTRY_LOCK_BYTE(i));
	if (err != 0)
		return err;
	s->held[i / 8] |= (unsigned char)(1u << (i % 8));
	uint64_t base = shmq_header_entry(&s->hdr, i);
	unsigned char *m = s->mem;
	e->seg = s;
	e->index = i;
	e->state = shmq__u32(m, base + SHMQ_ENTRY_STATE);
	e->messages = shmq__u64(m, base + SHMQ_ENTRY_MESSAGES);
	e->bytes = shmq__u64(m, base + SHMQ_ENTRY_BYTES);
	e->stalls = shmq__u64(m, base + SHMQ_ENTRY_STALLS);
	e->waits = shmq__u64(m, base + SHMQ_ENTRY_WAITS);
	e->wakes = shmq__u64(m, base + SHMQ_ENTRY_WAKES);
	e->n_messages = atomic_load_explicit(e->messages, memory_order_relaxed);
	e->n_bytes = atomic_load_explicit(e->bytes, memory_order_relaxed);
	e->n_stalls = atomic_load_explicit(e->stalls, memory_order_relaxed);
	e->n_waits = atomic_load_explicit(e->waits, memory_order_relaxed);
	e->n_wakes = atomic_load_explicit(e->wakes, memory_order_relaxed);
	atomic_store_explicit(shmq__u32(m, base + SHMQ_ENTRY_ROLE), role, memory_order_release);
	atomic_store_explicit(shmq__u32(m, base + SHMQ_ENTRY_PID), (uint32_t)getpid(), memory_order_release);
	shmq_atomic_u32 *gen = shmq__u32(m, base + SHMQ_ENTRY_GEN);
	atomic_store_explicit(gen, atomic_load_explicit(gen, memory_order_relaxed) + 1, memory_order_release);
	atomic_store_explicit(shmq__u64(m, base + SHMQ_ENTRY_ATTACH_NANO), (uint64_t)shmq__now_ns(CLOCK_REALTIME),
			      memory_order_release);
	atomic_store_explicit(e->state, SHMQ_ENTRY_ATTACHED, memory_order_release);
	e->held = 1;
	return 0;
}

/* Detach marks the entry cleanly closed and releases its lock. */
static inline int shmq_detach(shmq_entry *e)
{
	if (!e->held)
		return 0;
	e->held = 0;
	atomic_store_explicit(e->state, SHMQ_ENTRY_DETACHED, memory_order_release);
	int err = shmq_ofd_unlock(e->seg->fd, SHMQ_ENTRY_LOCK_BYTE(e->index));
	if (e->seg->held)
		e->seg->held[e->index / 8] &= (unsigned char)~(1u << (e->index % 8));
	return err;
}

/* 1 if a live process holds entry i (this one through s included), 0 if
 * not, SHMQ_ESYS on error. i must be below the registry count. */
static inline int shmq_entry_alive(shmq_segment *s, int i)
{
	if (s->held && (s->held[i / 8] & (1u << (i % 8))))
		return 1;
	return shmq_ofd_held(s->fd, SHMQ_ENTRY_LOCK_BYTE(i));
}

/* 1 if entry i was attached and its holder died without detaching, 0 if
 * not, SHMQ_ESYS on error. */
static inline int shmq_entry_dead(shmq_segment *s, int i)
{
	uint64_t base = shmq_header_entry(&s->hdr, i);
	uint32_t st = atomic_load_explicit(shmq__u32(s->mem, base + SHMQ_ENTRY_STATE), memory_order_acquire);
	if (st != SHMQ_ENTRY_ATTACHED)
		return 0;
	int held = shmq_entry_alive(s, i);
	if (held < 0)
		return held;
	return !held;
}

/* ---------------------------------------------------------------------- */
/* Wake protocol (LAYOUT.md section 6)                                     */
/* ---------------------------------------------------------------------- */

typedef struct shmq_wake {
	shmq_atomic_u32 *seq;
	shmq_atomic_u32 *waiters;
} shmq_wake;

static inline shmq_wake shmq__wake_at(shmq_segment *s, uint64_t off)
{
	shmq_wake w = { shmq__u32(s->mem, off + SHMQ_WAKE_SEQ), shmq__u32(s->mem, off + SHMQ_WAKE_WAITERS) };
	return w;
}

/* Called by the publishing side after its cursor store. The seq_cst fence
 * pairs with the waiter's fence after registering: either we see its
 * registration or it sees our cursor. */
static inline void shmq__wake_if_waiting(shmq_wake *w, shmq_entry *own)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(w->waiters, memory_order_seq_cst) == 0)
		return;
	atomic_fetch_add_explicit(w->seq, 1, memory_order_seq_cst);
	shmq__futex_wake(w->seq);
	if (!own)
		return; /* a wake on behalf of a dead holder */
	own->n_wakes++;
	atomic_store_explicit(own->wakes, own->n_wakes, memory_order_release);
}

/* Waits until ready(arg) is true. deadline_ns is CLOCK_MONOTONIC, < 0 for
 * none. Returns 0, SHMQ_ETIMEDOUT or SHMQ_EPEERDEAD. */
static inline int shmq__wait(shmq_wake *w, shmq_entry *own, int peer, int64_t deadline_ns,
			     int (*ready)(void *), void *arg)
{
	for (int i = 0; i < SHMQ_SPIN_CHECKS; i++)
		if (ready(arg))
			return 0;
	own->n_waits++;
	atomic_store_explicit(own->waits, own->n_waits, memory_order_release);
	atomic_fetch_add_explicit(w->waiters, 1, memory_order_seq_cst);
	atomic_thread_fence(memory_order_seq_cst);
	int err = 0;
	int64_t last_check = shmq__now_ns(CLOCK_MONOTONIC);
	for (;;) {
		uint32_t seq = atomic_load_explicit(w->seq, memory_order_seq_cst);
		if (ready(arg))
			break;
		int64_t now = shmq__now_ns(CLOCK_MONOTONIC);
		if (deadline_ns >= 0 && now >= deadline_ns) {
			err = SHMQ_ETIMEDOUT;
			break;
		}
		if (now - last_check >= SHMQ_LIVENESS_PERIOD_NS) {
			last_check = now;
			if (shmq_entry_dead(own->seg, peer) == 1) {
				err = SHMQ_EPEERDEAD;
				break;
			}
		}
		int64_t park = SHMQ_PARK_MAX_NS;
		if (deadline_ns >= 0 && deadline_ns - now < park)
			park = deadline_ns - now;
		shmq__futex_wait(w->seq, seq, park);
	}
	atomic_fetch_sub_explicit(w->waiters, 1, memory_order_seq_cst);
	return err;
}

static inline int64_t shmq__deadline(int64_t timeout_ns)
{
	return timeout_ns < 0 ? -1 : shmq__now_ns(CLOCK_MONOTONIC) + timeout_ns;
}

/* ---------------------------------------------------------------------- */
/* SPSC                                                                    */
/* ---------------------------------------------------------------------- */

/* checkUsed: tail-head within the ring, both 8-aligned. */
static inline int shmq__spsc_check_used(uint64_t tail, uint64_t head, uint64_t cap)
{
	if (tail - head > cap || ((tail | head) % SHMQ_RECORD_ALIGN) != 0)
		return SHMQ_ECORRUPT;
	return 0;
}

/* CheckRecord (layout/spsc.go): validates the record at ring index idx with
 * avail committed bytes from idx on. Sets *size and *padding. */
static inline int shmq_check_record(uint32_t length, uint32_t type, uint64_t idx, uint64_t avail, uint64_t cap,
				    uint32_t max_message, uint64_t *size, int *padding)
{
	uint64_t sz = shmq__align_up((uint64_t)length, SHMQ_RECORD_ALIGN);
	*size = 0;
	*padding = 0;
	if (length < SHMQ_RECORD_HEADER_SIZE || sz > avail || sz > cap - idx)
		return SHMQ_ECORRUPT;
	switch (type) {
	case SHMQ_TYPE_MESSAGE:
		if (length - SHMQ_RECORD_HEADER_SIZE > max_message)
			return SHMQ_ECORRUPT;
		*size = sz;
		return 0;
	case SHMQ_TYPE_PADDING:
		if (idx + sz != cap)
			return SHMQ_ECORRUPT;
		*size = sz;
		*padding = 1;
		return 0;
	}
	return SHMQ_ECORRUPT;
}

typedef struct shmq_spsc_producer {
	shmq_segment *seg;
	shmq_entry e;
	unsigned char *data;
	uint64_t cap, mask;
	uint32_t max_message;
	shmq_atomic_u64 *tailp, *headp;
	shmq_wake producer_wake, consumer_wake;
	uint64_t tail;       /* next free position, ahead of published while reserved */
	uint64_t published;  /* last tail stored */
	uint64_t head_cache; /* last head loaded */
	uint64_t pend_msgs, pend_bytes;
	int closed;
} shmq_spsc_producer;

typedef struct shmq_spsc_consumer {
	shmq_segment *seg;
	shmq_entry e;
	unsigned char *data;
	uint64_t cap, mask;
	uint32_t max_message;
	shmq_atomic_u64 *tailp, *headp;
	shmq_wake producer_wake, consumer_wake;
	uint64_t head;       /* released position */
	uint64_t pos;        /* next record to peek */
	uint64_t tail_cache; /* last tail loaded */
	uint64_t peeked, peeked_bytes;
	int closed;
} shmq_spsc_consumer;

/* Attaches the producer role of an SPSC segment. */
static inline int shmq_spsc_producer_open(shmq_segment *s, shmq_spsc_producer *p)
{
	memset(p, 0, sizeof *p);
	if (s->hdr.kind != SHMQ_KIND_SPSC)
		return SHMQ_EKIND;
	int err = shmq_attach(s, SHMQ_SPSC_PRODUCER_ENTRY, SHMQ_ROLE_PRODUCER, &p->e);
	if (err != 0)
		return err;
	p->seg = s;
	p->data = s->mem + s->hdr.data;
	p->cap = s->hdr.capacity;
	p->mask = p->cap - 1;
	p->max_message = s->hdr.max_message;
	p->tailp = shmq__u64(s->mem, s->hdr.producer + SHMQ_CURSOR_POSITION);
	p->headp = shmq__u64(s->mem, s->hdr.consumer + SHMQ_CURSOR_POSITION);
	p->producer_wake = shmq__wake_at(s, s->hdr.producer_wake);
	p->consumer_wake = shmq__wake_at(s, s->hdr.consumer_wake);
	uint64_t tail = atomic_load_explicit(p->tailp, memory_order_acquire);
	uint64_t head = atomic_load_explicit(p->headp, memory_order_acquire);
	if ((err = shmq__spsc_check_used(tail, head, p->cap)) != 0) {
		shmq_detach(&p->e);
		return err;
	}
	p->tail = p->published = tail;
	p->head_cache = head;
	return 0;
}

/* Ring bytes a record of size bytes takes at the tail, padding included. */
static inline uint64_t shmq__spsc_need(const shmq_spsc_producer *p, uint64_t size)
{
	uint64_t room = p->cap - (p->tail & p->mask);
	return size > room ? size + room : size;
}

static inline void shmq__put_header(unsigned char *rec, uint32_t length, uint32_t type)
{
	atomic_store_explicit(shmq__u32(rec, SHMQ_RECORD_LENGTH), length, memory_order_relaxed);
	atomic_store_explicit(shmq__u32(rec, SHMQ_RECORD_TYPE), type, memory_order_relaxed);
}

/* Reserve claims room for a message of n bytes and sets *out to its payload
 * in the ring. Fill it, then commit. Several reservations may precede one
 * commit. Returns 0, SHMQ_EFULL, SHMQ_EMSGSIZE or SHMQ_ECORRUPT. */
static inline int shmq_spsc_reserve(shmq_spsc_producer *p, size_t n, void **out)
{
	if (p->closed)
		return SHMQ_ECLOSED;
	if (n == 0 || n > p->max_message)
		return SHMQ_EMSGSIZE;
	uint64_t size = shmq_record_size(n);
	uint64_t idx = p->tail & p->mask;
	uint64_t room = p->cap - idx;
	uint64_t need = shmq__spsc_need(p, size);
	if (need > p->cap - (p->tail - p->head_cache)) {
		uint64_t head = atomic_load_explicit(p->headp, memory_order_acquire);
		if (shmq__spsc_check_used(p->tail, head, p->cap) != 0)
			return SHMQ_ECORRUPT;
		if (head - p->head_cache > p->tail - p->head_cache) /* head never moves back */
			return SHMQ_ECORRUPT;
		p->head_cache = head;
		if (need > p->cap - (p->tail - head)) {
			p->e.n_stalls++;
			atomic_store_explicit(p->e.stalls, p->e.n_stalls, memory_order_release);
			return SHMQ_EFULL;
		}
	}
	if (size > room) {
		shmq__put_header(p->data + idx, (uint32_t)room, SHMQ_TYPE_PADDING);
		p->tail += room;
		idx = 0;
	}
	shmq__put_header(p->data + idx, (uint32_t)(n + SHMQ_RECORD_HEADER_SIZE), SHMQ_TYPE_MESSAGE);
	p->tail += size;
	p->pend_msgs++;
	p->pend_bytes += n;
	*out = p->data + idx + SHMQ_RECORD_HEADER_SIZE;
	return 0;
}

/* Commit publishes every reserved record with one release store of the
 * tail, then wakes the consumer if it is parked. */
static inline void shmq_spsc_commit(shmq_spsc_producer *p)
{
	if (p->tail == p->published)
		return;
	atomic_store_explicit(p->tailp, p->tail, memory_order_release);
	p->published = p->tail;
	p->e.n_messages += p->pend_msgs;
	p->e.n_bytes += p->pend_bytes;
	p->pend_msgs = p->pend_bytes = 0;
	atomic_store_explicit(p->e.messages, p->e.n_messages, memory_order_release);
	atomic_store_explicit(p->e.bytes, p->e.n_bytes, memory_order_release);
	shmq__wake_if_waiting(&p->consumer_wake, &p->e);
}

static inline int shmq_spsc_try_send(shmq_spsc_producer *p, const void *msg, size_t n)
{
	if (p->tail != p->published)
		return SHMQ_EPENDING;
	void *b;
	int err = shmq_spsc_reserve(p, n, &b);
	if (err != 0)
		return err;
	memcpy(b, msg, n);
	shmq_spsc_commit(p);
	return 0;
}

struct shmq__space_arg {
	shmq_spsc_producer *p;
	uint64_t need;
};

static inline int shmq__space_ready(void *a)
{
	struct shmq__space_arg *s = (struct shmq__space_arg *)a;
	uint64_t head = atomic_load_explicit(s->p->headp, memory_order_acquire);
	uint64_t used = s->p->tail - head;
	/* A corrupt head makes this true; reserve then reports the corruption. */
	return used > s->p->cap || s->p->cap - used >= s->need;
}

/* Waits until a message of n bytes fits (timeout_ns < 0: forever). */
static inline int shmq_spsc_wait_space(shmq_spsc_producer *p, size_t n, int64_t timeout_ns)
{
	if (n == 0 || n > p->max_message)
		return SHMQ_EMSGSIZE;
	struct shmq__space_arg a = { p, shmq__spsc_need(p, shmq_record_size(n)) };
	return shmq__wait(&p->producer_wake, &p->e, SHMQ_SPSC_CONSUMER_ENTRY, shmq__deadline(timeout_ns),
			  shmq__space_ready, &a);
}

/* Send copies msg into the ring and commits it, waiting while the ring is
 * full, for at most timeout_ns (< 0: forever). */
static inline int shmq_spsc_send(shmq_spsc_producer *p, const void *msg, size_t n, int64_t timeout_ns)
{
	int64_t deadline = shmq__deadline(timeout_ns);
	for (;;) {
		int err = shmq_spsc_try_send(p, msg, n);
		if (err != SHMQ_EFULL)
			return err;
		struct shmq__space_arg a = { p, shmq__spsc_need(p, shmq_record_size(n)) };
		err = shmq__wait(&p->producer_wake, &p->e, SHMQ_SPSC_CONSUMER_ENTRY, deadline, shmq__space_ready, &a);
		if (err != 0)
			return err;
	}
}

/* Discards uncommitted reservations and detaches the producer role. */
static inline int shmq_spsc_producer_close(shmq_spsc_producer *p)
{
	if (p->closed)
		return 0;
	p->closed = 1;
	p->tail = p->published;
	p->pend_msgs = p->pend_bytes = 0;
	return shmq_detach(&p->e);
}

/* Attaches the consumer role of an SPSC segment. */
static inline int shmq_spsc_consumer_open(shmq_segment *s, shmq_spsc_consumer *c)
{
	memset(c, 0, sizeof *c);
	if (s->hdr.kind != SHMQ_KIND_SPSC)
		return SHMQ_EKIND;
	int err = shmq_attach(s, SHMQ_SPSC_CONSUMER_ENTRY, SHMQ_ROLE_CONSUMER, &c->e);
	if (err != 0)
		return err;
	c->seg = s;
	c->data = s->mem + s->hdr.data;
	c->cap = s->hdr.capacity;
	c->mask = c->cap - 1;
	c->max_message = s->hdr.max_message;
	c->tailp = shmq__u64(s->mem, s->hdr.producer + SHMQ_CURSOR_POSITION);
	c->headp = shmq__u64(s->mem, s->hdr.consumer + SHMQ_CURSOR_POSITION);
	c->producer_wake = shmq__wake_at(s, s->hdr.producer_wake);
	c->consumer_wake = shmq__wake_at(s, s->hdr.consumer_wake);
	uint64_t tail = atomic_load_explicit(c->tailp, memory_order_acquire);
	uint64_t head = atomic_load_explicit(c->headp, memory_order_acquire);
	if ((err = shmq__spsc_check_used(tail, head, c->cap)) != 0) {
		shmq_detach(&c->e);
		return err;
	}
	c->head = c->pos = head;
	c->tail_cache = tail;
	return 0;
}

/* Peek returns the next message not yet peeked, without releasing it: *msg
 * points into the ring and stays valid until release. SHMQ_EEMPTY when no
 * committed message is left; SHMQ_ECORRUPT for anything invalid. */
static inline int shmq_spsc_peek(shmq_spsc_consumer *c, const void **msg, size_t *len)
{
	if (c->closed)
		return SHMQ_ECLOSED;
	for (;;) {
		uint64_t avail = c->tail_cache - c->pos;
		if (avail == 0) {
			uint64_t tail = atomic_load_explicit(c->tailp, memory_order_acquire);
			if (shmq__spsc_check_used(tail, c->head, c->cap) != 0)
				return SHMQ_ECORRUPT;
			if (tail - c->tail_cache > c->cap) /* the tail never moves back */
				return SHMQ_ECORRUPT;
			c->tail_cache = tail;
			if ((avail = tail - c->pos) == 0) {
				c->e.n_stalls++;
				atomic_store_explicit(c->e.stalls, c->e.n_stalls, memory_order_release);
				return SHMQ_EEMPTY;
			}
		}
		uint64_t idx = c->pos & c->mask;
		/* Each word loaded once: the checks and the uses see the same value. */
		uint32_t length = shmq__ld32(c->data + idx, SHMQ_RECORD_LENGTH);
		uint32_t type = shmq__ld32(c->data + idx, SHMQ_RECORD_TYPE);
		uint64_t size;
		int padding;
		int err = shmq_check_record(length, type, idx, avail, c->cap, c->max_message, &size, &padding);
		if (err != 0)
			return err;
		c->pos += size;
		if (padding)
			continue;
		size_t n = length - SHMQ_RECORD_HEADER_SIZE;
		c->peeked++;
		c->peeked_bytes += n;
		*msg = c->data + idx + SHMQ_RECORD_HEADER_SIZE;
		*len = n;
		return 0;
	}
}

/* Release frees every peeked message with one release store of the head,
 * then wakes the producer if it is parked. */
static inline void shmq_spsc_release(shmq_spsc_consumer *c)
{
	if (c->pos == c->head)
		return;
	atomic_store_explicit(c->headp, c->pos, memory_order_release);
	c->head = c->pos;
	c->e.n_messages += c->peeked;
	c->e.n_bytes += c->peeked_bytes;
	c->peeked = c->peeked_bytes = 0;
	atomic_store_explicit(c->e.messages, c->e.n_messages, memory_order_release);
	atomic_store_explicit(c->e.bytes, c->e.n_bytes, memory_order_release);
	shmq__wake_if_waiting(&c->producer_wake, &c->e);
}

/* Rewind forgets the messages peeked since the last release. */
static inline void shmq_spsc_rewind(shmq_spsc_consumer *c)
{
	c->pos = c->head;
	c->peeked = c->peeked_bytes = 0;
}

/* TryRecv copies the next message into buf and releases it. If buf is too
 * small it returns SHMQ_ESHORTBUF and leaves the message queued. */
static inline int shmq_spsc_try_recv(shmq_spsc_consumer *c, void *buf, size_t cap, size_t *len)
{
	const void *m;
	size_t n;
	int err = shmq_spsc_peek(c, &m, &n);
	if (err != 0)
		return err;
	if (n > cap) {
		c->pos -= shmq_record_size(n);
		c->peeked--;
		c->peeked_bytes -= n;
		*len = n;
		return SHMQ_ESHORTBUF;
	}
	memcpy(buf, m, n);
	*len = n;
	shmq_spsc_release(c);
	return 0;
}

static inline int shmq__data_ready(void *a)
{
	shmq_spsc_consumer *c = (shmq_spsc_consumer *)a;
	return atomic_load_explicit(c->tailp, memory_order_acquire) != c->pos;
}

/* Waits until the queue holds a message not yet peeked (timeout_ns < 0:
 * forever). */
static inline int shmq_spsc_wait_data(shmq_spsc_consumer *c, int64_t timeout_ns)
{
	if (c->tail_cache != c->pos)
		return 0;
	return shmq__wait(&c->consumer_wake, &c->e, SHMQ_SPSC_PRODUCER_ENTRY, shmq__deadline(timeout_ns),
			  shmq__data_ready, c);
}

/* Recv copies the next message into buf and releases it, waiting while the
 * queue is empty, for at most timeout_ns (< 0: forever). */
static inline int shmq_spsc_recv(shmq_spsc_consumer *c, void *buf, size_t cap, size_t *len, int64_t timeout_ns)
{
	int64_t deadline = shmq__deadline(timeout_ns);
	for (;;) {
		int err = shmq_spsc_try_recv(c, buf, cap, len);
		if (err != SHMQ_EEMPTY)
			return err;
		err = shmq__wait(&c->consumer_wake, &c->e, SHMQ_SPSC_PRODUCER_ENTRY, deadline, shmq__data_ready, c);
		if (err != 0)
			return err;
	}
}

/* Detaches the consumer role; peeked, unreleased messages stay queued. */
static inline int shmq_spsc_consumer_close(shmq_spsc_consumer *c)
{
	if (c->closed)
		return 0;
	c->closed = 1;
	return shmq_detach(&c->e);
}

/* ---------------------------------------------------------------------- */
/* MPMC (LAYOUT.md section 14; mirrors mpmc/producer.go, consumer.go)      */
/* ---------------------------------------------------------------------- */

/* SeqWord: rank(pos, st) << 16 | owner. */
static inline uint64_t shmq_seq_word(uint64_t pos, uint32_t st, uint32_t owner)
{
	return ((pos << 2) | (uint64_t)(st & 3)) << SHMQ_SEQ_RANK_SHIFT | ((uint64_t)owner & SHMQ_SEQ_OWNER_MASK);
}

/* SeqDiff: rank(w) - rank(E(pos)) as a signed 48-bit distance. */
static inline int64_t shmq_seq_diff(uint64_t w, uint64_t pos)
{
	const uint64_t mask = (UINT64_C(1) << SHMQ_SEQ_RANK_BITS) - 1;
	uint64_t d = ((w >> SHMQ_SEQ_RANK_SHIFT) - (pos << 2)) & mask;
	if (d & (UINT64_C(1) << (SHMQ_SEQ_RANK_BITS - 1)))
		return (int64_t)d - (INT64_C(1) << SHMQ_SEQ_RANK_BITS);
	return (int64_t)d;
}

static inline uint32_t shmq_seq_owner(uint64_t w) { return (uint32_t)(w & SHMQ_SEQ_OWNER_MASK); }
static inline uint32_t shmq_seq_state(uint64_t w) { return (uint32_t)(w >> SHMQ_SEQ_RANK_SHIFT) & 3; }

/* Shared view of an MPMC segment, built from the validated private header. */
typedef struct shmq_mpmc {
	shmq_segment *seg;
	unsigned char *data;
	uint64_t cap, mask, slot_size;
	int64_t lap; /* 4*cap: one lap of ranks */
	uint32_t max_message, registry_count;
	shmq_atomic_u64 *enq, *deq; /* cursors: hints every process helps along */
	shmq_wake producer_wake, consumer_wake;
} shmq_mpmc;

/* A stuck slot word, for dead-claimant detection (mpmc/wait.go suspect). */
struct shmq__suspect {
	uint64_t word;
	int64_t since, checked; /* CLOCK_MONOTONIC ns; checked 0: never */
};

typedef struct shmq_mpmc_producer {
	shmq_mpmc q;
	shmq_entry e;
	uint32_t me;
	int pending; /* one reservation at most */
	uint64_t pend_pos;
	uint32_t pend_len;
	uint64_t requeued; /* messages of dead consumers requeued */
	struct shmq__suspect stuck;
	uint64_t last_pos, last_word; /* what made the last claim fail */
	int closed;
} shmq_mpmc_producer;

typedef struct shmq_mpmc_consumer {
	shmq_mpmc q;
	shmq_entry e;
	uint32_t me;
	int held; /* a message taken (peeked or stashed) and not yet freed */
	int stashed; /* the held message was refused (short buffer): hand it out next */
	uint64_t held_pos;
	uint32_t held_len;
	uint64_t skipped, tombstones; /* dead producers' slots; abandoned reservations */
	uint64_t redelivered; /* requeued messages taken */
	struct shmq__suspect stuck;
	uint64_t last_pos, last_word;
	int freed;
	int closed;
} shmq_mpmc_consumer;

static inline shmq_atomic_u64 *shmq__mpmc_seq(const shmq_mpmc *q, uint64_t pos)
{
	return shmq__u64(q->data, (pos & q->mask) * q->slot_size + SHMQ_SLOT_SEQ);
}

static inline unsigned char *shmq__mpmc_slot(const shmq_mpmc *q, uint64_t pos)
{
	return q->data + (pos & q->mask) * q->slot_size;
}

/* Every shared word is accessed sequentially consistently, as the Go code
 * does; the protocol needs at least release on every CAS of a sequence word
 * and acquire on every load of one. */
static inline uint64_t shmq__ld(shmq_atomic_u64 *p) { return atomic_load_explicit(p, memory_order_seq_cst); }
static inline int shmq__cas(shmq_atomic_u64 *p, uint64_t old, uint64_t nw)
{
	return atomic_compare_exchange_strong_explicit(p, &old, nw, memory_order_seq_cst, memory_order_seq_cst);
}

static inline int shmq__mpmc_view(shmq_segment *s, shmq_mpmc *q)
{
	memset(q, 0, sizeof *q);
	if (s->hdr.kind != SHMQ_KIND_MPMC)
		return SHMQ_EKIND;
	if (s->hdr.flags != 0)
		return SHMQ_ENOTIMPL; /* locked mode: refuse, touch nothing */
	if (shmq__validate_mpmc(&s->hdr) != 0)
		return SHMQ_ECORRUPT;
	q->seg = s;
	q->data = s->mem + s->hdr.data;
	q->cap = s->hdr.capacity;
	q->mask = q->cap - 1;
	q->slot_size = s->hdr.slot_size;
	q->lap = 4 * (int64_t)q->cap;
	q->max_message = s->hdr.max_message;
	q->registry_count = s->hdr.registry_count;
	q->enq = shmq__u64(s->mem, s->hdr.producer + SHMQ_CURSOR_POSITION);
	q->deq = shmq__u64(s->mem, s->hdr.consumer + SHMQ_CURSOR_POSITION);
	q->producer_wake = shmq__wake_at(s, s->hdr.producer_wake);
	q->consumer_wake = shmq__wake_at(s, s->hdr.consumer_wake);
	return 0;
}

/* classify: the position named by w must map to pos's slot. */
static inline int shmq__mpmc_classify(const shmq_mpmc *q, uint64_t w, uint64_t pos, int64_t *d)
{
	*d = shmq_seq_diff(w, pos);
	/* (d>>2) & mask, on the low bits only: no signed shift needed. */
	if ((((uint64_t)*d) >> 2) & q->mask)
		return SHMQ_ECORRUPT;
	return 0;
}

/* claimantGone: 1 if w has been stuck for SUSPECT_NS and its owner's entry
 * is not held by a live process; checked at most once per SUSPECT_NS. */
static inline int shmq__claimant_gone(struct shmq__suspect *s, shmq_segment *seg, uint64_t w)
{
	int64_t now = shmq__now_ns(CLOCK_MONOTONIC);
	if (w != s->word || s->since == 0) {
		s->word = w;
		s->since = now;
		s->checked = 0;
		return 0;
	}
	if (now - s->since < SHMQ_MPMC_SUSPECT_NS || (s->checked != 0 && now - s->checked < SHMQ_MPMC_SUSPECT_NS))
		return 0;
	s->checked = now;
	int alive = shmq_entry_alive(seg, (int)shmq_seq_owner(w));
	if (alive < 0)
		return alive;
	return !alive;
}

/* fullPosition: the 64-bit position named by w, at or before cursor cur. */
static inline uint64_t shmq__full_position(uint64_t w, uint64_t cur)
{
	const uint64_t pos46 = (UINT64_C(1) << (SHMQ_SEQ_RANK_BITS - 2)) - 1;
	uint64_t p46 = w >> SHMQ_SEQ_RANK_SHIFT >> 2;
	return cur - ((cur - p46) & pos46);
}

/* recoverEntry: the former holder of entry me is gone, so a slot it was
 * writing becomes a tombstone and a message it was reading is orphaned, for
 * the producer that next reaches the slot to requeue. */
static inline int shmq__mpmc_recover(shmq_mpmc *q, uint32_t me)
{
	for (uint64_t i = 0; i < q->cap; i++) {
		shmq_atomic_u64 *seq = shmq__mpmc_seq(q, i);
		uint64_t w = shmq__ld(seq);
		if (shmq_seq_owner(w) != me)
			continue;
		uint32_t st = shmq_seq_state(w);
		if (st == SHMQ_SLOT_WRITING) {
			uint64_t cur = shmq__ld(q->enq);
			uint64_t pos = shmq__full_position(w, cur);
			if ((pos & q->mask) != i || cur - pos > q->cap + 1)
				return SHMQ_ECORRUPT;
			shmq__cas(q->enq, pos, pos + 1);
			atomic_store_explicit(shmq__u32(shmq__mpmc_slot(q, pos), SHMQ_SLOT_LENGTH), 0, memory_order_relaxed);
			if (shmq__cas(seq, w, shmq_seq_word(pos, SHMQ_SLOT_FULL, me)))
				shmq__wake_if_waiting(&q->consumer_wake, NULL);
		} else if (st == SHMQ_SLOT_READING) {
			uint64_t cur = shmq__ld(q->deq);
			uint64_t pos = shmq__full_position(w, cur);
			if ((pos & q->mask) != i || cur - pos > q->cap + 1)
				return SHMQ_ECORRUPT;
			shmq__cas(q->deq, pos, pos + 1);
			if (shmq__cas(seq, w, shmq_seq_word(pos, SHMQ_SLOT_READING, SHMQ_SEQ_OWNER_ORPHAN)))
				shmq__wake_if_waiting(&q->producer_wake, NULL);
		}
	}
	return 0;
}

/* AttachAny: the first entry whose lock byte can be taken, then recovery of
 * the stale claims its former holder left. */
static inline int shmq__mpmc_attach(shmq_mpmc *q, uint32_t role, shmq_entry *e)
{
	for (uint32_t i = 0; i < q->registry_count; i++) {
		int err = shmq_attach(q->seg, (int)i, role, e);
		if (err == SHMQ_EROLETAKEN)
			continue;
		if (err != 0)
			return err;
		if ((err = shmq__mpmc_recover(q, i)) != 0) {
			shmq_detach(e);
			return err;
		}
		return 0;
	}
	return SHMQ_EREGISTRYFULL;
}

/* Waits on wake line w until ready(arg), the deadline (SHMQ_ETIMEDOUT), or
 * SHMQ_MPMC_RECHECK_NS since it registered (0: the caller re-runs its
 * operation, which notices dead claimants, since a dead process wakes no
 * one). Parks at most SHMQ_PARK_MAX_NS at a time, because a Go peer with a
 * non-futex notifier bumps the sequence word without FUTEX_WAKE. */
static inline int shmq__mpmc_wait(shmq_wake *w, shmq_entry *own, int64_t deadline_ns, int (*ready)(void *),
				  void *arg)
{
	for (int i = 0; i < SHMQ_SPIN_CHECKS; i++)
		if (ready(arg))
			return 0;
	atomic_fetch_add_explicit(w->waiters, 1, memory_order_seq_cst);
	atomic_thread_fence(memory_order_seq_cst);
	int err = 0, parked = 0;
	int64_t start = shmq__now_ns(CLOCK_MONOTONIC);
	for (;;) {
		uint32_t seq = atomic_load_explicit(w->seq, memory_order_seq_cst);
		if (ready(arg))
			break;
		int64_t now = shmq__now_ns(CLOCK_MONOTONIC);
		if (deadline_ns >= 0 && now >= deadline_ns) {
			err = SHMQ_ETIMEDOUT;
			break;
		}
		if (now - start >= SHMQ_MPMC_RECHECK_NS)
			break;
		int64_t park = SHMQ_PARK_MAX_NS;
		if (deadline_ns >= 0 && deadline_ns - now < park)
			park = deadline_ns - now;
		parked = 1;
		shmq__futex_wait(w->seq, seq, park);
	}
	atomic_fetch_sub_explicit(w->waiters, 1, memory_order_seq_cst);
	if (parked) {
		own->n_waits++;
		atomic_store_explicit(own->waits, own->n_waits, memory_order_release);
	}
	return err;
}

/* What a blocked side waits for: the cursor or the slot word it stopped at
 * changed. */
struct shmq__mpmc_moved {
	shmq_atomic_u64 *cursor, *seq;
	uint64_t pos, word;
};

static inline int shmq__mpmc_moved(void *a)
{
	struct shmq__mpmc_moved *m = (struct shmq__mpmc_moved *)a;
	return shmq__ld(m->cursor) != m->pos || shmq__ld(m->seq) != m->word;
}

/* checkOwner: the owner of a W or R word is a registry index or Orphan. */
static inline int shmq__mpmc_check_owner(const shmq_mpmc *q, uint64_t w)
{
	uint32_t o = shmq_seq_owner(w);
	return o < q->registry_count || o == SHMQ_SEQ_OWNER_ORPHAN ? 0 : SHMQ_ECORRUPT;
}

/* --- producer --- */

/* Attaches a producer to the MPMC segment s, taking the first free registry
 * entry. SHMQ_EREGISTRYFULL if every entry is held; SHMQ_ENOTIMPL for a
 * locked-mode segment. */
static inline int shmq_mpmc_producer_open(shmq_segment *s, shmq_mpmc_producer *p)
{
	memset(p, 0, sizeof *p);
	int err = shmq__mpmc_view(s, &p->q);
	if (err != 0)
		return err;
	if ((err = shmq__mpmc_attach(&p->q, SHMQ_ROLE_PRODUCER, &p->e)) != 0)
		return err;
	p->me = (uint32_t)p->e.index;
	return 0;
}

static inline int shmq__mpmc_publish(shmq_mpmc_producer *p, uint64_t pos);

/* requeue (mpmc/producer.go): the slot of pos holds w = R(pos-cap, o), a
 * message taken by a consumer that is gone. Put it back in the queue at pos,
 * in place, through W(pos, Orphan), which anyone may publish. 0 also when
 * another process got there first; the caller claims again either way. */
static inline int shmq__mpmc_requeue(shmq_mpmc_producer *p, shmq_atomic_u64 *seq, uint64_t w, uint64_t pos)
{
	shmq_mpmc *q = &p->q;
	uint64_t prev = pos - q->cap;
	shmq__cas(q->deq, prev, prev + 1);
	/* Nobody writes a taken slot's bytes: this is the length the CAS finds. */
	shmq_atomic_u32 *len = shmq__u32(shmq__mpmc_slot(q, pos), SHMQ_SLOT_LENGTH);
	uint32_t n = atomic_load_explicit(len, memory_order_relaxed);
	if (n > q->max_message) {
		/* Not a message: a tombstone, under a claim of our own. */
		uint64_t mine = shmq_seq_word(pos, SHMQ_SLOT_WRITING, p->me);
		if (!shmq__cas(seq, w, mine))
			return 0;
		shmq__cas(q->enq, pos, pos + 1);
		atomic_store_explicit(len, 0, memory_order_relaxed);
		int err = shmq__mpmc_publish(p, pos);
		shmq__wake_if_waiting(&q->consumer_wake, &p->e);
		return err != 0 ? err : SHMQ_ECORRUPT;
	}
	uint64_t orphan = shmq_seq_word(pos, SHMQ_SLOT_WRITING, SHMQ_SEQ_OWNER_ORPHAN);
	if (!shmq__cas(seq, w, orphan))
		return 0;
	if (n != 0)
		p->requeued++;
	shmq__cas(q->enq, pos, pos + 1);
	if (shmq__cas(seq, orphan, shmq_seq_word(pos, SHMQ_SLOT_FULL, SHMQ_SEQ_OWNER_ORPHAN)))
		shmq__wake_if_waiting(&q->consumer_wake, &p->e);
	return 0;
}

/* claim (mpmc/producer.go): claims the next free slot. */
static inline int shmq__mpmc_claim_slot(shmq_mpmc_producer *p, uint64_t *out)
{
	shmq_mpmc *q = &p->q;
	int64_t lap = q->lap;
	uint64_t pos = shmq__ld(q->enq);
	for (int attempt = 0; attempt < SHMQ_MPMC_MAX_ATTEMPTS; attempt++) {
		shmq_atomic_u64 *seq = shmq__mpmc_seq(q, pos);
		uint64_t w = shmq__ld(seq);
		int64_t d;
		if (shmq__mpmc_classify(q, w, pos, &d) != 0)
			return SHMQ_ECORRUPT;
		if (d == SHMQ_SLOT_EMPTY) {
			if (shmq__cas(seq, w, shmq_seq_word(pos, SHMQ_SLOT_WRITING, p->me))) {
				shmq__cas(q->enq, pos, pos + 1);
				*out = pos;
				return 0;
			}
		} else if (d == SHMQ_SLOT_WRITING || d == SHMQ_SLOT_FULL || d == SHMQ_SLOT_READING) {
			shmq__cas(q->enq, pos, pos + 1); /* help the claimant's cursor along */
		} else if (d == SHMQ_SLOT_WRITING - lap || d == SHMQ_SLOT_FULL - lap) {
			p->last_pos = pos;
			p->last_word = w;
			return SHMQ_EFULL;
		} else if (d == SHMQ_SLOT_READING - lap) {
			/* A consumer still reads the previous lap: if it is gone (or
			 * orphaned the message), requeue the message and claim again. */
			if (shmq__mpmc_check_owner(q, w) != 0)
				return SHMQ_ECORRUPT;
			if (shmq_seq_owner(w) != SHMQ_SEQ_OWNER_ORPHAN) {
				int gone = shmq__claimant_gone(&p->stuck, q->seg, w);
				if (gone < 0)
					return gone;
				if (!gone) {
					p->last_pos = pos;
					p->last_word = w;
					return SHMQ_EFULL;
				}
			}
			int err = shmq__mpmc_requeue(p, seq, w, pos);
			if (err != 0)
				return err;
		} else if (d >= lap) {
			uint64_t n = shmq__ld(q->enq);
			if (n != pos) {
				pos = n;
				continue;
			}
			return SHMQ_ECORRUPT; /* enqueue cursor behind its slot */
		} else {
			return SHMQ_ECORRUPT; /* enqueue cursor ahead of its slot */
		}
		pos = shmq__ld(q->enq);
	}
	return SHMQ_ECORRUPT; /* no progress */
}

/* Reserve claims a slot for a message of n bytes and sets *out to its
 * payload in the slot; fill it, then shmq_mpmc_commit. One reservation at a
 * time (SHMQ_EPENDING otherwise). A reserved slot holds back every later
 * message of every producer until committed: keep it short. Returns 0,
 * SHMQ_EFULL, SHMQ_EMSGSIZE, SHMQ_ECORRUPT or SHMQ_ESYS. */
static inline int shmq_mpmc_reserve(shmq_mpmc_producer *p, size_t n, void **out)
{
	if (p->closed)
		return SHMQ_ECLOSED;
	if (p->pending)
		return SHMQ_EPENDING;
	if (n == 0 || n > p->q.max_message)
		return SHMQ_EMSGSIZE;
	uint64_t pos;
	int err = shmq__mpmc_claim_slot(p, &pos);
	if (err != 0) {
		if (err == SHMQ_EFULL) {
			p->e.n_stalls++;
			atomic_store_explicit(p->e.stalls, p->e.n_stalls, memory_order_release);
		}
		return err;
	}
	unsigned char *slot = shmq__mpmc_slot(&p->q, pos);
	atomic_store_explicit(shmq__u32(slot, SHMQ_SLOT_LENGTH), (uint32_t)n, memory_order_relaxed);
	atomic_store_explicit(shmq__u32(slot, SHMQ_SLOT_PRODUCER), p->me, memory_order_relaxed);
	p->pending = 1;
	p->pend_pos = pos;
	p->pend_len = (uint32_t)n;
	*out = slot + SHMQ_SLOT_HEADER_SIZE;
	return 0;
}

/* publish: W(pos, me) -> F(pos, me), the release of the slot's bytes. */
static inline int shmq__mpmc_publish(shmq_mpmc_producer *p, uint64_t pos)
{
	shmq_atomic_u64 *seq = shmq__mpmc_seq(&p->q, pos);
	if (!shmq__cas(seq, shmq_seq_word(pos, SHMQ_SLOT_WRITING, p->me), shmq_seq_word(pos, SHMQ_SLOT_FULL, p->me)))
		return SHMQ_ECORRUPT; /* another process rewrote a claimed slot */
	return 0;
}

/* Commit publishes the reserved slot and wakes parked consumers. */
static inline int shmq_mpmc_commit(shmq_mpmc_producer *p)
{
	if (!p->pending)
		return 0;
	p->pending = 0;
	int err = shmq__mpmc_publish(p, p->pend_pos);
	if (err == 0) {
		p->e.n_messages++;
		p->e.n_bytes += p->pend_len;
		atomic_store_explicit(p->e.messages, p->e.n_messages, memory_order_release);
		atomic_store_explicit(p->e.bytes, p->e.n_bytes, memory_order_release);
	}
	shmq__wake_if_waiting(&p->q.consumer_wake, &p->e);
	return err;
}

/* TrySend copies msg into a slot and commits it, or returns SHMQ_EFULL. */
static inline int shmq_mpmc_try_send(shmq_mpmc_producer *p, const void *msg, size_t n)
{
	void *b;
	int err = shmq_mpmc_reserve(p, n, &b);
	if (err != 0)
		return err;
	memcpy(b, msg, n);
	return shmq_mpmc_commit(p);
}

/* Send copies msg into a slot and commits it, waiting while the queue is
 * full for at most timeout_ns (< 0: forever). While it waits it requeues
 * the messages of consumers that died holding the slot it waits for. */
static inline int shmq_mpmc_send(shmq_mpmc_producer *p, const void *msg, size_t n, int64_t timeout_ns)
{
	int64_t deadline = shmq__deadline(timeout_ns);
	for (;;) {
		int err = shmq_mpmc_try_send(p, msg, n);
		if (err != SHMQ_EFULL)
			return err;
		struct shmq__mpmc_moved m = { p->q.enq, shmq__mpmc_seq(&p->q, p->last_pos), p->last_pos, p->last_word };
		if ((err = shmq__mpmc_wait(&p->q.producer_wake, &p->e, deadline, shmq__mpmc_moved, &m)) != 0)
			return err;
	}
}

/* Close turns an uncommitted reservation into a tombstone (consumers skip
 * it) and detaches. */
static inline int shmq_mpmc_producer_close(shmq_mpmc_producer *p)
{
	if (p->closed)
		return 0;
	p->closed = 1;
	if (p->pending) {
		p->pending = 0;
		atomic_store_explicit(shmq__u32(shmq__mpmc_slot(&p->q, p->pend_pos), SHMQ_SLOT_LENGTH), 0,
				      memory_order_relaxed);
		shmq__mpmc_publish(p, p->pend_pos);
		shmq__wake_if_waiting(&p->q.consumer_wake, &p->e);
	}
	return shmq_detach(&p->e);
}

/* --- consumer --- */

/* Attaches a consumer to the MPMC segment s (see shmq_mpmc_producer_open). */
static inline int shmq_mpmc_consumer_open(shmq_segment *s, shmq_mpmc_consumer *c)
{
	memset(c, 0, sizeof *c);
	int err = shmq__mpmc_view(s, &c->q);
	if (err != 0)
		return err;
	if ((err = shmq__mpmc_attach(&c->q, SHMQ_ROLE_CONSUMER, &c->e)) != 0)
		return err;
	c->me = (uint32_t)c->e.index;
	return 0;
}

/* free: R(pos, me) -> E(pos+cap), releasing the slot to the next lap. */
static inline int shmq__mpmc_free(shmq_mpmc_consumer *c, uint64_t pos)
{
	shmq_atomic_u64 *seq = shmq__mpmc_seq(&c->q, pos);
	c->freed = 1;
	if (!shmq__cas(seq, shmq_seq_word(pos, SHMQ_SLOT_READING, c->me),
		       shmq_seq_word(pos + c->q.cap, SHMQ_SLOT_EMPTY, 0)))
		return SHMQ_ECORRUPT;
	return 0;
}

static inline void shmq__mpmc_wake_producers(shmq_mpmc_consumer *c)
{
	if (c->freed) {
		c->freed = 0;
		shmq__wake_if_waiting(&c->q.producer_wake, &c->e);
	}
}

/* claim (mpmc/consumer.go): takes the next message, skipping tombstones and
 * slots whose producer died writing them. */
static inline int shmq__mpmc_take(shmq_mpmc_consumer *c, uint64_t *out, uint32_t *len)
{
	shmq_mpmc *q = &c->q;
	int64_t lap = q->lap;
	uint64_t pos = shmq__ld(q->deq);
	for (int attempt = 0; attempt < SHMQ_MPMC_MAX_ATTEMPTS; attempt++) {
		shmq_atomic_u64 *seq = shmq__mpmc_seq(q, pos);
		uint64_t w = shmq__ld(seq);
		int64_t d;
		if (shmq__mpmc_classify(q, w, pos, &d) != 0)
			return SHMQ_ECORRUPT;
		if (d == SHMQ_SLOT_FULL) {
			if (shmq__cas(seq, w, shmq_seq_word(pos, SHMQ_SLOT_READING, c->me))) {
				shmq__cas(q->deq, pos, pos + 1);
				uint32_t n = atomic_load_explicit(shmq__u32(shmq__mpmc_slot(q, pos), SHMQ_SLOT_LENGTH),
								  memory_order_relaxed);
				if (n != 0 && n <= q->max_message) {
					if (shmq_seq_owner(w) == SHMQ_SEQ_OWNER_ORPHAN)
						c->redelivered++; /* a requeued message */
					*out = pos;
					*len = n;
					return 0;
				}
				int ferr = shmq__mpmc_free(c, pos);
				if (n != 0)
					return SHMQ_ECORRUPT; /* longer than MaxMessage */
				if (ferr != 0)
					return ferr;
				c->tombstones++;
			}
		} else if (d == SHMQ_SLOT_READING) {
			shmq__cas(q->deq, pos, pos + 1); /* help the taker's cursor along */
		} else if (d == SHMQ_SLOT_EMPTY || d == SHMQ_SLOT_READING - lap) {
			c->last_pos = pos;
			c->last_word = w;
			return SHMQ_EEMPTY;
		} else if (d == SHMQ_SLOT_WRITING) {
			if (shmq__mpmc_check_owner(q, w) != 0)
				return SHMQ_ECORRUPT;
			if (shmq_seq_owner(w) == SHMQ_SEQ_OWNER_ORPHAN) {
				/* A message being requeued, complete: publish it for the
				 * requeuing producer, which may have died. */
				shmq__cas(q->enq, pos, pos + 1);
				shmq__cas(seq, w, shmq_seq_word(pos, SHMQ_SLOT_FULL, SHMQ_SEQ_OWNER_ORPHAN));
				pos = shmq__ld(q->deq);
				continue;
			}
			/* A producer is writing pos: skip the slot if it died. */
			int gone = shmq__claimant_gone(&c->stuck, q->seg, w);
			if (gone < 0)
				return gone;
			if (!gone) {
				c->last_pos = pos;
				c->last_word = w;
				return SHMQ_EEMPTY;
			}
			/* Adopt the claim first: a taken slot holding a half-written
			 * message would be requeued if this consumer died. */
			uint64_t mine = shmq_seq_word(pos, SHMQ_SLOT_WRITING, c->me);
			if (shmq__cas(seq, w, mine)) {
				shmq__cas(q->enq, pos, pos + 1);
				atomic_store_explicit(shmq__u32(shmq__mpmc_slot(q, pos), SHMQ_SLOT_LENGTH), 0,
						      memory_order_relaxed);
				if (!shmq__cas(seq, mine, shmq_seq_word(pos, SHMQ_SLOT_READING, c->me)))
					return SHMQ_ECORRUPT; /* adopted slot taken from us */
				shmq__cas(q->deq, pos, pos + 1);
				c->skipped++;
				int err = shmq__mpmc_free(c, pos);
				if (err != 0)
					return err;
			}
		} else if (d >= lap) {
			uint64_t n = shmq__ld(q->deq);
			if (n != pos) {
				pos = n;
				continue;
			}
			return SHMQ_ECORRUPT; /* dequeue cursor behind its slot */
		} else {
			return SHMQ_ECORRUPT; /* dequeue cursor ahead of its slot */
		}
		pos = shmq__ld(q->deq);
	}
	return SHMQ_ECORRUPT; /* no progress */
}

/* next: the stashed message, or a newly taken one. */
static inline int shmq__mpmc_next(shmq_mpmc_consumer *c)
{
	if (c->closed)
		return SHMQ_ECLOSED;
	if (c->stashed) {
		c->stashed = 0;
		return 0;
	}
	if (c->held)
		return SHMQ_EPENDING;
	int err = shmq__mpmc_take(c, &c->held_pos, &c->held_len);
	if (err == 0) {
		c->held = 1;
	} else if (err == SHMQ_EEMPTY) {
		c->e.n_stalls++;
		atomic_store_explicit(c->e.stalls, c->e.n_stalls, memory_order_release);
	}
	return err;
}

/* Peek takes the next message and sets *msg to its payload in the slot,
 * valid (and not overwritten by producers) until shmq_mpmc_release. One
 * peeked message at a time (SHMQ_EPENDING otherwise). SHMQ_EEMPTY when no
 * committed message is available. */
static inline int shmq_mpmc_peek(shmq_mpmc_consumer *c, const void **msg, size_t *len)
{
	int err = shmq__mpmc_next(c);
	if (err != 0) {
		shmq__mpmc_wake_producers(c);
		return err;
	}
	*msg = shmq__mpmc_slot(&c->q, c->held_pos) + SHMQ_SLOT_HEADER_SIZE;
	*len = c->held_len;
	return 0;
}

/* Release frees the peeked message's slot and wakes parked producers. */
static inline int shmq_mpmc_release(shmq_mpmc_consumer *c)
{
	if (!c->held)
		return 0;
	c->held = c->stashed = 0;
	int err = shmq__mpmc_free(c, c->held_pos);
	c->e.n_messages++;
	c->e.n_bytes += c->held_len;
	atomic_store_explicit(c->e.messages, c->e.n_messages, memory_order_release);
	atomic_store_explicit(c->e.bytes, c->e.n_bytes, memory_order_release);
	shmq__mpmc_wake_producers(c);
	return err;
}

/* TryRecv copies the next message into buf and releases it, or returns
 * SHMQ_EEMPTY. If buf is too small it returns SHMQ_ESHORTBUF, sets *len to
 * the message's length and keeps the message for the next call. */
static inline int shmq_mpmc_try_recv(shmq_mpmc_consumer *c, void *buf, size_t cap, size_t *len)
{
	if (c->held && !c->stashed)
		return SHMQ_EPENDING;
	int err = shmq__mpmc_next(c);
	if (err != 0) {
		shmq__mpmc_wake_producers(c);
		return err;
	}
	*len = c->held_len;
	if (c->held_len > cap) {
		c->stashed = 1;
		return SHMQ_ESHORTBUF;
	}
	memcpy(buf, shmq__mpmc_slot(&c->q, c->held_pos) + SHMQ_SLOT_HEADER_SIZE, c->held_len);
	return shmq_mpmc_release(c);
}

/* Recv is TryRecv waiting while the queue is empty, for at most timeout_ns
 * (< 0: forever). While it waits it skips slots whose producer died. */
static inline int shmq_mpmc_recv(shmq_mpmc_consumer *c, void *buf, size_t cap, size_t *len, int64_t timeout_ns)
{
	int64_t deadline = shmq__deadline(timeout_ns);
	for (;;) {
		int err = shmq_mpmc_try_recv(c, buf, cap, len);
		if (err != SHMQ_EEMPTY)
			return err;
		struct shmq__mpmc_moved m = { c->q.deq, shmq__mpmc_seq(&c->q, c->last_pos), c->last_pos, c->last_word };
		if ((err = shmq__mpmc_wait(&c->q.consumer_wake, &c->e, deadline, shmq__mpmc_moved, &m)) != 0)
			return err;
	}
}

/* Close releases a held message (it counts as consumed) and detaches. */
static inline int shmq_mpmc_consumer_close(shmq_mpmc_consumer *c)
{
	if (c->closed)
		return 0;
	shmq_mpmc_release(c);
	c->closed = 1;
	return shmq_detach(&c->e);
}

/* ---------------------------------------------------------------------- */
/* CRC-32C (Castagnoli), reflected, as Go's crc32.Update with Castagnoli:   */
/* crc = shmq_crc32c(crc, p, n) chains like crc32.Update.                  */
/* ---------------------------------------------------------------------- */

static inline uint32_t shmq_crc32c(uint32_t crc, const void *buf, size_t n)
{
	static uint32_t table[256];
	static _Atomic int ready;
	if (!atomic_load_explicit(&ready, memory_order_acquire)) {
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;
			for (int k = 0; k < 8; k++)
				c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
			table[i] = c;
		}
		atomic_store_explicit(&ready, 1, memory_order_release);
	}
	const unsigned char *p = (const unsigned char *)buf;
	crc = ~crc;
	for (size_t i = 0; i < n; i++)
		crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
	return ~crc;
}

#ifdef __cplusplus
}
#endif

#endif /* SHMQ_H */
