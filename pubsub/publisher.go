package pubsub

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/shmq/shmq/internal/counter"
	"github.com/shmq/shmq/internal/fence"
	"github.com/shmq/shmq/internal/gate"
	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
)

// Publisher is the writing side of a queue. Only one Publisher may be
// attached to a queue at a time, across all processes; it is not safe for
// concurrent use, except that Close may be called from any goroutine. A
// publisher that dies frees the role, and its successor continues the
// stream after the last message it committed, with the next sequence
// number.
//
// Messages become visible to subscribers when they are committed: TrySend,
// Send and the batch calls commit what they write; Reserve leaves records
// pending until Commit, which publishes them all with one store. Commit is
// a release: every write to a committed record happens before a
// subscriber's read of it.
type Publisher struct {
	q      *Queue
	e      *ring.Entry
	g      *gate.Gate
	cap    uint64
	maxMsg uint32
	lossy  bool

	tail      uint64 // next free position; ahead of published while records are reserved
	published uint64 // last tail stored to shared memory
	seq       uint64 // sequence number of the next message reserved
	pubSeq    uint64 // sequence number of the first message after published

	// Lossy: the last intent and oldest stored, and the intent's step.
	intent, oldest, slack uint64

	// Back-pressure: the last limit stored (valid once haveLimit), two
	// recent record boundaries that bound the history kept (see mark), and
	// when subscribers holding the publisher back were last checked for
	// liveness by a non-blocking call.
	limit        uint64
	haveLimit    bool
	mark0, mark1 uint64
	lastDrop     time.Time

	pendMsgs, pendBytes uint64        // reserved, not yet committed
	msgs, bytes, stalls uint64        // private copies of the registry counters
	ctr                 counter.Entry // the registry counters, written unfenced
	waker
}

// dropEvery is how often a non-blocking call that finds no room checks
// whether the subscribers holding it back are alive.
const dropEvery = 10 * time.Millisecond

// Publisher attaches q's publisher role. It fails with ErrRoleTaken while
// another live process (or another handle) holds it.
func (q *Queue) Publisher() (_ *Publisher, err error) {
	if err := q.enter("Publisher"); err != nil {
		return nil, err
	}
	defer q.g.Exit()
	if q.guarded {
		defer q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	e, err := q.seg.Attach(layout.PubSubPublisherEntry, layout.RoleProducer)
	if err != nil {
		return nil, opError("Publisher", err)
	}
	p := &Publisher{q: q, e: e, g: gate.NewSingle(), ctr: counter.OfEntry(e), cap: q.cap, maxMsg: q.maxMsg, lossy: q.lossy, slack: layout.PubSubSlack(q.cap)}
	if err := p.resume(); err != nil {
		e.Detach()
		return nil, opError("Publisher", err)
	}
	q.mu.Lock()
	q.publisher = p
	q.mu.Unlock()
	return p, nil
}

// resume takes over the stream where the last publisher left it: after the
// committed tail, with the sequence number found there (see layout:
// PubSubRecordSeq). What a dead predecessor reserved and did not commit is
// overwritten.
func (p *Publisher) resume() error {
	q := p.q
	t := q.tail.Load()
	if t%layout.PubSubRecordAlign != 0 {
		return fmt.Errorf("%w: tail %d is not a multiple of %d", ErrCorrupt, t, layout.PubSubRecordAlign)
	}
	p.tail, p.published, p.mark0, p.mark1 = t, t, t, t
	p.seq = q.seqAt(t)
	p.pubSeq = p.seq
	if p.lossy {
		in, o := q.intent.Load(), q.oldest.Load()
		if in-t < layout.PubSubRecordHeaderSize || in-t > p.cap || o%layout.PubSubRecordAlign != 0 || t-o > p.cap {
			return fmt.Errorf("%w: tail %d, intent %d, oldest %d in a %d-byte ring", ErrCorrupt, t, in, o, p.cap)
		}
		p.intent, p.oldest = in, o
	}
	return nil
}

// enter admits a call of operation op, or says why not.
func (p *Publisher) enter(op string) error {
	if p == nil || p.g == nil {
		return opError(op, errNilHandle)
	}
	if !p.g.Enter() {
		return opError(op, ErrClosed)
	}
	return nil
}

// Seq returns the sequence number of the next message this publisher
// reserves or sends.
func (p *Publisher) Seq() uint64 { return p.seq }

// Reserve claims room for a message of n bytes and returns the payload
// slice, which aliases the shared ring: fill it, then Commit. Several
// reservations may precede one Commit. Reserve returns ErrFull (unwrapped)
// when the ring lacks room: in a back-pressure queue, while a live
// subscriber has not released what the message would overwrite; in a lossy
// queue, only when the reservations not yet committed would overwrite
// each other (commit first). On a segment another process could truncate,
// fill the slice inside Queue.Guard.
func (p *Publisher) Reserve(n int) (_ []byte, err error) {
	if err := p.enter("Reserve"); err != nil {
		return nil, err
	}
	defer p.g.Exit()
	if p.q.guarded {
		defer p.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	b, err := p.reserve(n)
	return b, opError("Reserve", err)
}

// ReserveWait is Reserve that waits, in a back-pressure queue, until there
// is room or ctx ends, like Send. In a lossy queue it does not wait.
func (p *Publisher) ReserveWait(ctx context.Context, n int) (_ []byte, err error) {
	if err := p.enter("ReserveWait"); err != nil {
		return nil, err
	}
	defer p.g.Exit()
	if p.q.guarded {
		defer p.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	for {
		b, err := p.reserve(n)
		if err != ErrFull || p.lossy {
			return b, opError("ReserveWait", err)
		}
		if err := p.waitRoom(ctx, n); err != nil {
			return nil, opError("ReserveWait", err)
		}
	}
}

// ahead returns how many bytes past the published tail a message of size
// bytes (a record size) takes if reserved now: the reservations before it,
// a padding record if it does not fit before the end of the ring, the
// record, and the header of the record after it, whose sequence-number
// word commit writes.
func (p *Publisher) ahead(size uint64) uint64 {
	pad := uint64(0)
	if room := p.cap - p.q.idx(p.tail); size > room {
		pad = room
	}
	return p.tail - p.published + pad + size + layout.PubSubRecordHeaderSize
}

func (p *Publisher) reserve(n int) ([]byte, error) {
	if n <= 0 || n > int(p.maxMsg) {
		return nil, fmt.Errorf("%w: %d bytes (limits 1 and %d)", ErrMessageSize, n, p.maxMsg)
	}
	size := layout.PubSubRecordSize(n)
	need := p.ahead(size)
	if p.lossy {
		if need > p.cap {
			return nil, ErrFull // only with reservations pending: they would overwrite each other
		}
		if need > p.intent-p.published {
			if err := p.advance(need); err != nil {
				return nil, err
			}
		}
	} else if err := p.room(need); err != nil {
		return nil, err
	}
	q := p.q
	if room := p.cap - q.idx(p.tail); size > room {
		q.putHeader(p.tail, uint32(room), layout.TypePadding, p.seq)
		p.tail += room
	}
	q.putHeader(p.tail, uint32(n+layout.PubSubRecordHeaderSize), layout.TypeMessage, p.seq)
	b := q.payload(p.tail, uint64(n))
	p.tail += size
	p.seq++
	p.pendMsgs++
	p.pendBytes += uint64(n)
	return b, nil
}

// Commit publishes every reserved record with one store of the tail
// cursor, and wakes the subscribers that are parked, all with one system
// call.
func (p *Publisher) Commit() (err error) {
	if err := p.enter("Commit"); err != nil {
		return err
	}
	defer p.g.Exit()
	if p.q.guarded {
		defer p.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	p.commit()
	return nil
}

func (p *Publisher) commit() {
	if p.tail == p.published {
		return
	}
	// The sequence number of the message after the batch goes past the
	// new tail first (the room for it was part of the reservation), so
	// that a subscriber starting at the tail, or a publisher taking over,
	// finds it there.
	p.q.putSeq(p.tail, p.seq)
	fence.Store(p.q.tail, p.tail)
	p.published, p.pubSeq = p.tail, p.seq
	if !p.lossy {
		p.mark()
	}
	p.msgs += p.pendMsgs
	p.bytes += p.pendBytes
	p.pendMsgs, p.pendBytes = 0, 0
	p.ctr.Messages.Set(p.msgs)
	p.ctr.Bytes.Set(p.bytes)
	// fence.Store kept this load from passing the tail store (and the
	// waiter registers with an atomic read-modify-write before re-checking
	// the tail), so a subscriber that registered is either seen here or
	// sees the new tail: no wakeup is lost.
	p.wakeIfWaiting(p.q, p.q.subscriberWake, p.e)
}

// TrySend copies msg into the ring and commits it, or returns ErrFull
// (unwrapped) without blocking (back-pressure only). It fails with
// ErrPending if reservations are outstanding, since committing msg would
// publish them half-written.
func (p *Publisher) TrySend(msg []byte) (err error) {
	if err := p.enter("TrySend"); err != nil {
		return err
	}
	defer p.g.Exit()
	if p.q.guarded {
		defer p.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	return opError("TrySend", p.trySend(msg))
}

func (p *Publisher) trySend(msg []byte) error {
	if p.tail != p.published {
		return ErrPending
	}
	b, err := p.reserve(len(msg))
	if err != nil {
		return err
	}
	copy(b, msg)
	p.commit()
	return nil
}

// TrySendBatch copies as many of msgs as fit and commits them together. It
// returns how many it sent, and ErrFull if that is fewer than len(msgs).
func (p *Publisher) TrySendBatch(msgs [][]byte) (_ int, err error) {
	if err := p.enter("TrySendBatch"); err != nil {
		return 0, err
	}
	defer p.g.Exit()
	if p.q.guarded {
		defer p.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	n, err := p.trySendBatch(msgs)
	return n, opError("TrySendBatch", err)
}

func (p *Publisher) trySendBatch(msgs [][]byte) (int, error) {
	if p.tail != p.published {
		return 0, ErrPending
	}
	n := 0
	var err error
	for _, m := range msgs {
		var b []byte
		if b, err = p.reserve(len(m)); err != nil {
			break
		}
		copy(b, m)
		n++
	}
	p.commit()
	return n, err
}

// Send copies msg into the ring and commits it. In a back-pressure queue
// it waits while the slowest live subscriber holds the room it needs,
// until ctx ends or the publisher is closed; a subscriber that died is
// dropped within about 100 ms. In a lossy queue it never waits.
func (p *Publisher) Send(ctx context.Context, msg []byte) (err error) {
	if err := p.enter("Send"); err != nil {
		return err
	}
	defer p.g.Exit()
	if p.q.guarded {
		defer p.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	return opError("Send", p.send(ctx, msg))
}

func (p *Publisher) send(ctx context.Context, msg []byte) error {
	for {
		err := p.trySend(msg)
		if err != ErrFull {
			return err
		}
		if err := p.waitRoom(ctx, len(msg)); err != nil {
			return err
		}
	}
}

// SendBatch sends every message of msgs, committing as many at a time as
// fit, and waiting for room as needed.
func (p *Publisher) SendBatch(ctx context.Context, msgs [][]byte) (err error) {
	if err := p.enter("SendBatch"); err != nil {
		return err
	}
	defer p.g.Exit()
	if p.q.guarded {
		defer p.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	for len(msgs) > 0 {
		n, err := p.trySendBatch(msgs)
		msgs = msgs[n:]
		if err == nil {
			return nil
		}
		if err != ErrFull {
			return opError("SendBatch", err)
		}
		if n == 0 {
			if err := p.send(ctx, msgs[0]); err != nil {
				return opError("SendBatch", err)
			}
			msgs = msgs[1:]
		}
	}
	return nil
}

// Close discards uncommitted reservations and detaches the publisher role,
// leaving committed messages for the subscribers; once one has read them
// all, its Recv returns io.EOF. Close may be called from any goroutine: a
// call blocked in Send or ReserveWait returns ErrClosed, and Close returns
// after it.
func (p *Publisher) Close() (err error) {
	if p == nil || p.g == nil {
		return opError("Close", errNilHandle)
	}
	p.g.Close(func() { err = p.teardown() })
	return err
}

// teardown detaches the publisher, once no call is in flight. It forgets
// the handle last, so that a Queue.Close that runs meanwhile finds it and
// waits for this teardown before it unmaps.
func (p *Publisher) teardown() (err error) {
	defer func() {
		p.q.mu.Lock()
		if p.q.publisher == p {
			p.q.publisher = nil
		}
		p.q.mu.Unlock()
	}()
	if p.q.guarded {
		defer p.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	p.tail, p.seq, p.pendMsgs, p.pendBytes = p.published, p.pubSeq, 0, 0
	err = p.e.Detach()
	// The detached state is the end of the stream: wake the subscribers
	// parked on it so that they see it.
	p.wakeIfWaiting(p.q, p.q.subscriberWake, nil)
	return opError("Close", err)
}
