/*
 * shmq_spsc.h - SPSC queues of shmq layout version 2 (LAYOUT.md sections
 * 11-13): a producer (reserve/commit, try_send, send) and a consumer
 * (peek/release, try_recv, recv) with the Go consumer's validation, over
 * the segment, registry and wake protocol of shmq.h. Included by shmq.h.
 */
#ifndef SHMQ_SPSC_H
#define SHMQ_SPSC_H

#include "shmq.h"

#ifdef __cplusplus
extern "C" {
#endif

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
	int64_t last_sweep; /* publisher's sweep of dead waiters, see shmq__publish_wake */
	int closed;
} shmq_spsc_producer;

typedef struct shmq_spsc_consumer {
	shmq_segment *seg;
	shmq_entry e;
	unsigned char *data;
	uint64_t cap, mask;
	uint32_t max_message;
	shmq_atomic_u64 *tailp, *headp;
	shmq_atomic_u32 *prod_state; /* the producer entry's state: Detached ends the stream */
	shmq_wake producer_wake, consumer_wake;
	uint64_t head;       /* released position */
	uint64_t pos;        /* next record to peek */
	uint64_t tail_cache; /* last tail loaded */
	uint64_t peeked, peeked_bytes;
	int64_t last_sweep;
	int closed;
} shmq_spsc_consumer;

/* Waits on wake line w, as registry entry own, until ready(arg) is true.
 * deadline_ns is CLOCK_MONOTONIC, < 0 for none. Returns 0, SHMQ_ETIMEDOUT
 * or SHMQ_EPEERDEAD (the entry peer was attached and its holder died: a
 * dead peer wakes no one, so its liveness is checked every
 * SHMQ_LIVENESS_PERIOD_NS). Counts one wait in own's Waits if it parked. */
static inline int shmq__spsc_wait(shmq_wake *w, shmq_entry *own, int peer, int64_t deadline_ns,
				  int (*ready)(void *), void *arg)
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
		uint32_t seq = shmq__arm(w); /* sleeper bit set before the re-check */
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
		parked = 1;
		shmq__futex_wait(w->seq, seq, park);
	}
	shmq__unregister(w, own->index);
	if (parked)
		shmq__count_wait(own);
	return err;
}

static inline void shmq__spsc_lines(shmq_segment *s, shmq_wake *pw, shmq_wake *cw)
{
	*pw = shmq__wake_at(s, s->hdr.producer_wake, SHMQ_WAITER_SET_PRODUCERS);
	*cw = shmq__wake_at(s, s->hdr.consumer_wake, SHMQ_WAITER_SET_CONSUMERS);
}

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
	shmq__spsc_lines(s, &p->producer_wake, &p->consumer_wake);
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
 * commit. Returns 0, SHMQ_EFULL, SHMQ_EMSGSIZE, SHMQ_ECORRUPT or
 * SHMQ_EFORKED. */
static inline int shmq_spsc_reserve(shmq_spsc_producer *p, size_t n, void **out)
{
	if (p->closed)
		return SHMQ_ECLOSED;
	if (shmq__entry_mine(&p->e) != 0)
		return SHMQ_EFORKED;
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
	if (p->tail == p->published || shmq__entry_mine(&p->e) != 0)
		return;
	atomic_store_explicit(p->tailp, p->tail, memory_order_release);
	p->published = p->tail;
	p->e.n_messages += p->pend_msgs;
	p->e.n_bytes += p->pend_bytes;
	p->pend_msgs = p->pend_bytes = 0;
	atomic_store_explicit(p->e.messages, p->e.n_messages, memory_order_release);
	atomic_store_explicit(p->e.bytes, p->e.n_bytes, memory_order_release);
	shmq__publish_wake(p->seg, &p->consumer_wake, &p->e, &p->last_sweep);
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
	if (p->closed)
		return SHMQ_ECLOSED;
	if (shmq__entry_mine(&p->e) != 0)
		return SHMQ_EFORKED;
	if (n == 0 || n > p->max_message)
		return SHMQ_EMSGSIZE;
	struct shmq__space_arg a = { p, shmq__spsc_need(p, shmq_record_size(n)) };
	return shmq__spsc_wait(&p->producer_wake, &p->e, SHMQ_SPSC_CONSUMER_ENTRY, shmq__deadline(timeout_ns),
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
		err = shmq__spsc_wait(&p->producer_wake, &p->e, SHMQ_SPSC_CONSUMER_ENTRY, deadline, shmq__space_ready,
				      &a);
		if (err != 0)
			return err;
	}
}

/* Discards uncommitted reservations and detaches the producer role, then
 * wakes a parked consumer: the detached state is the end of the stream
 * (shmq_spsc_recv: SHMQ_EEOF). In a forked child, for a handle the parent
 * attached, it only forgets the handle. */
static inline int shmq_spsc_producer_close(shmq_spsc_producer *p)
{
	if (p->closed)
		return 0;
	p->closed = 1;
	p->tail = p->published;
	p->pend_msgs = p->pend_bytes = 0;
	int err = shmq_detach(&p->e); /* notices a fork: then it touches nothing */
	if (shmq__entry_mine(&p->e) == 0)
		shmq__publish_wake(p->seg, &p->consumer_wake, NULL, &p->last_sweep);
	return err;
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
	c->prod_state = shmq__u32(s->mem, shmq_header_entry(&s->hdr, SHMQ_SPSC_PRODUCER_ENTRY) + SHMQ_ENTRY_STATE);
	shmq__spsc_lines(s, &c->producer_wake, &c->consumer_wake);
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
	if (shmq__entry_mine(&c->e) != 0)
		return SHMQ_EFORKED;
	for (;;) {
		uint64_t avail = c->tail_cache - c->pos;
		if (avail == 0) {
			uint64_t tail = atomic_load_explicit(c->tailp, memory_order_acquire);
			/* checked against the released head, not the peek position */
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
	if (c->pos == c->head || shmq__entry_mine(&c->e) != 0)
		return;
	atomic_store_explicit(c->headp, c->pos, memory_order_release);
	c->head = c->pos;
	c->e.n_messages += c->peeked;
	c->e.n_bytes += c->peeked_bytes;
	c->peeked = c->peeked_bytes = 0;
	atomic_store_explicit(c->e.messages, c->e.n_messages, memory_order_release);
	atomic_store_explicit(c->e.bytes, c->e.n_bytes, memory_order_release);
	shmq__publish_wake(c->seg, &c->producer_wake, &c->e, &c->last_sweep);
}

/* Rewind forgets the messages peeked since the last release. */
static inline void shmq_spsc_rewind(shmq_spsc_consumer *c)
{
	c->pos = c->head;
	c->peeked = c->peeked_bytes = 0;
}

/* TryRecv copies the next message into buf and releases it (with every
 * message peeked before it). If buf is too small it returns SHMQ_ESHORTBUF
 * and leaves the message queued. */
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

/* ended: the producer detached cleanly and everything it committed has been
 * peeked. The producer stores its last tail before its detached state, so
 * the tail loaded after seeing that state is final. */
static inline int shmq__spsc_ended(shmq_spsc_consumer *c)
{
	return atomic_load_explicit(c->prod_state, memory_order_seq_cst) == SHMQ_ENTRY_DETACHED &&
	       atomic_load_explicit(c->tailp, memory_order_acquire) == c->pos;
}

static inline int shmq__data_ready(void *a)
{
	shmq_spsc_consumer *c = (shmq_spsc_consumer *)a;
	return atomic_load_explicit(c->tailp, memory_order_acquire) != c->pos ||
	       atomic_load_explicit(c->prod_state, memory_order_seq_cst) == SHMQ_ENTRY_DETACHED;
}

static inline int shmq__spsc_wait_data(shmq_spsc_consumer *c, int64_t deadline_ns)
{
	if (shmq__spsc_ended(c))
		return SHMQ_EEOF;
	return shmq__spsc_wait(&c->consumer_wake, &c->e, SHMQ_SPSC_PRODUCER_ENTRY, deadline_ns, shmq__data_ready, c);
}

/* Waits until the queue holds a message not yet peeked (timeout_ns < 0:
 * forever), or returns SHMQ_EEOF once the producer has closed and every
 * message it committed has been peeked (a producer that attaches later
 * starts a new stream). */
static inline int shmq_spsc_wait_data(shmq_spsc_consumer *c, int64_t timeout_ns)
{
	if (c->closed)
		return SHMQ_ECLOSED;
	if (shmq__entry_mine(&c->e) != 0)
		return SHMQ_EFORKED;
	if (c->tail_cache != c->pos)
		return 0;
	return shmq__spsc_wait_data(c, shmq__deadline(timeout_ns));
}

/* Recv copies the next message into buf and releases it, waiting while the
 * queue is empty, for at most timeout_ns (< 0: forever). It returns
 * SHMQ_EEOF at the end of the stream (see shmq_spsc_wait_data) and
 * SHMQ_EPEERDEAD if the producer died without detaching. */
static inline int shmq_spsc_recv(shmq_spsc_consumer *c, void *buf, size_t cap, size_t *len, int64_t timeout_ns)
{
	int64_t deadline = shmq__deadline(timeout_ns);
	for (;;) {
		int err = shmq_spsc_try_recv(c, buf, cap, len);
		if (err != SHMQ_EEMPTY)
			return err;
		if ((err = shmq__spsc_wait_data(c, deadline)) != 0)
			return err;
	}
}

/* Detaches the consumer role; peeked, unreleased messages stay queued. In
 * a forked child, for a handle the parent attached, it only forgets the
 * handle. */
static inline int shmq_spsc_consumer_close(shmq_spsc_consumer *c)
{
	if (c->closed)
		return 0;
	c->closed = 1;
	return shmq_detach(&c->e);
}

#ifdef __cplusplus
}
#endif

#endif /* SHMQ_SPSC_H */
