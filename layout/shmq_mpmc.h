/*
 * shmq_mpmc.h - MPMC queues of shmq layout version 2 (LAYOUT.md section
 * 14; mirrors mpmc/producer.go and mpmc/consumer.go): the lock-free slot
 * protocol, attaching any free registry entry, with the Go code's
 * validation, bounded retry loops and crash recovery (a dead producer's
 * claimed slot becomes a tombstone that consumers pass, the message in a
 * dead consumer's taken slot is requeued, a reused entry's stale claims are
 * repaired on attach). Locked mode (FlagLocked) is refused with
 * SHMQ_ENOTIMPL. Included by shmq.h.
 */
#ifndef SHMQ_MPMC_H
#define SHMQ_MPMC_H

#include "shmq.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The MPMC code's bounds (mpmc/queue.go, mpmc/wait.go): retry loops give up
 * with SHMQ_ECORRUPT after this many attempts; a claimed slot word seen
 * unchanged this long is checked against the registry, at most once per
 * period; a waiter re-runs its operation at least this often. */
#define SHMQ_MPMC_MAX_ATTEMPTS (1 << 20)
#define SHMQ_MPMC_SUSPECT_NS   INT64_C(2000000)
#define SHMQ_MPMC_RECHECK_NS   INT64_C(5000000)

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
	int64_t last_sweep;
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
	uint64_t tombstones;  /* tombstones passed: slots of producers that closed or died before committing */
	uint64_t redelivered; /* requeued messages taken */
	struct shmq__suspect stuck;
	uint64_t last_pos, last_word;
	int64_t last_sweep;
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
	if ((s->hdr.flags & SHMQ_FLAG_LOCKED) != 0)
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
	q->producer_wake = shmq__wake_at(s, s->hdr.producer_wake, SHMQ_WAITER_SET_PRODUCERS);
	q->consumer_wake = shmq__wake_at(s, s->hdr.consumer_wake, SHMQ_WAITER_SET_CONSUMERS);
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
 * writing becomes a tombstone F(p, T), by one CAS on the word seen that
 * writes nothing into the slot (if a consumer skipped it meanwhile and the
 * slot moved on, the CAS fails and a later message there is left alone),
 * and a message it was reading is orphaned, for the producer that next
 * reaches the slot to requeue. */
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
			if (shmq__cas(seq, w, shmq_seq_word(pos, SHMQ_SLOT_FULL, SHMQ_SEQ_OWNER_TOMB)))
				shmq__wake_if_waiting(&q->consumer_wake);
		} else if (st == SHMQ_SLOT_READING) {
			uint64_t cur = shmq__ld(q->deq);
			uint64_t pos = shmq__full_position(w, cur);
			if ((pos & q->mask) != i || cur - pos > q->cap + 1)
				return SHMQ_ECORRUPT;
			shmq__cas(q->deq, pos, pos + 1);
			if (shmq__cas(seq, w, shmq_seq_word(pos, SHMQ_SLOT_READING, SHMQ_SEQ_OWNER_ORPHAN)))
				shmq__wake_if_waiting(&q->producer_wake); /* a producer may wait for this slot */
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
 * non-futex notifier changes the sequence word without FUTEX_WAKE. */
static inline int shmq__mpmc_wait(shmq_wake *w, shmq_entry *own, int64_t deadline_ns, int (*ready)(void *),
				  void *arg)
{
	for (int i = 0; i < SHMQ_SPIN_CHECKS; i++)
		if (ready(arg))
			return 0;
	shmq__notice_fork(own->seg);
	if (shmq__entry_mine(own) != 0)
		return SHMQ_EFORKED;
	shmq__register(w, own->index);
	int err = 0, parked = 0;
	int64_t start = shmq__now_ns(CLOCK_MONOTONIC);
	for (;;) {
		uint32_t seq = shmq__arm(w); /* sleeper bit set before the re-check */
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
	shmq__unregister(w, own->index);
	if (parked)
		shmq__count_wait(own);
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

/* checkOwner: the owner of a W or R word is a registry index or Orphan
 * (the tombstone owner appears only in F words). */
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
	uint32_t n = atomic_load_explicit(shmq__u32(shmq__mpmc_slot(q, pos), SHMQ_SLOT_LENGTH), memory_order_relaxed);
	if (n > q->max_message) {
		/* Not a message: a tombstone at pos instead, by one CAS. */
		if (!shmq__cas(seq, w, shmq_seq_word(pos, SHMQ_SLOT_FULL, SHMQ_SEQ_OWNER_TOMB)))
			return 0;
		shmq__cas(q->enq, pos, pos + 1);
		shmq__publish_wake(q->seg, &q->consumer_wake, &p->e, &p->last_sweep);
		return SHMQ_ECORRUPT;
	}
	uint64_t orphan = shmq_seq_word(pos, SHMQ_SLOT_WRITING, SHMQ_SEQ_OWNER_ORPHAN);
	if (!shmq__cas(seq, w, orphan))
		return 0;
	if (n != 0)
		p->requeued++;
	shmq__cas(q->enq, pos, pos + 1);
	if (shmq__cas(seq, orphan, shmq_seq_word(pos, SHMQ_SLOT_FULL, SHMQ_SEQ_OWNER_ORPHAN)))
		shmq__publish_wake(q->seg, &q->consumer_wake, &p->e, &p->last_sweep);
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
		} else if (d == SHMQ_SLOT_FULL - lap && shmq_seq_owner(w) == SHMQ_SEQ_OWNER_TOMB) {
			/* The previous lap's tombstone holds no message: the slot is
			 * free. Move the dequeue cursor past it first (consumers at the
			 * old cursor must find it moved, not a slot a lap ahead), then
			 * claim straight from it. */
			uint64_t prev = pos - q->cap;
			shmq__cas(q->deq, prev, prev + 1);
			if (shmq__cas(seq, w, shmq_seq_word(pos, SHMQ_SLOT_WRITING, p->me))) {
				shmq__cas(q->enq, pos, pos + 1);
				*out = pos;
				return 0;
			}
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
 * SHMQ_EFULL, SHMQ_EMSGSIZE, SHMQ_ECORRUPT, SHMQ_EFORKED or SHMQ_ESYS. */
static inline int shmq_mpmc_reserve(shmq_mpmc_producer *p, size_t n, void **out)
{
	if (p->closed)
		return SHMQ_ECLOSED;
	if (shmq__entry_mine(&p->e) != 0)
		return SHMQ_EFORKED;
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

/* tombstone: W(pos, me) -> F(pos, T) by one CAS, writing nothing into the
 * slot. A failed CAS means another process rewrote the claim; the slot is
 * then not ours to change. */
static inline void shmq__mpmc_tombstone(shmq_mpmc_producer *p, uint64_t pos)
{
	shmq__cas(shmq__mpmc_seq(&p->q, pos), shmq_seq_word(pos, SHMQ_SLOT_WRITING, p->me),
		  shmq_seq_word(pos, SHMQ_SLOT_FULL, SHMQ_SEQ_OWNER_TOMB));
}

/* Commit publishes the reserved slot and wakes parked consumers. */
static inline int shmq_mpmc_commit(shmq_mpmc_producer *p)
{
	if (!p->pending)
		return 0;
	if (shmq__entry_mine(&p->e) != 0)
		return SHMQ_EFORKED;
	p->pending = 0;
	int err = shmq__mpmc_publish(p, p->pend_pos);
	if (err == 0) {
		p->e.n_messages++;
		p->e.n_bytes += p->pend_len;
		atomic_store_explicit(p->e.messages, p->e.n_messages, memory_order_release);
		atomic_store_explicit(p->e.bytes, p->e.n_bytes, memory_order_release);
	}
	shmq__publish_wake(p->q.seg, &p->q.consumer_wake, &p->e, &p->last_sweep);
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

/* Waits, after a claim found the queue full, until the slot word or the
 * enqueue cursor that stopped it changes, or a recheck period passes. */
static inline int shmq__mpmc_wait_room(shmq_mpmc_producer *p, int64_t deadline)
{
	struct shmq__mpmc_moved m = { p->q.enq, shmq__mpmc_seq(&p->q, p->last_pos), p->last_pos, p->last_word };
	return shmq__mpmc_wait(&p->q.producer_wake, &p->e, deadline, shmq__mpmc_moved, &m);
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
		if ((err = shmq__mpmc_wait_room(p, deadline)) != 0)
			return err;
	}
}

/* Reserve that waits while the queue is full, like send. */
static inline int shmq_mpmc_reserve_wait(shmq_mpmc_producer *p, size_t n, void **out, int64_t timeout_ns)
{
	int64_t deadline = shmq__deadline(timeout_ns);
	for (;;) {
		int err = shmq_mpmc_reserve(p, n, out);
		if (err != SHMQ_EFULL)
			return err;
		if ((err = shmq__mpmc_wait_room(p, deadline)) != 0)
			return err;
	}
}

/* Close turns an uncommitted reservation into a tombstone (consumers pass
 * it), detaches, and wakes parked consumers. In a forked child, for a
 * handle the parent attached, it only forgets the handle. */
static inline int shmq_mpmc_producer_close(shmq_mpmc_producer *p)
{
	if (p->closed)
		return 0;
	p->closed = 1;
	shmq__notice_fork(p->q.seg);
	if (shmq__entry_mine(&p->e) != 0) {
		p->pending = 0;
		return shmq_detach(&p->e);
	}
	if (p->pending) {
		p->pending = 0;
		shmq__mpmc_tombstone(p, p->pend_pos);
	}
	int err = shmq_detach(&p->e);
	shmq__wake_if_waiting(&p->q.consumer_wake);
	return err;
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
		shmq__publish_wake(c->q.seg, &c->q.producer_wake, &c->e, &c->last_sweep);
	}
}

/* claim (mpmc/consumer.go): takes the next message, passing tombstones and
 * turning slots whose producer died writing them into tombstones. */
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
		if (d == SHMQ_SLOT_FULL && shmq_seq_owner(w) == SHMQ_SEQ_OWNER_TOMB) {
			/* A tombstone: pass it. The producer of the next lap claims
			 * the slot straight from it. */
			if (shmq__cas(q->deq, pos, pos + 1))
				c->tombstones++;
		} else if (d == SHMQ_SLOT_FULL) {
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
				c->tombstones++; /* a length-0 tombstone (version 1 style) */
			}
		} else if (d == SHMQ_SLOT_READING) {
			shmq__cas(q->deq, pos, pos + 1); /* help the taker's cursor along */
		} else if (d == SHMQ_SLOT_EMPTY || d == SHMQ_SLOT_READING - lap ||
			   (d == SHMQ_SLOT_FULL - lap && shmq_seq_owner(w) == SHMQ_SEQ_OWNER_TOMB)) {
			/* Nothing committed at pos yet (its slot may still hold the
			 * previous lap, being read, or its tombstone). */
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
			/* Turn the dead claim into a tombstone with one CAS on the word
			 * seen, writing nothing into the slot; the next round passes
			 * it. */
			shmq__cas(q->enq, pos, pos + 1);
			shmq__cas(seq, w, shmq_seq_word(pos, SHMQ_SLOT_FULL, SHMQ_SEQ_OWNER_TOMB));
			continue;
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
	if (shmq__entry_mine(&c->e) != 0)
		return SHMQ_EFORKED;
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
		if (err != SHMQ_EFORKED)
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
	if (shmq__entry_mine(&c->e) != 0)
		return SHMQ_EFORKED;
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
 * the message's length and keeps the message for the next call. A message
 * peeked and not released is released first, as in Go. */
static inline int shmq_mpmc_try_recv(shmq_mpmc_consumer *c, void *buf, size_t cap, size_t *len)
{
	if (c->held && !c->stashed) {
		int err = shmq_mpmc_release(c);
		if (err != 0)
			return err;
	}
	int err = shmq__mpmc_next(c);
	if (err != 0) {
		if (err != SHMQ_EFORKED)
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

/* Waits, after a take found nothing, until the slot word or the dequeue
 * cursor that stopped it changes, or a recheck period passes. */
static inline int shmq__mpmc_wait_data(shmq_mpmc_consumer *c, int64_t deadline)
{
	struct shmq__mpmc_moved m = { c->q.deq, shmq__mpmc_seq(&c->q, c->last_pos), c->last_pos, c->last_word };
	return shmq__mpmc_wait(&c->q.consumer_wake, &c->e, deadline, shmq__mpmc_moved, &m);
}

/* Peek that waits while the queue is empty, like recv. */
static inline int shmq_mpmc_peek_wait(shmq_mpmc_consumer *c, const void **msg, size_t *len, int64_t timeout_ns)
{
	int64_t deadline = shmq__deadline(timeout_ns);
	for (;;) {
		int err = shmq_mpmc_peek(c, msg, len);
		if (err != SHMQ_EEMPTY)
			return err;
		if ((err = shmq__mpmc_wait_data(c, deadline)) != 0)
			return err;
	}
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
		if ((err = shmq__mpmc_wait_data(c, deadline)) != 0)
			return err;
	}
}

/* Close releases a held message (it counts as consumed) and detaches. In a
 * forked child, for a handle the parent attached, it only forgets the
 * handle (the held message stays the parent's). */
static inline int shmq_mpmc_consumer_close(shmq_mpmc_consumer *c)
{
	if (c->closed)
		return 0;
	shmq__notice_fork(c->q.seg);
	if (shmq__entry_mine(&c->e) == 0)
		shmq_mpmc_release(c);
	c->held = c->stashed = 0;
	c->closed = 1;
	return shmq_detach(&c->e);
}

#ifdef __cplusplus
}
#endif

#endif /* SHMQ_MPMC_H */
