/*
 * shmq.h - header-only C11 implementation of shmq layout version 2
 * (see LAYOUT.md in this directory, which is normative).
 *
 * Linux only, 64-bit little-endian only, C11 <stdatomic.h> and libc only.
 * Include this header before any system header, or compile with
 * -D_GNU_SOURCE: it needs F_OFD_SETLK, syscall(2) and clock_gettime.
 *
 * This file is the common part, and includes the rest, so one #include
 * gives everything:
 *   - shmq.h: the layout's constants and offsets (SHMQ_* macros, matching
 *     the Go constants of package layout) and structs whose offsetof values
 *     equal them (checked with _Static_assert); shmq_decode, the header
 *     validation of layout.Decode; shmq_open and friends, which open and
 *     map an existing segment, waiting (bounded) for its creator and
 *     detecting abandoned creation (LAYOUT.md sections 9-10); the registry
 *     (shmq_attach, shmq_detach, shmq_entry_alive: OFD-lock liveness taken
 *     through a private lock description, section 7); the wake protocol
 *     with waiter sets (section 6);
 *   - shmq_spsc.h: the SPSC producer (reserve/commit, try_send, send) and
 *     consumer (peek/release, try_recv, recv), sections 11-13;
 *   - shmq_mpmc.h: the MPMC producer and consumer of the lock-free slot
 *     protocol with its crash recovery, section 14;
 *   - shmq_pubsub.h: the pub/sub publisher (both policies: back-pressure
 *     and lossy) and subscriber, section 18.
 *
 * Not implemented: creating segments, and MPMC locked mode (FlagLocked):
 * the MPMC calls refuse such a segment with SHMQ_ENOTIMPL, never touching
 * it. Every flag is must-understand (LAYOUT.md section 3).
 *
 * Fork. Liveness is an OFD lock, which belongs to an open file description;
 * fork (and descriptor passing) shares descriptions, and with them locks.
 * So every lock is taken through a description that this process opened for
 * itself (shmq_segment.lock_fd, close-on-exec, never handed out), and
 * shmq_segment.fd, the description the mapping was made from, never holds
 * one: pass fd to a child to share a memfd. After fork(), the child closes
 * its copies of the lock descriptions at once (a pthread_atfork handler,
 * unless SHMQ_NO_ATFORK is defined), so a child that lives on cannot keep a
 * dead parent's roles alive. In the child, a segment opened before the fork
 * stays usable: the first call that takes or tests a lock opens a new
 * private lock description. Handles attached before the fork (producers,
 * consumers, entries) belong to the parent: in the child every call on
 * them returns SHMQ_EFORKED and their close touches nothing shared. Attach
 * new ones in the child. Without the handler (SHMQ_NO_ATFORK, or a child
 * made by a raw clone), a fork is noticed by getpid() in the calls that
 * take or test a lock, wait, or close, but not in the non-blocking calls
 * on a handle (send, reserve, commit, peek, release, recv without
 * waiting): such a child must not use the parent's handles, and must
 * shmq_close what it inherited if it lives on.
 *
 * Errors are negative SHMQ_E* values (errno is preserved for SHMQ_ESYS);
 * shmq_strerror names them. Nothing here is thread-safe per handle: one
 * segment, producer or consumer handle belongs to one thread at a time, and
 * a shmq_segment must stay at its address from open to close (handles
 * point to it).
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
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>
#ifndef SHMQ_NO_ATFORK
#include <pthread.h>
#endif

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

/* ---------------------------------------------------------------------- */
/* Constants (layout/layout.go, layout/spsc.go, layout/mpmc.go,            */
/* layout/decode.go)                                                       */
/* ---------------------------------------------------------------------- */

#define SHMQ_MAGIC       UINT64_C(0x0a1a0a0d514d4853) /* "SHMQ\r\n\x1a\n" */
#define SHMQ_VERSION     2u
#define SHMQ_LINE_SIZE   128u
#define SHMQ_PAGE_SIZE   4096u
#define SHMQ_HEADER_SIZE 256u /* descriptor line + offset table line */

#define SHMQ_KIND_SPSC   1u
#define SHMQ_KIND_MPMC   2u
#define SHMQ_KIND_PUBSUB 3u

/* Flags (must-understand). FlagLocked (MPMC only): an MPMC queue in locked
 * mode, which this header decodes but does not implement (SHMQ_ENOTIMPL).
 * FlagLossy (pub/sub only): a pub/sub queue whose publisher overwrites what
 * subscribers have not read instead of waiting. FlagSleeperBit (every kind,
 * set by every current creator): bit 0 of each wake line's WakeSeq says a
 * waiter sleeps or is about to sleep there, and publishers wake only when
 * it is set (LAYOUT.md section 6; see shmq__wake_if_waiting). */
#define SHMQ_FLAG_LOCKED  1u
#define SHMQ_FLAG_LOSSY   2u
#define SHMQ_FLAG_SLEEPER 4u

#define SHMQ_STATE_INIT  0u
#define SHMQ_STATE_READY 0x59444552u /* "REDY" */

/* Descriptor line (line 0). */
#define SHMQ_OFF_MAGIC        0  /* u64 */
#define SHMQ_OFF_STATE        8  /* u32 */
#define SHMQ_OFF_VERSION      12 /* u32 */
#define SHMQ_OFF_KIND         16 /* u32 */
#define SHMQ_OFF_FLAGS        20 /* u32 flags, must-understand: SHMQ_FLAG_* */
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
#define SHMQ_OFF_TAB_WAITERS        192 /* u64 offset of waiter set 0 */
#define SHMQ_OFF_TAB_WAITER_SETS    200 /* u32 number of waiter sets */

/* Cursor line. */
#define SHMQ_CURSOR_POSITION 0 /* u64 */

/* Wake line. Offsets 4, 12, 24 and 28 held counts in version 1; reserved. */
#define SHMQ_WAKE_SEQ         0  /* u32 futex word; with SHMQ_FLAG_SLEEPER bit 0 = sleeper, bits 1..31 epoch */
#define SHMQ_WAKE_SEM_COUNT   8  /* u32 locked mode: semaphore count */
#define SHMQ_WAKE_MUTEX_STATE 16 /* u32 locked mode: mutex state */
#define SHMQ_WAKE_MUTEX_OWNER 20 /* u32 locked mode: mutex owner pid */

/* Waiter sets: one line of 16 u64 words each, a bitmap of registry entries
 * (bit j of word k is entry 64k+j). */
#define SHMQ_WAITER_SET_WORDS 16u
#define SHMQ_WAITER_SET_BITS  1024u
#define SHMQ_WAITER_SET_PRODUCERS 0 /* parked on the producers' wake line */
#define SHMQ_WAITER_SET_CONSUMERS 1 /* parked on the consumers' wake line */
#define SHMQ_WAITER_SET_FREE      2 /* MPMC locked mode: free-slots semaphore */
#define SHMQ_WAITER_SET_FILLED    3 /* MPMC locked mode: filled-slots semaphore */
#define SHMQ_WAITER_SET_MUTEX_P   4 /* MPMC locked mode: producers' mutex */
#define SHMQ_WAITER_SET_MUTEX_C   5 /* MPMC locked mode: consumers' mutex */
#define SHMQ_SPSC_WAITER_SETS 2u
#define SHMQ_MPMC_WAITER_SETS 6u
#define SHMQ_PUBSUB_WAITER_SETS 2u
/* WaiterSetLen: the words of a set that a registry of count entries uses. */
#define SHMQ_WAITER_SET_LEN(count) (((uint32_t)(count) + 63u) / 64u)

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
#define SHMQ_ENTRY_UNITS       64 /* u32 MPMC locked mode: semaphore units the holder may hold */

#define SHMQ_ENTRY_FREE     0u
#define SHMQ_ENTRY_ATTACHED 1u
#define SHMQ_ENTRY_DETACHED 2u

#define SHMQ_ROLE_PRODUCER 1u
#define SHMQ_ROLE_CONSUMER 2u

/* Lock bytes of the segment file (section 8). */
#define SHMQ_INIT_LOCK_BYTE 0
#define SHMQ_ENTRY_LOCK_BYTE(i) (1 + (int64_t)(i))
#define SHMQ_MUTEX_PRODUCERS 0
#define SHMQ_MUTEX_CONSUMERS 1
#define SHMQ_MUTEX_LOCK_BYTE(count, k) (1 + (int64_t)(count) + (int64_t)(k))

#define SHMQ_SPSC_PRODUCER_ENTRY 0
#define SHMQ_SPSC_CONSUMER_ENTRY 1

#define SHMQ_MAX_REGISTRY_ENTRIES SHMQ_WAITER_SET_BITS

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
#define SHMQ_SLOT_LENGTH      8  /* u32 payload length */
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
 * for anyone to publish (W). */
#define SHMQ_SEQ_OWNER_ORPHAN 0xFFFFu
/* The owner of F(p, T), a tombstone: a position that holds no message,
 * made by one compare-and-swap from a claim. Consumers pass it; the
 * producer of the next lap claims straight from it. */
#define SHMQ_SEQ_OWNER_TOMB   0xFFFEu
#define SHMQ_MAX_MPMC_REGISTRY SHMQ_WAITER_SET_BITS

/* Pub/sub queues (layout/pubsub.go; LAYOUT.md section 18). Records: a
 * 16-byte header (length, type as in SPSC, then the message's sequence
 * number) and 16-byte alignment. */
#define SHMQ_PUBSUB_RECORD_HEADER_SIZE 16u
#define SHMQ_PUBSUB_RECORD_ALIGN       16u
#define SHMQ_PUBSUB_RECORD_LENGTH      0 /* u32 header + payload length, unaligned */
#define SHMQ_PUBSUB_RECORD_TYPE        4 /* u32 SHMQ_TYPE_MESSAGE or SHMQ_TYPE_PADDING */
#define SHMQ_PUBSUB_RECORD_SEQ         8 /* u64 sequence number (padding: of the next message) */
#define SHMQ_MIN_PUBSUB_CAPACITY UINT64_C(64)
#define SHMQ_MAX_PUBSUB_CAPACITY (UINT64_C(1) << 40)
/* Registry: entry 0 is the publisher's, 1 and up the subscribers'. */
#define SHMQ_PUBSUB_PUBLISHER_ENTRY  0
#define SHMQ_PUBSUB_FIRST_SUBSCRIBER 1
#define SHMQ_MAX_PUBSUB_SUBSCRIBERS  (SHMQ_MAX_REGISTRY_ENTRIES - 1)
/* Producer line, written by the publisher only. */
#define SHMQ_PUB_TAIL     0  /* u64 committed position (= SHMQ_CURSOR_POSITION) */
#define SHMQ_PUB_INTENT   8  /* u64 lossy: position up to which the publisher may be writing */
#define SHMQ_PUB_OLDEST   16 /* u64 lossy: oldest record boundary at or after intent - capacity */
#define SHMQ_PUB_LIMIT    24 /* u64 back-pressure: the publisher writes below it */
#define SHMQ_PUB_WAIT_FOR 32 /* u64 back-pressure: where the slowest subscriber must get to */
/* A subscriber's registry entry, past the common fields. */
#define SHMQ_ENTRY_SUB_POSITION 72 /* u64 first record not released */
#define SHMQ_ENTRY_SUB_SEQ      80 /* u64 sequence number expected there */
#define SHMQ_ENTRY_SUB_LOST     88 /* u64 messages lost to overwriting, in total */

/* Where Go creators (layout.planLines) put the lines; readers use the
 * offset table. The registry follows the waiter sets. */
#define SHMQ_PLAN_PRODUCER_LINE      256
#define SHMQ_PLAN_CONSUMER_LINE      384
#define SHMQ_PLAN_PRODUCER_WAKE_LINE 512
#define SHMQ_PLAN_CONSUMER_WAKE_LINE 640
#define SHMQ_PLAN_WAITERS            768
#define SHMQ_PLAN_REGISTRY(sets)     (SHMQ_PLAN_WAITERS + (sets) * SHMQ_LINE_SIZE)

/* Shm names: 1..30 of [A-Za-z0-9._-], starting with neither '.' nor '-'. */
#define SHMQ_MAX_NAME_LEN 30

/* Wait policy (compare spsc/wait.go): check the peer's liveness this often,
 * and park on the futex at most this long at a time, because a Go peer
 * configured with a non-futex notifier changes the seq word without
 * FUTEX_WAKE (LAYOUT.md section 6). A publisher that keeps waking waiters
 * checks them for dead ones once per SHMQ_SWEEP_PERIOD_NS. */
#define SHMQ_LIVENESS_PERIOD_NS INT64_C(100000000)
#define SHMQ_SWEEP_PERIOD_NS    INT64_C(100000000)
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
	uint64_t waiters;
	uint32_t waiter_sets;
	uint8_t reserved[SHMQ_LINE_SIZE - 76];
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
	uint32_t reserved4;
	uint32_t sem_count;
	uint32_t reserved12;
	uint32_t mutex_state;
	uint32_t mutex_owner;
	uint8_t reserved[SHMQ_LINE_SIZE - 24];
};

struct shmq_waiter_set {
	uint64_t words[SHMQ_WAITER_SET_WORDS];
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
	uint32_t units;
	uint8_t reserved[SHMQ_LINE_SIZE - 68];
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

struct shmq_pubsub_record_header {
	uint32_t length;
	uint32_t type;
	uint64_t seq;
};

struct shmq_pubsub_producer_line {
	uint64_t tail;
	uint64_t intent;
	uint64_t oldest;
	uint64_t limit;
	uint64_t wait_for;
	uint8_t reserved[SHMQ_LINE_SIZE - 40];
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
SHMQ__CHECK(shmq_segment_header, tab.waiters, SHMQ_OFF_TAB_WAITERS);
SHMQ__CHECK(shmq_segment_header, tab.waiter_sets, SHMQ_OFF_TAB_WAITER_SETS);
SHMQ__CHECK(shmq_cursor_line, position, SHMQ_CURSOR_POSITION);
SHMQ__CHECK(shmq_wake_line, seq, SHMQ_WAKE_SEQ);
SHMQ__CHECK(shmq_wake_line, sem_count, SHMQ_WAKE_SEM_COUNT);
SHMQ__CHECK(shmq_wake_line, mutex_state, SHMQ_WAKE_MUTEX_STATE);
SHMQ__CHECK(shmq_wake_line, mutex_owner, SHMQ_WAKE_MUTEX_OWNER);
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
SHMQ__CHECK(shmq_registry_entry, units, SHMQ_ENTRY_UNITS);
SHMQ__CHECK(shmq_record_header, length, SHMQ_RECORD_LENGTH);
SHMQ__CHECK(shmq_record_header, type, SHMQ_RECORD_TYPE);
SHMQ__CHECK(shmq_slot_header, seq, SHMQ_SLOT_SEQ);
SHMQ__CHECK(shmq_slot_header, length, SHMQ_SLOT_LENGTH);
SHMQ__CHECK(shmq_slot_header, producer, SHMQ_SLOT_PRODUCER);
SHMQ__CHECK(shmq_pubsub_record_header, length, SHMQ_PUBSUB_RECORD_LENGTH);
SHMQ__CHECK(shmq_pubsub_record_header, type, SHMQ_PUBSUB_RECORD_TYPE);
SHMQ__CHECK(shmq_pubsub_record_header, seq, SHMQ_PUBSUB_RECORD_SEQ);
SHMQ__CHECK(shmq_pubsub_producer_line, tail, SHMQ_PUB_TAIL);
SHMQ__CHECK(shmq_pubsub_producer_line, intent, SHMQ_PUB_INTENT);
SHMQ__CHECK(shmq_pubsub_producer_line, oldest, SHMQ_PUB_OLDEST);
SHMQ__CHECK(shmq_pubsub_producer_line, limit, SHMQ_PUB_LIMIT);
SHMQ__CHECK(shmq_pubsub_producer_line, wait_for, SHMQ_PUB_WAIT_FOR);
_Static_assert(sizeof(struct shmq_pubsub_record_header) == SHMQ_PUBSUB_RECORD_HEADER_SIZE, "pub/sub record header");
_Static_assert(sizeof(struct shmq_pubsub_producer_line) == SHMQ_LINE_SIZE, "pub/sub producer line");
_Static_assert(sizeof(struct shmq_slot_header) == SHMQ_SLOT_HEADER_SIZE, "slot header");
_Static_assert(sizeof(struct shmq_segment_header) == SHMQ_HEADER_SIZE, "header size");
_Static_assert(sizeof(struct shmq_cursor_line) == SHMQ_LINE_SIZE, "cursor line");
_Static_assert(sizeof(struct shmq_wake_line) == SHMQ_LINE_SIZE, "wake line");
_Static_assert(sizeof(struct shmq_waiter_set) == SHMQ_LINE_SIZE, "waiter set");
_Static_assert(sizeof(struct shmq_registry_entry) == SHMQ_LINE_SIZE, "registry entry");
_Static_assert(sizeof(struct shmq_record_header) == SHMQ_RECORD_HEADER_SIZE, "record header");

/* ---------------------------------------------------------------------- */
/* Errors                                                                  */
/* ---------------------------------------------------------------------- */

enum {
	SHMQ_OK = 0,
	SHMQ_ESYS = -1,           /* system call failed; errno is set */
	SHMQ_ENOTSEGMENT = -2,    /* not a shmq segment */
	SHMQ_ENOTREADY = -3,      /* creator has not published the header (in time) */
	SHMQ_EABANDONED = -4,     /* creator died before publishing */
	SHMQ_EVERSION = -5,       /* unsupported layout version or flags */
	SHMQ_EKIND = -6,          /* wrong or unknown queue kind */
	SHMQ_ECORRUPT = -7,       /* shared memory holds values no correct peer writes */
	SHMQ_EBADNAME = -8,       /* invalid location */
	SHMQ_EPERM = -9,          /* segment owned by another uid */
	SHMQ_EROLETAKEN = -10,    /* registry entry held by a live process */
	SHMQ_EFULL = -11,         /* ring full */
	SHMQ_EEMPTY = -12,        /* ring empty */
	SHMQ_EMSGSIZE = -13,      /* message size out of range */
	SHMQ_ESHORTBUF = -14,     /* buffer too small for the next message */
	SHMQ_EPENDING = -15,      /* reserved records not committed */
	SHMQ_EPEERDEAD = -16,     /* peer died without detaching */
	SHMQ_ETIMEDOUT = -17,     /* timeout */
	SHMQ_ECLOSED = -18,       /* handle closed */
	SHMQ_EINVAL = -19,        /* invalid argument */
	SHMQ_ENOTIMPL = -20,      /* segment uses a flag this header does not implement (MPMC locked mode) */
	SHMQ_EREGISTRYFULL = -21, /* every registry entry is held by a live process */
	SHMQ_EFORKED = -22,       /* handle attached by the parent, before this process forked from it */
	SHMQ_EEOF = -23,          /* SPSC, pub/sub: the producer closed and every message it committed was received */
	SHMQ_ELOST = -24          /* pub/sub, lossy: messages were overwritten before they were read */
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
	case SHMQ_EFORKED: return "handle belongs to the parent process (attached before fork)";
	case SHMQ_EEOF: return "end of stream: the producer closed";
	case SHMQ_ELOST: return "messages lost to overwriting";
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

static inline int shmq__popcount64(uint64_t v)
{
	int n = 0;
	for (; v != 0; v &= v - 1)
		n++;
	return n;
}

/* OFD locks (LAYOUT.md section 7). fd must be a lock description (see
 * shmq_segment.lock_fd). Returns 0, SHMQ_EROLETAKEN or SHMQ_ESYS. */
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

static inline void shmq__futex_wake(shmq_atomic_u32 *word, int n)
{
	syscall(SYS_futex, (void *)word, FUTEX_WAKE, n, NULL, NULL, 0);
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
	uint64_t waiters;     /* offset of waiter set 0 */
	uint32_t waiter_sets; /* number of waiter sets */
} shmq_header;

static inline uint64_t shmq_header_entry(const shmq_header *h, int i)
{
	return h->registry + (uint64_t)i * h->entry_size;
}

static inline uint64_t shmq_header_waiter_set(const shmq_header *h, int k)
{
	return h->waiters + (uint64_t)k * SHMQ_LINE_SIZE;
}

/* The largest payload of a byte ring of the given capacity whose records
 * have header-byte headers: a record of at most capacity/2 (and 2^30)
 * bytes, so that one always fits once the ring is empty. */
static inline uint32_t shmq__max_payload(uint64_t capacity, uint32_t header)
{
	uint64_t r = capacity / 2;
	if (r > SHMQ_MAX_RECORD_LENGTH)
		r = SHMQ_MAX_RECORD_LENGTH;
	return (uint32_t)(r - header);
}

/* SPSCMaxMessage: min(capacity/2, 2^30) - 8. */
static inline uint32_t shmq_spsc_max_message(uint64_t capacity)
{
	return shmq__max_payload(capacity, SHMQ_RECORD_HEADER_SIZE);
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
		return SHMQ_ECORRUPT; /* indices stay below SHMQ_SEQ_OWNER_TOMB */
	return 0;
}

/* PubSubMaxMessage: min(capacity/2, 2^30) - 16. */
static inline uint32_t shmq_pubsub_max_message(uint64_t capacity)
{
	return shmq__max_payload(capacity, SHMQ_PUBSUB_RECORD_HEADER_SIZE);
}

/* PubSubRecordSize: the ring bytes a message of n payload bytes takes. */
static inline uint64_t shmq_pubsub_record_size(uint64_t n)
{
	return shmq__align_up(n + SHMQ_PUBSUB_RECORD_HEADER_SIZE, SHMQ_PUBSUB_RECORD_ALIGN);
}

/* PubSubSlack: the step of a lossy publisher's intent, max(capacity/8, 16). */
static inline uint64_t shmq_pubsub_slack(uint64_t capacity)
{
	return capacity / 8 > SHMQ_PUBSUB_RECORD_ALIGN ? capacity / 8 : SHMQ_PUBSUB_RECORD_ALIGN;
}

/* validatePubSub (layout/pubsub.go). */
static inline int shmq__validate_pubsub(const shmq_header *h)
{
	uint64_t c = h->capacity;
	if (c < SHMQ_MIN_PUBSUB_CAPACITY || c > SHMQ_MAX_PUBSUB_CAPACITY || !shmq__pow2(c))
		return SHMQ_ECORRUPT;
	if (h->data_size != c || h->slot_size != SHMQ_PUBSUB_RECORD_ALIGN)
		return SHMQ_ECORRUPT;
	if (h->max_message == 0 || h->max_message > shmq_pubsub_max_message(c))
		return SHMQ_ECORRUPT;
	if (h->registry_count < 2) /* a publisher and a subscriber at least */
		return SHMQ_ECORRUPT;
	return 0;
}

/* kindWaiterSets: the waiter sets a queue of kind k has; 0 if unknown. */
static inline uint32_t shmq__kind_waiter_sets(uint32_t kind)
{
	switch (kind) {
	case SHMQ_KIND_SPSC: return SHMQ_SPSC_WAITER_SETS;
	case SHMQ_KIND_MPMC: return SHMQ_MPMC_WAITER_SETS;
	case SHMQ_KIND_PUBSUB: return SHMQ_PUBSUB_WAITER_SETS;
	}
	return 0;
}

/* The flags a queue of kind k may carry (Header.validate's known):
 * SHMQ_FLAG_SLEEPER for every kind (an unknown kind too, as in Go, which
 * rejects it after the region checks), plus the kind's own. */
static inline uint32_t shmq__kind_flags(uint32_t kind)
{
	switch (kind) {
	case SHMQ_KIND_MPMC: return SHMQ_FLAG_SLEEPER | SHMQ_FLAG_LOCKED;
	case SHMQ_KIND_PUBSUB: return SHMQ_FLAG_SLEEPER | SHMQ_FLAG_LOSSY;
	}
	return SHMQ_FLAG_SLEEPER;
}

/* Decode validates the header at the start of mem, a mapping of size bytes
 * (the file size), into *h. It mirrors layout.Decode, check for check and
 * in the same order, so both report the same error for a bad header. Each
 * field is loaded once. The state word is loaded with acquire semantics
 * first, so that a StateReady reading orders the other reads after the
 * creator's writes. */
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
	h->waiters = shmq__ld64(mem, SHMQ_OFF_TAB_WAITERS);
	h->waiter_sets = shmq__ld32(mem, SHMQ_OFF_TAB_WAITER_SETS);

	int err = SHMQ_ECORRUPT;
	/* Flags are must-understand; as layout.Decode, FlagSleeperBit is known
	 * for every kind, FlagLocked for MPMC (the MPMC calls then refuse it
	 * with SHMQ_ENOTIMPL) and FlagLossy for pub/sub; anything else is an
	 * unsupported version. */
	if ((h->flags & ~shmq__kind_flags(h->kind)) != 0) {
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
	uint32_t sets = shmq__kind_waiter_sets(h->kind);
	if (sets != 0 && h->waiter_sets != sets)
		goto bad;
	struct shmq__region rs[8] = {
		{ 0, h->header_size },
		{ h->producer, SHMQ_LINE_SIZE },
		{ h->consumer, SHMQ_LINE_SIZE },
		{ h->producer_wake, SHMQ_LINE_SIZE },
		{ h->consumer_wake, SHMQ_LINE_SIZE },
		{ h->waiters, (uint64_t)h->waiter_sets * SHMQ_LINE_SIZE },
		{ h->registry, (uint64_t)h->registry_count * SHMQ_LINE_SIZE },
		{ h->data, h->data_size },
	};
	if ((err = shmq__check_regions(rs, 8, size)) != 0)
		goto bad;
	switch (h->kind) {
	case SHMQ_KIND_SPSC:
		err = shmq__validate_spsc(h);
		break;
	case SHMQ_KIND_MPMC:
		err = shmq__validate_mpmc(h);
		break;
	case SHMQ_KIND_PUBSUB:
		err = shmq__validate_pubsub(h);
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

struct shmq__open_list;

typedef struct shmq_segment {
	/* The description the mapping was made from. It never holds a lock,
	 * so it may be passed to a child (inherited, or over a Unix socket) to
	 * share a memfd segment; the child opens it with shmq_open_fd. */
	int fd;
	/* A description private to this process, through which every OFD lock
	 * is taken: opened from /proc/self/fd/<fd>, close-on-exec, never
	 * handed out. -1 until needed again after a fork. */
	int lock_fd;
	pid_t pid;      /* the process lock_fd belongs to */
	uint32_t epoch; /* changes when a forked child takes the segment over */
	unsigned char *mem; /* the whole mapping */
	uint64_t size;
	shmq_header hdr;
	/* Registry entries held through lock_fd: F_OFD_GETLK does not report
	 * the caller's own locks, so liveness of those is read here. */
	uint64_t held[SHMQ_WAITER_SET_WORDS];
	/* Open segments of this translation unit, for the fork handler. */
	struct shmq__open_list *list;
	struct shmq_segment *prev, *next;
} shmq_segment;

typedef struct shmq_open_options {
	int64_t ready_timeout_ns; /* 0: 5 s, as the Go default */
	int allow_other_owner;    /* map a segment owned by another uid */
} shmq_open_options;

static inline int shmq_valid_shm_name(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > SHMQ_MAX_NAME_LEN || name[0] == '.' || name[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* A new open file description of the file open at fd (O_NONBLOCK: a FIFO
 * handed over as a segment must not block the open; it is refused as not a
 * regular file right after). */
static inline int shmq__reopen(int fd)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	return open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
}

/* The segments this translation unit has open, so that a forked child can
 * close its copies of their lock descriptions (the fork handler below).
 * Guarded by a spin lock that the handler holds across fork(). */
struct shmq__open_list {
	atomic_int lock;
	atomic_int handler; /* the fork handler is registered */
	shmq_segment *head;
};

static inline struct shmq__open_list *shmq__open_segments(void)
{
	static struct shmq__open_list list;
	return &list;
}

static inline void shmq__list_lock(struct shmq__open_list *l)
{
	while (atomic_exchange_explicit(&l->lock, 1, memory_order_acquire))
		;
}

static inline void shmq__list_unlock(struct shmq__open_list *l)
{
	atomic_store_explicit(&l->lock, 0, memory_order_release);
}

/* The child's side of a fork, for one segment: the lock description is the
 * parent's (closing the child's copy is what lets the kernel drop the
 * parent's locks when the parent dies), and so are the entries it holds
 * and every handle attached through it (the epoch changes). Only
 * async-signal-safe calls: it runs in the fork handler. */
static inline void shmq__forget_parent(shmq_segment *s)
{
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	s->lock_fd = -1;
	s->epoch++;
	memset(s->held, 0, sizeof s->held);
	s->pid = getpid();
}

#ifndef SHMQ_NO_ATFORK
static inline void shmq__atfork_prepare(void) { shmq__list_lock(shmq__open_segments()); }
static inline void shmq__atfork_parent(void) { shmq__list_unlock(shmq__open_segments()); }
static inline void shmq__atfork_child(void)
{
	struct shmq__open_list *l = shmq__open_segments();
	for (shmq_segment *s = l->head; s; s = s->next)
		shmq__forget_parent(s);
	shmq__list_unlock(l);
}
#endif

static inline void shmq__list_add(shmq_segment *s)
{
	struct shmq__open_list *l = shmq__open_segments();
#ifndef SHMQ_NO_ATFORK
	if (!atomic_exchange(&l->handler, 1))
		pthread_atfork(shmq__atfork_prepare, shmq__atfork_parent, shmq__atfork_child);
#endif
	shmq__list_lock(l);
	s->list = l;
	s->prev = NULL;
	s->next = l->head;
	if (l->head)
		l->head->prev = s;
	l->head = s;
	shmq__list_unlock(l);
}

static inline void shmq__list_remove(shmq_segment *s)
{
	struct shmq__open_list *l = s->list;
	if (!l)
		return;
	shmq__list_lock(l);
	if (s->prev)
		s->prev->next = s->next;
	else
		l->head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	shmq__list_unlock(l);
	s->list = NULL;
	s->prev = s->next = NULL;
}

/* Notices a fork that the fork handler did not see (SHMQ_NO_ATFORK, or a
 * raw clone) by the pid: a system call, so only the calls that take or
 * test locks, wait, or close make it. */
static inline void shmq__notice_fork(shmq_segment *s)
{
	if (s->pid != getpid())
		shmq__forget_parent(s);
}

/* The lock description of s for this process. In a forked child whose fork
 * handler did not run (SHMQ_NO_ATFORK, or a raw clone), the inherited one
 * is closed here; then a new private one is opened. Returns the descriptor
 * or SHMQ_ESYS. */
static inline int shmq__lock_fd(shmq_segment *s)
{
	shmq__notice_fork(s);
	if (s->lock_fd < 0 && (s->lock_fd = shmq__reopen(s->fd)) < 0) {
		s->lock_fd = -1;
		return SHMQ_ESYS;
	}
	return s->lock_fd;
}

/* A segment that is not open: shmq_close does nothing to it. */
static inline void shmq__init(shmq_segment *s)
{
	memset(s, 0, sizeof *s);
	s->fd = s->lock_fd = -1;
}

/* One try of the Go tryMap: SHMQ_ENOTREADY while the creator works (our
 * magic, state not yet published); SHMQ_ENOTSEGMENT for anything that does
 * not start with the magic, since a creator names a file only once it is
 * published. */
static inline int shmq__try_map(shmq_segment *s)
{
	struct stat st;
	if (fstat(s->fd, &st) != 0)
		return SHMQ_ESYS;
	uint64_t size = (uint64_t)st.st_size;
	unsigned char mb[8] = { 0 };
	if (size >= 8 && pread(s->fd, mb, sizeof mb, SHMQ_OFF_MAGIC) != (ssize_t)sizeof mb)
		return SHMQ_ESYS;
	uint64_t magic = 0;
	for (int i = 7; i >= 0; i--)
		magic = magic << 8 | mb[i];
	if (size < SHMQ_PAGE_SIZE || size % SHMQ_PAGE_SIZE != 0 || magic != SHMQ_MAGIC)
		return SHMQ_ENOTSEGMENT;
	void *m = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
	if (m == MAP_FAILED)
		return SHMQ_ESYS;
	unsigned char *mem = (unsigned char *)m;
	if (atomic_load_explicit(shmq__u32(mem, SHMQ_OFF_STATE), memory_order_acquire) == SHMQ_STATE_INIT) {
		munmap(m, (size_t)size);
		return SHMQ_ENOTREADY;
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

/* Maps the segment open at fd (which s takes over), waiting for ready.
 * kind 0 accepts any kind (for tools that inspect segments). */
static inline int shmq__open_fd_owned(int fd, uint32_t kind, const shmq_open_options *opts, shmq_segment *s)
{
	shmq__init(s);
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
	s->pid = getpid();
	if ((s->lock_fd = shmq__reopen(fd)) < 0) {
		err = SHMQ_ESYS;
		goto fail;
	}
	int64_t timeout = (opts && opts->ready_timeout_ns > 0) ? opts->ready_timeout_ns : INT64_C(5000000000);
	int64_t deadline = shmq__now_ns(CLOCK_MONOTONIC) + timeout;
	int64_t backoff = 50000;
	for (;;) {
		err = shmq__try_map(s);
		if (err != SHMQ_ENOTREADY)
			break;
		/* Our magic, not yet published: the creator is working (it holds
		 * byte 0) or died half way. It unlocks byte 0 only after
		 * publishing, so one more try at once after seeing it free tells
		 * which. */
		int held = shmq_ofd_held(s->lock_fd, SHMQ_INIT_LOCK_BYTE);
		if (held < 0) {
			err = held;
			break;
		}
		if (held == 0) {
			if ((err = shmq__try_map(s)) == SHMQ_ENOTREADY)
				err = SHMQ_EABANDONED;
			break;
		}
		if (shmq__now_ns(CLOCK_MONOTONIC) >= deadline)
			break;
		shmq__sleep_ns(backoff);
		backoff = backoff * 2 > 10000000 ? 10000000 : backoff * 2;
	}
	if (err != 0)
		goto fail;
	if (kind != 0 && s->hdr.kind != kind) {
		munmap(s->mem, (size_t)s->size);
		err = SHMQ_EKIND;
		goto fail;
	}
	shmq__list_add(s);
	return 0;
fail:;
	int saved = errno;
	close(fd);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	shmq__init(s);
	errno = saved;
	return err;
}

/* open(2) for a segment file: refuses symbolic links, and does not block
 * on a FIFO (refused right after as not a regular file). A directory is not
 * a segment. */
static inline int shmq__open_file(const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return errno == EISDIR ? SHMQ_ENOTSEGMENT : SHMQ_ESYS;
	return fd;
}

/* A segment that is not open: shmq_close does nothing to it. */
/* Opens /dev/shm/NAME (a leading slash is ignored). */
static inline int shmq_open_name(const char *name, uint32_t kind, const shmq_open_options *opts, shmq_segment *s)
{
	char path[64];
	shmq__init(s);
	if (name[0] == '/')
		name++;
	if (!shmq_valid_shm_name(name))
		return SHMQ_EBADNAME;
	snprintf(path, sizeof path, "/dev/shm/%s", name);
	int fd = shmq__open_file(path);
	if (fd < 0)
		return fd;
	return shmq__open_fd_owned(fd, kind, opts, s);
}

/* Opens a segment file by path. */
static inline int shmq_open_path(const char *path, uint32_t kind, const shmq_open_options *opts, shmq_segment *s)
{
	shmq__init(s);
	int fd = shmq__open_file(path);
	if (fd < 0)
		return fd;
	return shmq__open_fd_owned(fd, kind, opts, s);
}

/* Opens the segment behind an inherited descriptor (e.g. a memfd). It
 * reopens /proc/self/fd/N, so the caller keeps fd (and may close it), and
 * takes its locks through yet another description of its own: OFD locks
 * belong to the description, and fd's is shared with whoever passed it. */
static inline int shmq_open_fd(int fd, uint32_t kind, const shmq_open_options *opts, shmq_segment *s)
{
	shmq__init(s);
	if (fd < 0)
		return SHMQ_EBADNAME;
	int own = shmq__reopen(fd);
	if (own < 0)
		return errno == EISDIR ? SHMQ_ENOTSEGMENT : SHMQ_ESYS;
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

/* Unmaps and closes, which releases every OFD lock taken through s. In a
 * forked child it releases the child's copies only. */
static inline void shmq_close(shmq_segment *s)
{
	shmq__list_remove(s);
	if (s->mem)
		munmap(s->mem, (size_t)s->size);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	if (s->fd >= 0)
		close(s->fd);
	s->mem = NULL;
	s->fd = s->lock_fd = -1;
}

/* ---------------------------------------------------------------------- */
/* Registry                                                                */
/* ---------------------------------------------------------------------- */

typedef struct shmq_entry {
	shmq_segment *seg;
	int index;
	uint32_t epoch; /* seg->epoch at attach: another value means a fork */
	shmq_atomic_u32 *state;
	shmq_atomic_u64 *messages, *bytes, *stalls, *waits, *wakes;
	/* private copies of the single-writer counters */
	uint64_t n_messages, n_bytes, n_stalls, n_waits, n_wakes;
	int held;
} shmq_entry;

static inline int shmq__held(const shmq_segment *s, int i) { return (s->held[i / 64] >> (i % 64)) & 1; }

/* 0 if e may be used by this process, SHMQ_EFORKED if it was attached by
 * the parent before a fork. One compare: the fork handler (or
 * shmq__notice_fork) changed the segment's epoch in the child. */
static inline int shmq__entry_mine(const shmq_entry *e)
{
	return e->epoch == e->seg->epoch ? 0 : SHMQ_EFORKED;
}

/* clearWaiters: removes entry i from every waiter set. The caller holds
 * entry i's lock: only a holder of that lock writes the entry's bits, which
 * is what makes the removal of a dead waiter's registration exact. */
static inline void shmq__clear_waiters(shmq_segment *s, int i)
{
	uint64_t bit = UINT64_C(1) << (i % 64);
	for (uint32_t k = 0; k < s->hdr.waiter_sets; k++) {
		shmq_atomic_u64 *w = shmq__u64(s->mem, shmq_header_waiter_set(&s->hdr, (int)k) + 8 * (uint64_t)(i / 64));
		atomic_fetch_and_explicit(w, ~bit, memory_order_seq_cst);
	}
}

/* lockEntry: the lock of entry i, tried a few times if patient, because a
 * process that found a dead holder's entry holds its lock for a few system
 * calls while it clears the dead waiter's registrations. */
static inline int shmq__lock_entry(int fd, int i, int patient)
{
	int err = 0;
	for (int try = 0; try < (patient ? 4 : 1); try++) {
		if (try > 0)
			shmq__sleep_ns(try * INT64_C(100000));
		err = shmq_ofd_trylock(fd, SHMQ_ENTRY_LOCK_BYTE(i));
		if (err != SHMQ_EROLETAKEN)
			return err;
	}
	return err;
}

static inline int shmq__attach(shmq_segment *s, int i, uint32_t role, shmq_entry *e, int patient)
{
	memset(e, 0, sizeof *e);
	if (i < 0 || (uint32_t)i >= s->hdr.registry_count)
		return SHMQ_EINVAL;
	int fd = shmq__lock_fd(s);
	if (fd < 0)
		return fd;
	if (shmq__held(s, i))
		return SHMQ_EROLETAKEN; /* held through this very description */
	int err = shmq__lock_entry(fd, i, patient);
	if (err != 0)
		return err;
	s->held[i / 64] |= UINT64_C(1) << (i % 64);
	shmq__clear_waiters(s, i);
	uint64_t base = shmq_header_entry(&s->hdr, i);
	unsigned char *m = s->mem;
	e->seg = s;
	e->index = i;
	e->epoch = s->epoch;
	e->state = shmq__u32(m, base + SHMQ_ENTRY_STATE);
	e->messages = shmq__u64(m, base + SHMQ_ENTRY_MESSAGES);
	e->bytes = shmq__u64(m, base + SHMQ_ENTRY_BYTES);
	e->stalls = shmq__u64(m, base + SHMQ_ENTRY_STALLS);
	e->waits = shmq__u64(m, base + SHMQ_ENTRY_WAITS);
	e->wakes = shmq__u64(m, base + SHMQ_ENTRY_WAKES);
	shmq_atomic_u64 *counters[] = { e->messages, e->bytes, e->stalls, e->waits, e->wakes };
	for (size_t k = 0; k < sizeof counters / sizeof counters[0]; k++)
		atomic_store_explicit(counters[k], 0, memory_order_release);
	atomic_store_explicit(shmq__u32(m, base + SHMQ_ENTRY_ROLE), role, memory_order_release);
	atomic_store_explicit(shmq__u32(m, base + SHMQ_ENTRY_PID), (uint32_t)getpid(), memory_order_release);
	shmq_atomic_u32 *gen = shmq__u32(m, base + SHMQ_ENTRY_GEN);
	atomic_store_explicit(gen, atomic_load_explicit(gen, memory_order_relaxed) + 1, memory_order_release);
	atomic_store_explicit(shmq__u64(m, base + SHMQ_ENTRY_ATTACH_NANO), (uint64_t)shmq__now_ns(CLOCK_REALTIME),
			      memory_order_release);
	atomic_store_explicit(e->state, SHMQ_ENTRY_ATTACHED, memory_order_seq_cst);
	e->held = 1;
	return 0;
}

/* Attach takes registry entry i for role (LAYOUT.md section 7). A dead
 * holder's entry is taken over: its waiter-set bits are cleared and its
 * counters start again at zero. */
static inline int shmq_attach(shmq_segment *s, int i, uint32_t role, shmq_entry *e)
{
	return shmq__attach(s, i, role, e, 1);
}

/* AttachAny takes the first entry from first on whose lock is free:
 * one quick pass, then a patient one, since an entry whose lock a process
 * repairing it holds for a moment is worth waiting for only if no other
 * is free. SHMQ_EREGISTRYFULL if live processes hold them all. */
static inline int shmq_attach_any(shmq_segment *s, int first, uint32_t role, shmq_entry *e)
{
	for (int patient = 0; patient < 2; patient++)
		for (int i = first < 0 ? 0 : first; (uint32_t)i < s->hdr.registry_count; i++) {
			int err = shmq__attach(s, i, role, e, patient);
			if (err != SHMQ_EROLETAKEN)
				return err;
		}
	memset(e, 0, sizeof *e);
	return SHMQ_EREGISTRYFULL;
}

/* Detach clears the entry's waiter-set bits, marks it cleanly closed and
 * releases its lock. For an entry the parent attached before this process
 * forked from it, it only forgets the entry (which stays the parent's). */
static inline int shmq_detach(shmq_entry *e)
{
	if (!e->held)
		return 0;
	e->held = 0;
	shmq_segment *s = e->seg;
	shmq__notice_fork(s);
	if (shmq__entry_mine(e) != 0)
		return 0;
	shmq__clear_waiters(s, e->index);
	atomic_store_explicit(e->state, SHMQ_ENTRY_DETACHED, memory_order_seq_cst);
	s->held[e->index / 64] &= ~(UINT64_C(1) << (e->index % 64));
	return shmq_ofd_unlock(s->lock_fd, SHMQ_ENTRY_LOCK_BYTE(e->index));
}

/* 1 if a live process holds entry i (this one through s included), 0 if
 * not, SHMQ_ESYS on error. i must be below the registry count. */
static inline int shmq_entry_alive(shmq_segment *s, int i)
{
	int fd = shmq__lock_fd(s);
	if (fd < 0)
		return fd;
	if (shmq__held(s, i))
		return 1;
	return shmq_ofd_held(fd, SHMQ_ENTRY_LOCK_BYTE(i));
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

/* WithDeadEntry runs fn(s, i, arg) while it holds the lock of entry i, if
 * no live process (this one included) holds the entry: how a process
 * repairs, exactly once and without racing a new holder, what a dead
 * holder left. Returns 1 if fn ran, 0 if the entry is held, SHMQ_ESYS on
 * error. */
static inline int shmq_with_dead_entry(shmq_segment *s, int i, void (*fn)(shmq_segment *, int, void *), void *arg)
{
	if (i < 0 || (uint32_t)i >= s->hdr.registry_count)
		return 0;
	int fd = shmq__lock_fd(s);
	if (fd < 0)
		return fd;
	if (shmq__held(s, i))
		return 0;
	int err = shmq_ofd_trylock(fd, SHMQ_ENTRY_LOCK_BYTE(i));
	if (err == SHMQ_EROLETAKEN)
		return 0;
	if (err != 0)
		return err;
	fn(s, i, arg);
	return shmq_ofd_unlock(fd, SHMQ_ENTRY_LOCK_BYTE(i)) == 0 ? 1 : SHMQ_ESYS;
}

static inline void shmq__clear_waiters_fn(shmq_segment *s, int i, void *arg)
{
	(void)arg;
	shmq__clear_waiters(s, i);
}

/* ReapWaiter: removes entry i from every waiter set if no live process
 * holds the entry, taking its lock meanwhile, so it never touches the
 * registration of a live holder (nor of one that attaches meanwhile).
 * Returns 1 if it did, 0 if the entry is held, SHMQ_ESYS on error. */
static inline int shmq_reap_waiter(shmq_segment *s, int i)
{
	return shmq_with_dead_entry(s, i, shmq__clear_waiters_fn, NULL);
}

/* ---------------------------------------------------------------------- */
/* Wake protocol (LAYOUT.md section 6)                                     */
/* ---------------------------------------------------------------------- */

/* Two variants, chosen by the segment's SHMQ_FLAG_SLEEPER. Both: a waiter
 * registers (atomic OR of its bit into the waiter set) and fences, then
 * loops: read the sequence word (shmq__arm), re-check its condition, park
 * on the value read. A publisher, after the store that publishes, loads
 * the set and stops if it is empty. Without the flag it then bumps the
 * sequence word and wakes as many as are registered. With it, bit 0 of the
 * word is the sleeper bit: the waiter sets it (CAS) before its re-check and
 * parks on the value with the bit set, and a publisher wakes only if it
 * finds the bit set and its CAS(s, s + 1) (clearing it, advancing the
 * epoch) succeeds; a failed CAS means another publisher woke the sleepers
 * after our publication. So registered waiters that are spinning or
 * re-checking cost publishers no system call. All seq_cst. */
typedef struct shmq_wake {
	shmq_atomic_u32 *seq;  /* the futex word */
	shmq_atomic_u64 *set;  /* the waiter set's words */
	int nwords;            /* the words the registry uses */
	int sleeper;           /* the segment has SHMQ_FLAG_SLEEPER */
} shmq_wake;

static inline shmq_wake shmq__wake_at(shmq_segment *s, uint64_t line, int set)
{
	shmq_wake w = { shmq__u32(s->mem, line + SHMQ_WAKE_SEQ),
			shmq__u64(s->mem, shmq_header_waiter_set(&s->hdr, set)),
			(int)SHMQ_WAITER_SET_LEN(s->hdr.registry_count),
			(s->hdr.flags & SHMQ_FLAG_SLEEPER) != 0 };
	return w;
}

/* Whether any entry is registered in w's waiter set. */
static inline int shmq__waiting(shmq_wake *w)
{
	for (int k = 0; k < w->nwords; k++)
		if (atomic_load_explicit(&w->set[k], memory_order_seq_cst) != 0)
			return 1;
	return 0;
}

/* The publisher's half, after the store that publishes: if any entry is
 * registered, bump the sequence word (with the sleeper bit: only if the bit
 * is set and the CAS that clears it succeeds) and wake as many as are
 * registered. Returns that number (0 without a system call when it did not
 * wake). The seq_cst fence pairs with the waiter's registration (a seq_cst
 * read-modify-write) and fence: either we see its bit or it sees our
 * store; likewise a sleeper bit we find clear is set later by a waiter
 * whose re-check follows and sees our store. */
static inline int shmq__wake_if_waiting(shmq_wake *w)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (!shmq__waiting(w))
		return 0;
	if (w->sleeper) {
		uint32_t s = atomic_load_explicit(w->seq, memory_order_seq_cst);
		if ((s & 1u) == 0 ||
		    !atomic_compare_exchange_strong_explicit(w->seq, &s, s + 1, memory_order_seq_cst,
							     memory_order_seq_cst))
			return 0;
	} else {
		atomic_fetch_add_explicit(w->seq, 1, memory_order_seq_cst);
	}
	int n = 0;
	for (int k = 0; k < w->nwords; k++)
		n += shmq__popcount64(atomic_load_explicit(&w->set[k], memory_order_seq_cst));
	if (n > 0)
		shmq__futex_wake(w->seq, n);
	return n;
}

/* A publishing handle's wake: shmq__wake_if_waiting, counted in the
 * handle's Wakes (own may be NULL after a detach), and, while it finds
 * waiters registered, a check once per SHMQ_SWEEP_PERIOD_NS that they are
 * alive: a waiter killed while parked leaves its bit, and clearing it is
 * what brings a stream back to one load per publish. The check runs even
 * when no wake was needed: with the sleeper bit, a dead waiter is woken at
 * most once (the wake clears the bit), so waiting for wakes would leave its
 * registration for ever. *last_sweep is the handle's (CLOCK_MONOTONIC ns,
 * 0: never). */
static inline void shmq__publish_wake(shmq_segment *s, shmq_wake *w, shmq_entry *own, int64_t *last_sweep)
{
	int n = shmq__wake_if_waiting(w);
	if (n == 0 && (!w->sleeper || !shmq__waiting(w)))
		return; /* no wake, and (with the bit) nobody registered either */
	if (n > 0 && own) {
		own->n_wakes++;
		atomic_store_explicit(own->wakes, own->n_wakes, memory_order_release);
	}
	int64_t now = shmq__now_ns(CLOCK_MONOTONIC);
	if (*last_sweep != 0 && now - *last_sweep < SHMQ_SWEEP_PERIOD_NS)
		return;
	*last_sweep = now;
	for (int k = 0; k < w->nwords; k++)
		for (uint64_t v = atomic_load_explicit(&w->set[k], memory_order_seq_cst); v != 0; v &= v - 1) {
			int j = 0;
			while (!((v >> j) & 1))
				j++;
			shmq_reap_waiter(s, 64 * k + j);
		}
}

/* The waiter's registration: set (atomic OR) and clear (atomic AND-NOT)
 * the bit of its registry entry. */
static inline void shmq__register(shmq_wake *w, int me)
{
	atomic_fetch_or_explicit(&w->set[me / 64], UINT64_C(1) << (me % 64), memory_order_seq_cst);
	atomic_thread_fence(memory_order_seq_cst);
}

static inline void shmq__unregister(shmq_wake *w, int me)
{
	atomic_fetch_and_explicit(&w->set[me / 64], ~(UINT64_C(1) << (me % 64)), memory_order_seq_cst);
}

/* The waiter's read of the sequence word, before each re-check: the value
 * to park on. With the sleeper bit, it first sets bit 0 (CAS, retried from
 * a fresh load when it fails) and returns the value with the bit set. */
static inline uint32_t shmq__arm(shmq_wake *w)
{
	uint32_t s = atomic_load_explicit(w->seq, memory_order_seq_cst);
	if (!w->sleeper)
		return s;
	while ((s & 1u) == 0)
		if (atomic_compare_exchange_strong_explicit(w->seq, &s, s | 1u, memory_order_seq_cst,
							    memory_order_seq_cst))
			return s | 1u;
	return s;
}

/* Counts one blocking wait in which the holder parked (EntryWaits). */
static inline void shmq__count_wait(shmq_entry *own)
{
	own->n_waits++;
	atomic_store_explicit(own->waits, own->n_waits, memory_order_release);
}

static inline int64_t shmq__deadline(int64_t timeout_ns)
{
	return timeout_ns < 0 ? -1 : shmq__now_ns(CLOCK_MONOTONIC) + timeout_ns;
}

/* The waiter's side of the protocol on wake line w, as registry entry own:
 * spins SHMQ_SPIN_CHECKS checks of ready(arg), then registers and parks on
 * the futex (shmq__arm before each re-check), at most SHMQ_PARK_MAX_NS at
 * a time (a Go peer with a non-futex notifier changes the sequence word
 * without FUTEX_WAKE), until
 * ready(arg) or the deadline (CLOCK_MONOTONIC ns, < 0: none). Every
 * period_ns it calls check(arg) if not NULL, since a dead peer wakes no
 * one: 0 goes on, anything else ends the wait with that value. Returns 0,
 * SHMQ_ETIMEDOUT, SHMQ_EFORKED or check's value. Counts one wait in own's
 * Waits if it parked. */
static inline int shmq__wait(shmq_wake *w, shmq_entry *own, int64_t deadline_ns, int64_t period_ns,
			     int (*ready)(void *), int (*check)(void *), void *arg)
{
	for (int i = 0; i < SHMQ_SPIN_CHECKS; i++)
		if (ready(arg))
			return 0;
	shmq__notice_fork(own->seg);
	if (shmq__entry_mine(own) != 0)
		return SHMQ_EFORKED;
	shmq__register(w, own->index);
	int err = 0, parked = 0;
	int64_t last_check = shmq__now_ns(CLOCK_MONOTONIC);
	for (;;) {
		uint32_t seq = shmq__arm(w);
		if (ready(arg))
			break;
		int64_t now = shmq__now_ns(CLOCK_MONOTONIC);
		if (deadline_ns >= 0 && now >= deadline_ns) {
			err = SHMQ_ETIMEDOUT;
			break;
		}
		if (check && now - last_check >= period_ns) {
			last_check = now;
			if ((err = check(arg)) != 0)
				break;
			continue; /* check may have changed what ready sees */
		}
		int64_t park = SHMQ_PARK_MAX_NS;
		if (deadline_ns >= 0 && deadline_ns - now < park)
			park = deadline_ns - now;
		parked = 1;
		shmq__futex_wait(w->seq, seq, park);
	}
	shmq__unregister(w, own->index);
	if (parked)
		shmq__count_wait(own);
	return err;
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

/* The queue kinds, outside the guard so that including one of them first
 * (which includes this file) still gets the other. */
#include "shmq_spsc.h"
#include "shmq_mpmc.h"
#include "shmq_pubsub.h"
