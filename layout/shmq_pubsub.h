/*
 * shmq_pubsub.h - publish/subscribe queues of shmq layout version 2
 * (LAYOUT.md section 18; mirrors pubsub/publisher.go, pubsub/room.go,
 * pubsub/subscriber.go and pubsub/read.go): one publisher writes records
 * into a byte ring, every subscriber reads every record at its own
 * position. Over the segment, registry and wake protocol of shmq.h, which
 * includes this file; the layout's constants (SHMQ_PUBSUB_*, SHMQ_PUB_*,
 * SHMQ_ENTRY_SUB_*) and the header validation are there too.
 *
 *   - the publisher: shmq_pubsub_publisher_open (registry entry 0; takes
 *     over from a dead one, continuing its sequence numbers),
 *     reserve/commit, try_send, send, reserve_wait, publisher_close. In a
 *     back-pressure queue it never writes past its limit, which it stores
 *     and re-checks against the subscribers' positions (18.5), waits for the
 *     slowest live subscriber and drops dead ones; in a lossy queue it moves
 *     its intent (and the oldest position) ahead of what it writes and never
 *     waits (18.6);
 *   - the subscriber: shmq_pubsub_subscriber_open (any free entry from 1,
 *     starting at the latest, oldest or next message, 18.7), peek/release,
 *     try_recv, recv, peek_wait, wait_data, subscriber_close, with the Go
 *     subscriber's validation. In a lossy queue it detects being overwritten
 *     (and torn reads) through the intent, resumes at the oldest whole
 *     record and reports the exact number of messages lost: SHMQ_ELOST, with
 *     the count in last_lost (18.8).
 *
 * Sequence numbers: sub->seq is the number of the next message a
 * subscriber returns, pub->seq that of the next message a publisher
 * reserves; the receiving calls also return each message's number.
 */
#ifndef SHMQ_PUBSUB_H
#define SHMQ_PUBSUB_H

#include "shmq.h"

#include <sched.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The pub/sub code's bounds (pubsub/queue.go, pubsub/wait.go,
 * pubsub/room.go): retry loops give up with SHMQ_ECORRUPT after this many
 * attempts; a waiter checks its peer (a subscriber: the publisher's
 * liveness; the publisher: dead subscribers holding it back) at least this
 * often; a non-blocking reservation that finds no room looks for dead
 * subscribers at most this often. */
#define SHMQ_PUBSUB_MAX_ATTEMPTS (1 << 20)
#define SHMQ_PUBSUB_LIVENESS_NS  INT64_C(50000000)
#define SHMQ_PUBSUB_DROP_NS      INT64_C(10000000)

/* Where a subscriber starts (pubsub.Start). */
#define SHMQ_PUBSUB_FROM_LATEST 0 /* the newest message committed before it attached, then on */
#define SHMQ_PUBSUB_FROM_OLDEST 1 /* the oldest message still in the ring */
#define SHMQ_PUBSUB_FROM_NEXT   2 /* the first message committed after it attached */

/* Shared view of a pub/sub segment, built from the validated header. */
typedef struct shmq_pubsub {
	shmq_segment *seg;
	unsigned char *data;
	uint64_t cap, mask;
	uint32_t max_message, registry_count;
	int lossy;
	shmq_atomic_u64 *tail, *intent, *oldest, *limit, *wait_for; /* the producer line */
	shmq_atomic_u32 *pub_state; /* the publisher entry's state: Detached ends the stream */
	shmq_wake publisher_wake, subscriber_wake;
} shmq_pubsub;

typedef struct shmq_pubsub_publisher {
	shmq_pubsub q;
	shmq_entry e;
	uint64_t tail;      /* next free position, ahead of published while reserved */
	uint64_t published; /* last tail stored */
	uint64_t seq;       /* sequence number of the next message reserved */
	uint64_t pub_seq;   /* sequence number of the first message after published */
	/* Lossy: the last intent and oldest stored, and the intent's step. */
	uint64_t intent, oldest, slack;
	/* Back-pressure: the last limit stored (valid once have_limit), two
	 * recent record boundaries that bound the history kept (marks, 18.5),
	 * and when a non-blocking call last looked for dead subscribers. */
	uint64_t limit, mark0, mark1;
	int have_limit;
	int64_t last_drop;
	uint64_t pend_msgs, pend_bytes;
	int64_t last_sweep;
	int closed;
} shmq_pubsub_publisher;

typedef struct shmq_pubsub_subscriber {
	shmq_pubsub q;
	shmq_entry e;
	shmq_atomic_u64 *posp, *seqp, *lostp; /* this entry's EntrySub* words */
	uint64_t head, head_seq;  /* released position and the number expected there */
	uint64_t pos, seq;        /* next record and its number */
	uint64_t tail_cache;      /* last tail loaded */
	uint64_t peeked, peeked_bytes;
	int unverified;           /* lossy: views handed out that no check has covered, */
	uint64_t view_start;      /* the first of which is at this position */
	uint64_t lost, last_lost; /* lossy: messages lost in total, and in the last SHMQ_ELOST */
	int64_t last_sweep;
	int closed;
} shmq_pubsub_subscriber;

/* ---------------------------------------------------------------------- */
/* Records and shared words                                                */
/* ---------------------------------------------------------------------- */

static inline int shmq__pubsub_view(shmq_segment *s, shmq_pubsub *q)
{
	memset(q, 0, sizeof *q);
	if (s->hdr.kind != SHMQ_KIND_PUBSUB)
		return SHMQ_EKIND;
	unsigned char *m = s->mem;
	uint64_t pl = s->hdr.producer;
	q->seg = s;
	q->data = m + s->hdr.data;
	q->cap = s->hdr.capacity;
	q->mask = q->cap - 1;
	q->max_message = s->hdr.max_message;
	q->registry_count = s->hdr.registry_count;
	q->lossy = (s->hdr.flags & SHMQ_FLAG_LOSSY) != 0;
	q->tail = shmq__u64(m, pl + SHMQ_PUB_TAIL);
	q->intent = shmq__u64(m, pl + SHMQ_PUB_INTENT);
	q->oldest = shmq__u64(m, pl + SHMQ_PUB_OLDEST);
	q->limit = shmq__u64(m, pl + SHMQ_PUB_LIMIT);
	q->wait_for = shmq__u64(m, pl + SHMQ_PUB_WAIT_FOR);
	q->pub_state = shmq__u32(m, shmq_header_entry(&s->hdr, SHMQ_PUBSUB_PUBLISHER_ENTRY) + SHMQ_ENTRY_STATE);
	q->publisher_wake = shmq__wake_at(s, s->hdr.producer_wake, SHMQ_WAITER_SET_PRODUCERS);
	q->subscriber_wake = shmq__wake_at(s, s->hdr.consumer_wake, SHMQ_WAITER_SET_CONSUMERS);
	return 0;
}

static inline unsigned char *shmq__pubsub_rec(const shmq_pubsub *q, uint64_t pos)
{
	return q->data + (pos & q->mask);
}

/* The header words of the record at pos, each loaded once. */
static inline void shmq__pubsub_header(const shmq_pubsub *q, uint64_t pos, uint32_t *length, uint32_t *type)
{
	unsigned char *r = shmq__pubsub_rec(q, pos);
	*length = shmq__ld32(r, SHMQ_PUBSUB_RECORD_LENGTH);
	*type = shmq__ld32(r, SHMQ_PUBSUB_RECORD_TYPE);
}

/* The sequence-number word at pos: a record's, or past the tail the
 * number of the next message. */
static inline uint64_t shmq__pubsub_seq_at(const shmq_pubsub *q, uint64_t pos)
{
	return shmq__ld64(shmq__pubsub_rec(q, pos), SHMQ_PUBSUB_RECORD_SEQ);
}

static inline void shmq__pubsub_put_seq(const shmq_pubsub *q, uint64_t pos, uint64_t seq)
{
	atomic_store_explicit(shmq__u64(shmq__pubsub_rec(q, pos), SHMQ_PUBSUB_RECORD_SEQ), seq, memory_order_relaxed);
}

static inline void shmq__pubsub_put_header(const shmq_pubsub *q, uint64_t pos, uint32_t length, uint32_t type,
					   uint64_t seq)
{
	unsigned char *r = shmq__pubsub_rec(q, pos);
	atomic_store_explicit(shmq__u32(r, SHMQ_PUBSUB_RECORD_LENGTH), length, memory_order_relaxed);
	atomic_store_explicit(shmq__u32(r, SHMQ_PUBSUB_RECORD_TYPE), type, memory_order_relaxed);
	shmq__pubsub_put_seq(q, pos, seq);
}

/* CheckPubSubRecord (layout/pubsub.go): validates the header of the record
 * at ring index idx, with avail committed bytes from idx on. Sets *size
 * and *padding. */
static inline int shmq_pubsub_check_record(uint32_t length, uint32_t type, uint64_t idx, uint64_t avail,
					   uint64_t cap, uint32_t max_message, uint64_t *size, int *padding)
{
	uint64_t sz = shmq__align_up((uint64_t)length, SHMQ_PUBSUB_RECORD_ALIGN);
	*size = 0;
	*padding = 0;
	if (length < SHMQ_PUBSUB_RECORD_HEADER_SIZE || sz > avail || sz > cap - idx)
		return SHMQ_ECORRUPT;
	if (type == SHMQ_TYPE_MESSAGE && length - SHMQ_PUBSUB_RECORD_HEADER_SIZE <= max_message) {
		*size = sz;
		return 0;
	}
	if (type == SHMQ_TYPE_PADDING && idx + sz == cap) {
		*size = sz;
		*padding = 1;
		return 0;
	}
	return SHMQ_ECORRUPT;
}

/* The state and position of subscriber entry i. */
static inline uint32_t shmq__pubsub_entry_state(const shmq_pubsub *q, int i)
{
	return atomic_load_explicit(shmq__u32(q->seg->mem, shmq_header_entry(&q->seg->hdr, i) + SHMQ_ENTRY_STATE),
				    memory_order_seq_cst);
}

static inline uint64_t shmq__pubsub_entry_pos(const shmq_pubsub *q, int i)
{
	return atomic_load_explicit(
		shmq__u64(q->seg->mem, shmq_header_entry(&q->seg->hdr, i) + SHMQ_ENTRY_SUB_POSITION),
		memory_order_seq_cst);
}

static inline void shmq__pubsub_store_counters(shmq_entry *e, uint64_t msgs, uint64_t bytes)
{
	e->n_messages += msgs;
	e->n_bytes += bytes;
	atomic_store_explicit(e->messages, e->n_messages, memory_order_release);
	atomic_store_explicit(e->bytes, e->n_bytes, memory_order_release);
}

static inline void shmq__pubsub_stall(shmq_entry *e)
{
	e->n_stalls++;
	atomic_store_explicit(e->stalls, e->n_stalls, memory_order_release);
}

/* ---------------------------------------------------------------------- */
/* Publisher: room (LAYOUT.md 18.5, 18.6)                                  */
/* ---------------------------------------------------------------------- */

/* slowest: how far the slowest attached subscriber is behind position t, 0
 * if none is. A position not within a ring behind t belongs to a subscriber
 * still attaching (its entry holds its predecessor's) or is garbage: it
 * holds nothing back, since an attaching subscriber stores its position
 * and then checks the limit. */
static inline uint64_t shmq__pubsub_slowest(const shmq_pubsub *q, uint64_t t)
{
	uint64_t lag = 0;
	for (int i = SHMQ_PUBSUB_FIRST_SUBSCRIBER; (uint32_t)i < q->registry_count; i++) {
		if (shmq__pubsub_entry_state(q, i) != SHMQ_ENTRY_ATTACHED)
			continue;
		uint64_t pos = shmq__pubsub_entry_pos(q, i);
		uint64_t d = t - pos;
		if (d <= q->cap && d > lag && pos % SHMQ_PUBSUB_RECORD_ALIGN == 0)
			lag = d;
	}
	return lag;
}

/* scan computes and stores the limit: the slowest live subscriber's
 * position, or the publisher's mark if that is earlier and leaves room for
 * need, plus the capacity. It stores the limit, then reads the positions
 * again: a subscriber attaching meanwhile either stored its position before
 * that second read, which lowers the limit to protect it, or loads the new
 * limit and starts at or after it, less the capacity. */
static inline void shmq__pubsub_scan(shmq_pubsub_publisher *p, uint64_t need)
{
	shmq_pubsub *q = &p->q;
	uint64_t t = p->published;
	uint64_t back = shmq__pubsub_slowest(q, t);
	uint64_t m = t - p->mark0;
	if (m > back && m <= q->cap && q->cap - m >= need)
		back = m;
	atomic_store_explicit(q->limit, t + q->cap - back, memory_order_seq_cst);
	uint64_t lag2 = shmq__pubsub_slowest(q, t);
	if (lag2 > back) {
		back = lag2;
		atomic_store_explicit(q->limit, t + q->cap - back, memory_order_seq_cst);
	}
	p->limit = t + q->cap - back;
	p->have_limit = 1;
}

/* mark: after a commit, mark1 is the published tail at most a quarter ring
 * ago and mark0 the one before, a record boundary a quarter to a half ring
 * back. */
static inline void shmq__pubsub_mark(shmq_pubsub_publisher *p)
{
	if (p->published - p->mark1 >= p->q.cap / 4) {
		p->mark0 = p->mark1;
		p->mark1 = p->published;
	}
}

static inline void shmq__pubsub_free_entry(shmq_segment *s, int i, void *arg)
{
	shmq_atomic_u32 *state = shmq__u32(s->mem, shmq_header_entry(&s->hdr, i) + SHMQ_ENTRY_STATE);
	uint32_t attached = SHMQ_ENTRY_ATTACHED;
	(void)arg;
	atomic_compare_exchange_strong(state, &attached, SHMQ_ENTRY_FREE);
}

/* dropDead frees the entries of the subscribers that hold back a
 * reservation of need bytes and whose holders died without detaching,
 * each under its lock, so never one that a live process holds or attaches
 * meanwhile. Returns how many it freed. */
static inline int shmq__pubsub_drop_dead(shmq_pubsub_publisher *p, uint64_t need)
{
	shmq_pubsub *q = &p->q;
	uint64_t t = p->published;
	int n = 0;
	for (int i = SHMQ_PUBSUB_FIRST_SUBSCRIBER; (uint32_t)i < q->registry_count; i++) {
		if (shmq__pubsub_entry_state(q, i) != SHMQ_ENTRY_ATTACHED)
			continue;
		uint64_t d = t - shmq__pubsub_entry_pos(q, i);
		if (d > q->cap || q->cap - d >= need)
			continue; /* not holding this reservation back */
		if (shmq_with_dead_entry(q->seg, i, shmq__pubsub_free_entry, NULL) == 1)
			n++;
	}
	if (n > 0)
		p->have_limit = 0;
	return n;
}

/* room: a back-pressure publisher may write need bytes past the published
 * tail, or SHMQ_EFULL. It reads the positions only when its limit does not
 * cover need, and looks for dead subscribers now and then. */
static inline int shmq__pubsub_room(shmq_pubsub_publisher *p, uint64_t need)
{
	if (!p->have_limit || need > p->limit - p->published) {
		shmq__pubsub_scan(p, need);
		if (need <= p->limit - p->published)
			return 0;
		int64_t now = shmq__now_ns(CLOCK_MONOTONIC);
		if (now - p->last_drop >= SHMQ_PUBSUB_DROP_NS) {
			p->last_drop = now;
			if (shmq__pubsub_drop_dead(p, need) > 0)
				shmq__pubsub_scan(p, need);
		}
	}
	if (need > p->limit - p->published) {
		shmq__pubsub_stall(&p->e);
		return SHMQ_EFULL;
	}
	return 0;
}

/* advance moves a lossy publisher's intent to cover need bytes past the
 * published tail plus the slack (at most a ring past it): first the oldest
 * position, to the first record boundary at or after intent - capacity,
 * stepping over the records the new intent gives up; then the intent,
 * with an exchange (a full barrier), so that no byte written afterwards
 * becomes visible before it. */
static inline int shmq__pubsub_advance(shmq_pubsub_publisher *p, uint64_t need)
{
	shmq_pubsub *q = &p->q;
	uint64_t step = need + p->slack;
	uint64_t in = p->published + (step < q->cap ? step : q->cap);
	uint64_t o = p->oldest;
	while (in - o > q->cap) {
		uint32_t length, type;
		uint64_t size;
		int padding;
		shmq__pubsub_header(q, o, &length, &type);
		int err = shmq_pubsub_check_record(length, type, o & q->mask, p->published - o, q->cap, q->max_message,
						   &size, &padding);
		if (err != 0)
			return err;
		o += size;
	}
	if (o != p->oldest) {
		atomic_store_explicit(q->oldest, o, memory_order_seq_cst);
		p->oldest = o;
	}
	atomic_exchange_explicit(q->intent, in, memory_order_seq_cst);
	p->intent = in;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Publisher (LAYOUT.md 18.4)                                              */
/* ---------------------------------------------------------------------- */

/* Attaches the publisher role (entry 0): SHMQ_EROLETAKEN while a live
 * process holds it. It takes over where the last publisher left the
 * stream: after the committed tail, with the sequence number found there;
 * what a dead predecessor reserved and did not commit is overwritten. */
static inline int shmq_pubsub_publisher_open(shmq_segment *s, shmq_pubsub_publisher *p)
{
	memset(p, 0, sizeof *p);
	int err = shmq__pubsub_view(s, &p->q);
	if (err != 0)
		return err;
	shmq_pubsub *q = &p->q;
	if ((err = shmq_attach(s, SHMQ_PUBSUB_PUBLISHER_ENTRY, SHMQ_ROLE_PRODUCER, &p->e)) != 0)
		return err;
	uint64_t t = atomic_load_explicit(q->tail, memory_order_acquire);
	p->tail = p->published = p->mark0 = p->mark1 = t;
	p->seq = p->pub_seq = shmq__pubsub_seq_at(q, t);
	p->slack = shmq_pubsub_slack(q->cap);
	err = t % SHMQ_PUBSUB_RECORD_ALIGN != 0 ? SHMQ_ECORRUPT : 0;
	if (err == 0 && q->lossy) {
		uint64_t in = atomic_load_explicit(q->intent, memory_order_seq_cst);
		uint64_t o = atomic_load_explicit(q->oldest, memory_order_seq_cst);
		if (in - t < SHMQ_PUBSUB_RECORD_HEADER_SIZE || in - t > q->cap || o % SHMQ_PUBSUB_RECORD_ALIGN != 0 ||
		    t - o > q->cap)
			err = SHMQ_ECORRUPT;
		p->intent = in;
		p->oldest = o;
	}
	if (err != 0)
		shmq_detach(&p->e);
	return err;
}

/* ahead: the bytes past the published tail that a record of size bytes
 * takes if reserved now: the reservations before it, padding if it does
 * not fit before the end of the ring, the record, and the header of the
 * next one, whose sequence-number word commit writes. */
static inline uint64_t shmq__pubsub_ahead(const shmq_pubsub_publisher *p, uint64_t size)
{
	uint64_t room = p->q.cap - (p->tail & p->q.mask);
	return p->tail - p->published + (size > room ? room : 0) + size + SHMQ_PUBSUB_RECORD_HEADER_SIZE;
}

/* Reserve claims room for a message of n bytes and sets *out to its payload
 * in the ring. Fill it, then commit; several reservations may precede one
 * commit. SHMQ_EFULL: in a back-pressure queue, while a live subscriber
 * has not released what the message would overwrite; in a lossy queue only
 * when the reservations not yet committed would overwrite each other.
 * Also SHMQ_EMSGSIZE, SHMQ_ECORRUPT, SHMQ_ECLOSED, SHMQ_EFORKED. */
static inline int shmq_pubsub_reserve(shmq_pubsub_publisher *p, size_t n, void **out)
{
	shmq_pubsub *q = &p->q;
	if (p->closed)
		return SHMQ_ECLOSED;
	if (shmq__entry_mine(&p->e) != 0)
		return SHMQ_EFORKED;
	if (n == 0 || n > q->max_message)
		return SHMQ_EMSGSIZE;
	uint64_t size = shmq_pubsub_record_size(n);
	uint64_t need = shmq__pubsub_ahead(p, size);
	int err = 0;
	if (!q->lossy)
		err = shmq__pubsub_room(p, need);
	else if (need > q->cap)
		err = SHMQ_EFULL;
	else if (need > p->intent - p->published)
		err = shmq__pubsub_advance(p, need);
	if (err != 0)
		return err;
	uint64_t room = q->cap - (p->tail & q->mask);
	if (size > room) {
		shmq__pubsub_put_header(q, p->tail, (uint32_t)room, SHMQ_TYPE_PADDING, p->seq);
		p->tail += room;
	}
	shmq__pubsub_put_header(q, p->tail, (uint32_t)(n + SHMQ_PUBSUB_RECORD_HEADER_SIZE), SHMQ_TYPE_MESSAGE, p->seq);
	*out = shmq__pubsub_rec(q, p->tail) + SHMQ_PUBSUB_RECORD_HEADER_SIZE;
	p->tail += size;
	p->seq++;
	p->pend_msgs++;
	p->pend_bytes += n;
	return 0;
}

/* Commit publishes every reserved record: the next message's number goes
 * past the new tail first (its room was part of the reservation), then
 * one release store of the tail; then it wakes the parked subscribers, all
 * with one system call. */
static inline void shmq_pubsub_commit(shmq_pubsub_publisher *p)
{
	shmq_pubsub *q = &p->q;
	if (p->tail == p->published || shmq__entry_mine(&p->e) != 0)
		return;
	shmq__pubsub_put_seq(q, p->tail, p->seq);
	atomic_store_explicit(q->tail, p->tail, memory_order_release);
	p->published = p->tail;
	p->pub_seq = p->seq;
	if (!q->lossy)
		shmq__pubsub_mark(p);
	shmq__pubsub_store_counters(&p->e, p->pend_msgs, p->pend_bytes);
	p->pend_msgs = p->pend_bytes = 0;
	shmq__publish_wake(q->seg, &q->subscriber_wake, &p->e, &p->last_sweep);
}

/* TrySend copies msg into the ring and commits it, without waiting:
 * SHMQ_EFULL (back-pressure) if there is no room; SHMQ_EPENDING while
 * reservations are outstanding, since committing would publish them. */
static inline int shmq_pubsub_try_send(shmq_pubsub_publisher *p, const void *msg, size_t n)
{
	if (p->tail != p->published)
		return SHMQ_EPENDING;
	void *b;
	int err = shmq_pubsub_reserve(p, n, &b);
	if (err != 0)
		return err;
	memcpy(b, msg, n);
	shmq_pubsub_commit(p);
	return 0;
}

struct shmq__pubsub_room_arg {
	shmq_pubsub_publisher *p;
	uint64_t need;
};

static inline int shmq__pubsub_room_ready(void *a)
{
	struct shmq__pubsub_room_arg *r = (struct shmq__pubsub_room_arg *)a;
	return r->p->q.cap - shmq__pubsub_slowest(&r->p->q, r->p->published) >= r->need;
}

static inline int shmq__pubsub_room_check(void *a)
{
	struct shmq__pubsub_room_arg *r = (struct shmq__pubsub_room_arg *)a;
	shmq__pubsub_drop_dead(r->p, r->need);
	return 0;
}

/* waitRoom: waits until a back-pressure publisher has room for a message
 * of n bytes. It stores the position the slowest subscriber must reach
 * before it registers, so that only the release that reaches it wakes the
 * publisher; it drops dead subscribers that hold it back after each
 * SHMQ_PUBSUB_LIVENESS_NS. */
static inline int shmq__pubsub_wait_room(shmq_pubsub_publisher *p, size_t n, int64_t deadline)
{
	shmq_pubsub *q = &p->q;
	struct shmq__pubsub_room_arg a = { p, shmq__pubsub_ahead(p, shmq_pubsub_record_size(n)) };
	if (a.need > q->cap)
		return SHMQ_EFULL; /* never fits: the reservations pending would overwrite each other */
	atomic_store_explicit(q->wait_for, p->published + a.need - q->cap, memory_order_seq_cst);
	return shmq__wait(&q->publisher_wake, &p->e, deadline, SHMQ_PUBSUB_LIVENESS_NS, shmq__pubsub_room_ready,
			  shmq__pubsub_room_check, &a);
}

/* ReserveWait is reserve that waits, in a back-pressure queue, for room
 * (timeout_ns < 0: forever); in a lossy queue it does not wait. */
static inline int shmq_pubsub_reserve_wait(shmq_pubsub_publisher *p, size_t n, void **out, int64_t timeout_ns)
{
	int64_t deadline = shmq__deadline(timeout_ns);
	for (;;) {
		int err = shmq_pubsub_reserve(p, n, out);
		if (err != SHMQ_EFULL || p->q.lossy)
			return err;
		if ((err = shmq__pubsub_wait_room(p, n, deadline)) != 0)
			return err;
	}
}

/* Send copies msg into the ring and commits it. In a back-pressure queue it
 * waits while the slowest live subscriber holds the room it needs, for at
 * most timeout_ns (< 0: forever); a dead subscriber is dropped within about
 * 100 ms. In a lossy queue it never waits. */
static inline int shmq_pubsub_send(shmq_pubsub_publisher *p, const void *msg, size_t n, int64_t timeout_ns)
{
	int64_t deadline = shmq__deadline(timeout_ns);
	for (;;) {
		int err = shmq_pubsub_try_send(p, msg, n);
		if (err != SHMQ_EFULL || p->q.lossy)
			return err;
		if ((err = shmq__pubsub_wait_room(p, n, deadline)) != 0)
			return err;
	}
}

/* Discards uncommitted reservations and detaches the publisher role, then
 * wakes the parked subscribers: the detached state is the end of the
 * stream (SHMQ_EEOF once a subscriber has read everything); a publisher
 * that attaches later continues it. In a forked child, for a handle the
 * parent attached, it only forgets the handle. */
static inline int shmq_pubsub_publisher_close(shmq_pubsub_publisher *p)
{
	if (p->closed)
		return 0;
	p->closed = 1;
	p->tail = p->published;
	p->seq = p->pub_seq;
	p->pend_msgs = p->pend_bytes = 0;
	int err = shmq_detach(&p->e); /* notices a fork: then it touches nothing */
	if (shmq__entry_mine(&p->e) == 0)
		shmq__publish_wake(p->q.seg, &p->q.subscriber_wake, NULL, &p->last_sweep);
	return err;
}

/* ---------------------------------------------------------------------- */
/* Subscriber: reading (LAYOUT.md 18.8)                                    */
/* ---------------------------------------------------------------------- */

/* intentPast: a lossy publisher may have overwritten the record at pos.
 * The acquire fence orders every read of the ring before it ahead of the
 * load of the intent. */
static inline int shmq__pubsub_intent_past(const shmq_pubsub_subscriber *sub, uint64_t pos)
{
	atomic_thread_fence(memory_order_acquire);
	return atomic_load_explicit(sub->q.intent, memory_order_seq_cst) - pos > sub->q.cap;
}

/* place sets the subscriber's position and the number expected there, and
 * records them in its entry. */
static inline void shmq__pubsub_place(shmq_pubsub_subscriber *sub, uint64_t pos, uint64_t seq, uint64_t tail)
{
	sub->head = sub->pos = pos;
	sub->head_seq = sub->seq = seq;
	sub->tail_cache = tail;
	atomic_store_explicit(sub->posp, pos, memory_order_seq_cst);
	atomic_store_explicit(sub->seqp, seq, memory_order_seq_cst);
}

/* stuck: a lossy retry loop found intent, oldest and tail inconsistent.
 * The publisher's progress explains that once; the same values twice in a
 * row are corruption. */
static inline int shmq__pubsub_stuck(uint64_t last[3], int attempt, uint64_t in, uint64_t o, uint64_t t)
{
	if (attempt > 0 && last[0] == in && last[1] == o && last[2] == t)
		return SHMQ_ECORRUPT;
	last[0] = in;
	last[1] = o;
	last[2] = t;
	return 0;
}

/* lapped resumes an overwritten lossy subscriber at the oldest whole
 * record: SHMQ_ELOST with sub->last_lost set, or 0 if it skipped only
 * padding. The oldest position is loaded after the intent, which the
 * publisher stores after it, so the record there was whole when the intent
 * was loaded; its number is read, then the intent checked again. */
static inline int shmq__pubsub_lapped(shmq_pubsub_subscriber *sub)
{
	shmq_pubsub *q = &sub->q;
	uint64_t last[3] = { 0, 0, 0 };
	for (int attempt = 0; attempt < SHMQ_PUBSUB_MAX_ATTEMPTS; attempt++) {
		if (attempt % 64 == 63)
			sched_yield();
		uint64_t in = atomic_load_explicit(q->intent, memory_order_seq_cst);
		uint64_t o = atomic_load_explicit(q->oldest, memory_order_seq_cst);
		uint64_t t = atomic_load_explicit(q->tail, memory_order_acquire);
		uint64_t seq = 0;
		int ok = o % SHMQ_PUBSUB_RECORD_ALIGN == 0 && t % SHMQ_PUBSUB_RECORD_ALIGN == 0 && t - o <= q->cap &&
			 in - o <= q->cap;
		if (ok) {
			seq = shmq__pubsub_seq_at(q, o);
			ok = !shmq__pubsub_intent_past(sub, o);
		}
		if (!ok) {
			if (shmq__pubsub_stuck(last, attempt, in, o, t) != 0)
				return SHMQ_ECORRUPT;
			continue;
		}
		uint64_t lost = seq - sub->head_seq;
		if ((int64_t)lost < 0)
			return SHMQ_ECORRUPT;
		shmq__pubsub_place(sub, o, seq, t);
		sub->peeked = sub->peeked_bytes = 0;
		sub->unverified = 0;
		if (lost == 0)
			return 0;
		sub->lost += lost;
		sub->last_lost = lost;
		atomic_store_explicit(sub->lostp, sub->lost, memory_order_release);
		return SHMQ_ELOST;
	}
	return SHMQ_ECORRUPT;
}

/* loadTail refreshes the cached tail: it never moves back, and in a
 * back-pressure queue never runs more than a ring ahead of the released
 * position (a lossy subscriber that far behind was overwritten; the intent
 * tells). */
static inline int shmq__pubsub_load_tail(shmq_pubsub_subscriber *sub)
{
	uint64_t t = atomic_load_explicit(sub->q.tail, memory_order_acquire);
	if (t % SHMQ_PUBSUB_RECORD_ALIGN != 0 || (int64_t)(t - sub->tail_cache) < 0 ||
	    (!sub->q.lossy && t - sub->head > sub->q.cap))
		return SHMQ_ECORRUPT;
	sub->tail_cache = t;
	return 0;
}

/* Peek returns the next message not yet peeked, without releasing it: 0
 * with *msg (in the ring), *len and, if seq is not NULL, its sequence
 * number; SHMQ_EEMPTY; SHMQ_ELOST (lossy: sub->last_lost messages were
 * overwritten; the next call returns the oldest whole one); SHMQ_ECORRUPT.
 * In a back-pressure queue the view stays valid until release; in a lossy
 * queue it is to be trusted only if the shmq_pubsub_release that follows
 * returns 0. */
static inline int shmq_pubsub_peek(shmq_pubsub_subscriber *sub, const void **msg, size_t *len, uint64_t *seq)
{
	shmq_pubsub *q = &sub->q;
	if (sub->closed)
		return SHMQ_ECLOSED;
	if (shmq__entry_mine(&sub->e) != 0)
		return SHMQ_EFORKED;
	for (;;) {
		if (sub->pos == sub->tail_cache) {
			int err = shmq__pubsub_load_tail(sub);
			if (err != 0)
				return err;
			if (sub->pos == sub->tail_cache) {
				shmq__pubsub_stall(&sub->e);
				return SHMQ_EEMPTY;
			}
		}
		uint64_t at = sub->pos, idx = at & q->mask, size;
		uint32_t length, type;
		int padding;
		shmq__pubsub_header(q, at, &length, &type);
		uint64_t s = shmq__pubsub_seq_at(q, at);
		int err = shmq_pubsub_check_record(length, type, idx, sub->tail_cache - at, q->cap, q->max_message,
						   &size, &padding);
		if (err == 0 && s != sub->seq)
			err = SHMQ_ECORRUPT;
		if (q->lossy && shmq__pubsub_intent_past(sub, at)) {
			/* Overwritten, or the header torn as it was read. */
			if ((err = shmq__pubsub_lapped(sub)) != 0)
				return err;
			continue;
		}
		if (err != 0)
			return err;
		sub->pos += size;
		if (padding)
			continue;
		if (seq)
			*seq = sub->seq;
		sub->seq++;
		*len = length - SHMQ_PUBSUB_RECORD_HEADER_SIZE;
		*msg = q->data + idx + SHMQ_PUBSUB_RECORD_HEADER_SIZE;
		sub->peeked++;
		sub->peeked_bytes += *len;
		if (q->lossy && !sub->unverified) {
			sub->unverified = 1;
			sub->view_start = at;
		}
		return 0;
	}
}

/* verify checks a lossy subscriber's views and copies since the last
 * check: 0, or the result of resuming (SHMQ_ELOST). */
static inline int shmq__pubsub_verify(shmq_pubsub_subscriber *sub)
{
	if (shmq__pubsub_intent_past(sub, sub->view_start))
		return shmq__pubsub_lapped(sub);
	sub->unverified = 0;
	return 0;
}

/* wakePublisher: the release from old to sub->head wakes a parked
 * back-pressure publisher only if it is the one it waits for (PubWaitFor
 * lies after old and at or before the new position). The position store
 * comes before the waiter set's load, and the publisher stores its target
 * before it registers, so a release that matters either finds it
 * registered or is seen by its check before it parks. */
static inline void shmq__pubsub_wake_publisher(shmq_pubsub_subscriber *sub, uint64_t old)
{
	shmq_pubsub *q = &sub->q;
	atomic_thread_fence(memory_order_seq_cst);
	if (!shmq__waiting(&q->publisher_wake))
		return;
	uint64_t d = atomic_load_explicit(q->wait_for, memory_order_seq_cst) - old;
	if (d == 0 || d > sub->head - old)
		return;
	shmq__publish_wake(q->seg, &q->publisher_wake, &sub->e, &sub->last_sweep);
}

/* Release releases every message peeked since the last release with one
 * store of the subscriber's position, and wakes a back-pressured
 * publisher if it waits for this release. In a lossy queue it first checks
 * that the peeked messages were not overwritten, and returns SHMQ_ELOST if
 * they were (the views held wrong data and count as lost). */
static inline int shmq_pubsub_release(shmq_pubsub_subscriber *sub)
{
	if (sub->closed)
		return SHMQ_ECLOSED;
	if (shmq__entry_mine(&sub->e) != 0)
		return SHMQ_EFORKED;
	if (sub->unverified) {
		int err = shmq__pubsub_verify(sub);
		if (err != 0)
			return err;
	}
	if (sub->pos == sub->head)
		return 0;
	uint64_t old = sub->head;
	shmq__pubsub_place(sub, sub->pos, sub->seq, sub->tail_cache);
	shmq__pubsub_store_counters(&sub->e, sub->peeked, sub->peeked_bytes);
	sub->peeked = sub->peeked_bytes = 0;
	if (!sub->q.lossy)
		shmq__pubsub_wake_publisher(sub, old);
	return 0;
}

/* Rewind forgets the messages peeked since the last release. */
static inline void shmq_pubsub_rewind(shmq_pubsub_subscriber *sub)
{
	sub->pos = sub->head;
	sub->seq = sub->head_seq;
	sub->peeked = sub->peeked_bytes = 0;
	sub->unverified = 0;
}

/* TryRecv copies the next message into buf (cap bytes) and releases it
 * (with every message peeked before it): 0 with *len and *seq (if not
 * NULL), SHMQ_EEMPTY, SHMQ_ESHORTBUF (*len is the message's length; it
 * stays queued), SHMQ_ELOST or SHMQ_ECORRUPT. A lossy copy is checked
 * before it is reported. */
static inline int shmq_pubsub_try_recv(shmq_pubsub_subscriber *sub, void *buf, size_t cap, size_t *len,
				       uint64_t *seq)
{
	const void *m;
	size_t n;
	uint64_t s;
	int err = shmq_pubsub_peek(sub, &m, &n, &s);
	if (err != 0)
		return err;
	if (n > cap) {
		sub->pos -= shmq_pubsub_record_size(n);
		sub->seq--;
		sub->peeked--;
		sub->peeked_bytes -= n;
		sub->unverified = sub->unverified && sub->pos != sub->view_start;
		*len = n;
		return SHMQ_ESHORTBUF;
	}
	memcpy(buf, m, n);
	if ((err = shmq_pubsub_release(sub)) != 0)
		return err;
	*len = n;
	if (seq)
		*seq = s;
	return 0;
}

/* ended: the publisher detached cleanly and everything it committed has
 * been peeked. The publisher stores its last tail before its detached
 * state, so the tail loaded after seeing that state is final. */
static inline int shmq__pubsub_ended(shmq_pubsub_subscriber *sub)
{
	return atomic_load_explicit(sub->q.pub_state, memory_order_seq_cst) == SHMQ_ENTRY_DETACHED &&
	       atomic_load_explicit(sub->q.tail, memory_order_acquire) == sub->pos;
}

static inline int shmq__pubsub_data_ready(void *a)
{
	shmq_pubsub_subscriber *sub = (shmq_pubsub_subscriber *)a;
	return atomic_load_explicit(sub->q.tail, memory_order_acquire) != sub->pos ||
	       atomic_load_explicit(sub->q.pub_state, memory_order_seq_cst) == SHMQ_ENTRY_DETACHED;
}

/* A publisher that died attached commits nothing more and wakes no one. */
static inline int shmq__pubsub_publisher_check(void *a)
{
	shmq_pubsub_subscriber *sub = (shmq_pubsub_subscriber *)a;
	if (shmq_entry_dead(sub->q.seg, SHMQ_PUBSUB_PUBLISHER_ENTRY) == 1 && !shmq__pubsub_data_ready(a))
		return SHMQ_EPEERDEAD;
	return 0;
}

static inline int shmq__pubsub_wait_data(shmq_pubsub_subscriber *sub, int64_t deadline)
{
	if (shmq__pubsub_ended(sub))
		return SHMQ_EEOF;
	return shmq__wait(&sub->q.subscriber_wake, &sub->e, deadline, SHMQ_PUBSUB_LIVENESS_NS,
			  shmq__pubsub_data_ready, shmq__pubsub_publisher_check, sub);
}

/* Waits until a message not yet peeked may be there (0), the stream ended
 * (SHMQ_EEOF: the publisher closed and everything it committed was
 * peeked), the publisher died attached (SHMQ_EPEERDEAD; a new one may
 * attach and continue) or timeout_ns passed (SHMQ_ETIMEDOUT; < 0:
 * forever). */
static inline int shmq_pubsub_wait_data(shmq_pubsub_subscriber *sub, int64_t timeout_ns)
{
	if (sub->closed)
		return SHMQ_ECLOSED;
	if (shmq__entry_mine(&sub->e) != 0)
		return SHMQ_EFORKED;
	if (sub->tail_cache != sub->pos)
		return 0;
	return shmq__pubsub_wait_data(sub, shmq__deadline(timeout_ns));
}

/* PeekWait is peek that waits while there is no message, like recv. */
static inline int shmq_pubsub_peek_wait(shmq_pubsub_subscriber *sub, const void **msg, size_t *len, uint64_t *seq,
					int64_t timeout_ns)
{
	int64_t deadline = shmq__deadline(timeout_ns);
	for (;;) {
		int err = shmq_pubsub_peek(sub, msg, len, seq);
		if (err != SHMQ_EEMPTY)
			return err;
		if ((err = shmq__pubsub_wait_data(sub, deadline)) != 0)
			return err;
	}
}

/* Recv is try_recv that waits while there is no message, for at most
 * timeout_ns (< 0: forever); see shmq_pubsub_wait_data for SHMQ_EEOF and
 * SHMQ_EPEERDEAD. A lossy subscriber that was overwritten gets SHMQ_ELOST
 * at once. */
static inline int shmq_pubsub_recv(shmq_pubsub_subscriber *sub, void *buf, size_t cap, size_t *len, uint64_t *seq,
				   int64_t timeout_ns)
{
	int64_t deadline = shmq__deadline(timeout_ns);
	for (;;) {
		int err = shmq_pubsub_try_recv(sub, buf, cap, len, seq);
		if (err != SHMQ_EEMPTY)
			return err;
		if ((err = shmq__pubsub_wait_data(sub, deadline)) != 0)
			return err;
	}
}

/* ---------------------------------------------------------------------- */
/* Subscriber: starting (LAYOUT.md 18.7)                                   */
/* ---------------------------------------------------------------------- */

/* latest walks the committed records from position from to the tail t and
 * sets *out to the position of the last message among them (t if none). */
static inline int shmq__pubsub_latest(const shmq_pubsub *q, uint64_t from, uint64_t t, uint64_t *out)
{
	uint64_t last = t;
	for (uint64_t p = from; p != t;) {
		if (t - p > q->cap)
			return SHMQ_ECORRUPT;
		uint32_t length, type;
		uint64_t size;
		int padding;
		shmq__pubsub_header(q, p, &length, &type);
		if (shmq_pubsub_check_record(length, type, p & q->mask, t - p, q->cap, q->max_message, &size,
					     &padding) != 0)
			return SHMQ_ECORRUPT;
		if (!padding)
			last = p;
		p += size;
	}
	*out = last;
	return 0;
}

/* startPinned places a back-pressure subscriber: it stores a position at
 * or after limit - capacity, then loads the limit again and retries if the
 * publisher raised it past the position meanwhile (the Dekker pattern with
 * the publisher's scan). Once pinned, the records from there on are not
 * overwritten, so it may walk them. */
static inline int shmq__pubsub_start_pinned(shmq_pubsub_subscriber *sub, int from)
{
	shmq_pubsub *q = &sub->q;
	for (int attempt = 0; attempt < SHMQ_PUBSUB_MAX_ATTEMPTS; attempt++) {
		if (attempt % 64 == 63)
			sched_yield();
		uint64_t lim = atomic_load_explicit(q->limit, memory_order_seq_cst);
		uint64_t t = atomic_load_explicit(q->tail, memory_order_acquire);
		uint64_t floor = lim - q->cap;
		if (t % SHMQ_PUBSUB_RECORD_ALIGN != 0 || floor % SHMQ_PUBSUB_RECORD_ALIGN != 0 || t - floor > q->cap)
			return SHMQ_ECORRUPT;
		uint64_t pos = from == SHMQ_PUBSUB_FROM_NEXT ? t : floor;
		atomic_store_explicit(sub->posp, pos, memory_order_seq_cst);
		uint64_t d = atomic_load_explicit(q->limit, memory_order_seq_cst) - q->cap - pos;
		if (d != 0 && (int64_t)d > 0)
			continue; /* the publisher moved past pos before it could see it */
		if (from == SHMQ_PUBSUB_FROM_LATEST) {
			int err = shmq__pubsub_latest(q, pos, t, &pos);
			if (err != 0)
				return err;
		}
		shmq__pubsub_place(sub, pos, shmq__pubsub_seq_at(q, pos), t);
		return 0;
	}
	return SHMQ_ECORRUPT;
}

/* startLossy places a lossy subscriber: it reads where to start, then
 * checks that the publisher did not overwrite what it read, retrying if it
 * did. */
static inline int shmq__pubsub_start_lossy(shmq_pubsub_subscriber *sub, int from)
{
	shmq_pubsub *q = &sub->q;
	uint64_t last[3] = { 0, 0, 0 };
	for (int attempt = 0; attempt < SHMQ_PUBSUB_MAX_ATTEMPTS; attempt++) {
		if (attempt % 64 == 63)
			sched_yield();
		uint64_t o = atomic_load_explicit(q->oldest, memory_order_seq_cst);
		uint64_t t = atomic_load_explicit(q->tail, memory_order_acquire);
		if (o % SHMQ_PUBSUB_RECORD_ALIGN != 0 || t % SHMQ_PUBSUB_RECORD_ALIGN != 0)
			return SHMQ_ECORRUPT;
		if (t - o > q->cap) {
			/* The publisher ran a ring between the loads, or garbage. */
			if (shmq__pubsub_stuck(last, attempt, atomic_load_explicit(q->intent, memory_order_seq_cst), o,
					       t) != 0)
				return SHMQ_ECORRUPT;
			continue;
		}
		uint64_t pos = o, base = o;
		int err = 0;
		if (from == SHMQ_PUBSUB_FROM_NEXT)
			pos = base = t;
		else if (from == SHMQ_PUBSUB_FROM_LATEST)
			err = shmq__pubsub_latest(q, o, t, &pos);
		uint64_t seq = shmq__pubsub_seq_at(q, pos);
		atomic_thread_fence(memory_order_acquire);
		uint64_t in = atomic_load_explicit(q->intent, memory_order_seq_cst);
		if (in - base > q->cap) {
			/* Overwritten while it was read, or garbage. */
			if (shmq__pubsub_stuck(last, attempt, in, o, t) != 0)
				return SHMQ_ECORRUPT;
			continue;
		}
		if (err != 0)
			return err;
		shmq__pubsub_place(sub, pos, seq, t);
		return 0;
	}
	return SHMQ_ECORRUPT;
}

/* Attaches a subscriber, taking the first free registry entry from 1 on
 * (one whose holder died included; SHMQ_EREGISTRYFULL if live processes
 * hold them all), starting at from (SHMQ_PUBSUB_FROM_*). In a
 * back-pressure queue it then wakes the publisher, which may be parked on
 * the position the entry's predecessor left in it. */
static inline int shmq_pubsub_subscriber_open(shmq_segment *s, int from, shmq_pubsub_subscriber *sub)
{
	memset(sub, 0, sizeof *sub);
	if (from < SHMQ_PUBSUB_FROM_LATEST || from > SHMQ_PUBSUB_FROM_NEXT)
		return SHMQ_EINVAL;
	int err = shmq__pubsub_view(s, &sub->q);
	if (err != 0)
		return err;
	if ((err = shmq_attach_any(s, SHMQ_PUBSUB_FIRST_SUBSCRIBER, SHMQ_ROLE_CONSUMER, &sub->e)) != 0)
		return err;
	uint64_t base = shmq_header_entry(&s->hdr, sub->e.index);
	sub->posp = shmq__u64(s->mem, base + SHMQ_ENTRY_SUB_POSITION);
	sub->seqp = shmq__u64(s->mem, base + SHMQ_ENTRY_SUB_SEQ);
	sub->lostp = shmq__u64(s->mem, base + SHMQ_ENTRY_SUB_LOST);
	err = sub->q.lossy ? shmq__pubsub_start_lossy(sub, from) : shmq__pubsub_start_pinned(sub, from);
	if (err != 0) {
		shmq_detach(&sub->e);
		return err;
	}
	atomic_store_explicit(sub->lostp, 0, memory_order_release);
	if (!sub->q.lossy)
		shmq__publish_wake(s, &sub->q.publisher_wake, &sub->e, &sub->last_sweep);
	return 0;
}

/* Detaches the subscriber: a back-pressure publisher stops waiting for it
 * (it is woken). What was peeked and not released is given up. In a forked
 * child, for a handle the parent attached, it only forgets the handle. */
static inline int shmq_pubsub_subscriber_close(shmq_pubsub_subscriber *sub)
{
	if (sub->closed)
		return 0;
	sub->closed = 1;
	int err = shmq_detach(&sub->e);
	if (shmq__entry_mine(&sub->e) == 0 && !sub->q.lossy)
		shmq__publish_wake(sub->q.seg, &sub->q.publisher_wake, NULL, &sub->last_sweep);
	return err;
}

#ifdef __cplusplus
}
#endif

#endif /* SHMQ_PUBSUB_H */
