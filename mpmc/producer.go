package mpmc

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync/atomic"

	"github.com/shmq/shmq/internal/counter"
	"github.com/shmq/shmq/internal/gate"
	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
)

// Producer is one writing side of a queue. It holds a registry entry of its
// own; any number of producers, in any processes, may write to a queue at
// once, up to the registry size. A Producer is not safe for concurrent use
// (give each goroutine its own, or share a SharedProducer), except that
// Close may be called from any goroutine.
//
// A message becomes visible to consumers when it is committed: TrySend, Send
// and the batch calls commit what they write; Reserve leaves the slot
// claimed until Commit. Commit is a release: every write to a committed
// slot happens before a consumer's read of it. Consumers take slots in
// position order, so a reserved slot holds back every later message (of all
// producers) until it is committed: keep reservations short.
type Producer struct {
	q      *Queue
	e      *ring.Entry
	g      *gate.Gate
	me     uint32
	maxMsg uint32

	pending   []uint64 // positions reserved and not yet committed, in order
	pendBytes uint64

	msgs, bytes, stalls uint64        // private copies of the registry counters
	ctr                 counter.Entry // the registry counters, written unfenced
	requeued            uint64        // messages of dead consumers requeued

	units *atomic.Uint32 // locked mode: semaphore units this handle may hold (layout.EntryUnits)

	stuck    suspect
	lastPos  uint64 // position and word that made the last claim fail
	lastWord uint64
	waker
}

// Producer attaches a new producer, taking a free registry entry. It fails
// with ErrRegistryFull when every entry is held by a live process. An entry
// whose holder died is reused; if that holder left a slot half-written, the
// slot is turned into a tombstone that consumers skip.
func (q *Queue) Producer() (*Producer, error) { return q.producer(gate.NewSingle) }

// producer attaches a producer whose calls a gate of newGate brackets:
// NewSingle's for a Producer, which one goroutine at a time calls; New's
// for the base of a SharedProducer, whose goroutines enter it at once.
func (q *Queue) producer(newGate func() *gate.Gate) (_ *Producer, err error) {
	if err := q.enter("Producer"); err != nil {
		return nil, err
	}
	defer q.g.Exit()
	if q.guarded {
		defer q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	e, err := q.attach(layout.RoleProducer)
	if err != nil {
		return nil, opError("Producer", err)
	}
	units, err := q.units(e.Index())
	if err != nil {
		e.Detach()
		return nil, opError("Producer", err)
	}
	p := &Producer{q: q, e: e, g: newGate(), me: uint32(e.Index()), maxMsg: q.maxMsg, units: units,
		ctr: counter.OfEntry(e)}
	q.mu.Lock()
	if q.producers == nil {
		q.producers = make(map[*Producer]struct{})
	}
	q.producers[p] = struct{}{}
	q.mu.Unlock()
	return p, nil
}

// enter admits a call of operation op, or says why not.
func (p *Producer) enter(op string) error {
	if p != nil && p.g != nil && p.g.Enter() { // inlined
		return nil
	}
	return refused(op, p == nil || p.g == nil)
}

// Index returns the producer's registry entry index.
func (p *Producer) Index() int { return int(p.me) }

// Requeued returns how many messages this producer requeued: messages, of
// any producer, that a consumer had taken and not released when it died,
// which this producer found in the slot it was about to claim and put back
// in the queue to be delivered again (tombstones are not counted).
func (p *Producer) Requeued() uint64 { return p.requeued }

// claim claims the next free slot for this producer and returns its
// position, or ErrFull (unwrapped).
func (p *Producer) claim() (uint64, error) {
	q := p.q
	lap := q.lap()
	pos := q.enq.Load()
	for attempt := 0; attempt < maxAttempts; attempt++ {
		seq := q.seqs[pos&q.mask]
		w := seq.Load()
		d, err := q.classify(w, pos)
		if err != nil {
			return 0, err
		}
		switch {
		case d == dEmpty:
			if seq.CompareAndSwap(w, layout.SeqWord(pos, layout.SlotWriting, p.me)) {
				q.enq.CompareAndSwap(pos, pos+1)
				return pos, nil
			}
		case d == dWriting || d == dFull || d == dReading:
			// Another producer claimed pos: help its cursor along.
			q.enq.CompareAndSwap(pos, pos+1)
		case d == dFull-lap && layout.SeqOwner(w) == layout.SeqOwnerTomb:
			// The previous lap's tombstone: it holds no message, so the slot
			// is free. Move the dequeue cursor past it first (consumers at
			// the old cursor must find it moved, not a slot a lap ahead),
			// then claim straight from it.
			prev := pos - q.hdr.Capacity
			q.deq.CompareAndSwap(prev, prev+1)
			if seq.CompareAndSwap(w, layout.SeqWord(pos, layout.SlotWriting, p.me)) {
				q.enq.CompareAndSwap(pos, pos+1)
				return pos, nil
			}
		case d == dWriting-lap || d == dFull-lap:
			// The previous lap's message is still being written or waits
			// for a consumer.
			p.lastPos, p.lastWord = pos, w
			return 0, ErrFull
		case d == dReading-lap:
			// A consumer is still reading the previous lap's message. If it
			// is gone (died, or orphaned the message when its registry
			// entry was taken over), requeue the message at pos and claim
			// again.
			if err := q.checkOwner(w, pos); err != nil {
				return 0, err
			}
			if layout.SeqOwner(w) != layout.SeqOwnerOrphan {
				gone, err := p.stuck.claimantGone(q.seg, w)
				if err != nil {
					return 0, err
				}
				if !gone {
					p.lastPos, p.lastWord = pos, w
					return 0, ErrFull
				}
			}
			if err := p.requeue(seq, w, pos); err != nil {
				return 0, err
			}
		case d >= lap:
			// The slot is a lap ahead: pos is stale, or the cursor was
			// moved back.
			if n := q.enq.Load(); n != pos {
				pos = n
				continue
			}
			return 0, q.corrupt("enqueue cursor behind its slot", w, pos)
		default:
			return 0, q.corrupt("enqueue cursor ahead of its slot", w, pos)
		}
		pos = q.enq.Load()
	}
	return 0, fmt.Errorf("%w: no progress after %d attempts to claim a slot", ErrCorrupt, maxAttempts)
}

// requeue puts the message in the slot of pos back in the queue, at pos:
// the slot holds w = R(pos-C, o), taken by a consumer o that is gone (or
// SeqOwnerOrphan). The message stays where it is, length, producer index
// and payload; only its sequence word moves to the new position, through
// W(pos, SeqOwnerOrphan), a complete message that any process may publish,
// so that the message survives this producer dying half-way
// (LAYOUT.md §14.6 step 5). A failed CAS means another process got there
// first; the caller claims again either way.
func (p *Producer) requeue(seq *atomic.Uint64, w, pos uint64) error {
	q := p.q
	prev := pos - q.hdr.Capacity
	q.deq.CompareAndSwap(prev, prev+1)
	// Nobody writes a slot's bytes while it is taken, so the length read
	// now is the one the CAS below finds, if it succeeds.
	n := le32(q.data[q.slot(pos)+layout.SlotLength:])
	if n > p.maxMsg {
		// Not a message: a tombstone at pos instead, by one CAS.
		if !seq.CompareAndSwap(w, layout.SeqWord(pos, layout.SlotFull, layout.SeqOwnerTomb)) {
			return nil
		}
		q.enq.CompareAndSwap(pos, pos+1)
		p.wakeIfWaiting(q, q.consumerWake, p.e)
		return fmt.Errorf("%w: slot %d held a %d-byte message, more than the maximum %d, when its consumer died (position %d)",
			ErrCorrupt, pos&q.mask, n, p.maxMsg, prev)
	}
	orphan := layout.SeqWord(pos, layout.SlotWriting, layout.SeqOwnerOrphan)
	if !seq.CompareAndSwap(w, orphan) {
		return nil
	}
	if n != 0 {
		p.requeued++
	}
	q.enq.CompareAndSwap(pos, pos+1)
	if seq.CompareAndSwap(orphan, layout.SeqWord(pos, layout.SlotFull, layout.SeqOwnerOrphan)) {
		p.wakeIfWaiting(q, q.consumerWake, p.e)
	}
	return nil
}

// Reserve claims a slot for a message of n bytes and returns its payload,
// which aliases the shared slot: fill it, then Commit. Several reservations
// may precede one Commit. The slices stay valid (and no other process
// touches them) until Commit; after it a consumer may read them and then a
// producer may overwrite them, so do not keep them. Reserve returns ErrFull
// (unwrapped, cheap to test) when no slot is free. On a segment another
// process could truncate, fill the slice inside Queue.Guard.
func (p *Producer) Reserve(n int) (_ []byte, err error) {
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

// ReserveWait is Reserve that waits, while no slot is free, until one is or
// ctx ends, like Send.
func (p *Producer) ReserveWait(ctx context.Context, n int) (_ []byte, err error) {
	if err := p.enter("ReserveWait"); err != nil {
		return nil, err
	}
	defer p.g.Exit()
	if p.q.guarded {
		defer p.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	for {
		b, err := p.reserve(n)
		if err != ErrFull {
			return b, opError("ReserveWait", err)
		}
		if err := p.waitRoom(ctx); err != nil {
			return nil, opError("ReserveWait", err)
		}
	}
}

func (p *Producer) reserve(n int) ([]byte, error) {
	if p.q.lk != nil {
		return nil, ErrLockedMode
	}
	if n <= 0 || n > int(p.maxMsg) {
		return nil, fmt.Errorf("%w: %d bytes (limits 1 and %d)", ErrMessageSize, n, p.maxMsg)
	}
	pos, err := p.claim()
	if err != nil {
		if err == ErrFull {
			p.stalls++
			p.ctr.Stalls.Set(p.stalls)
		}
		return nil, err
	}
	off := p.q.slot(pos)
	le32put(p.q.data[off+layout.SlotLength:], uint32(n))
	le32put(p.q.data[off+layout.SlotProducer:], p.me)
	p.pending = append(p.pending, pos)
	p.pendBytes += uint64(n)
	return p.q.payload(pos, uint32(n)), nil
}

// publish turns the slot of pos, claimed by this producer, from writing to
// full.
func (p *Producer) publish(pos uint64) error {
	seq := p.q.seqs[pos&p.q.mask]
	if !seq.CompareAndSwap(layout.SeqWord(pos, layout.SlotWriting, p.me), layout.SeqWord(pos, layout.SlotFull, p.me)) {
		return p.q.corrupt("claimed slot taken from its producer", seq.Load(), pos)
	}
	return nil
}

// tombstone turns the slot of pos, claimed by this producer, into a
// tombstone. A failed CAS means another process rewrote the claim; the
// slot is then not this producer's to change.
func (p *Producer) tombstone(pos uint64) {
	p.q.seqs[pos&p.q.mask].CompareAndSwap(layout.SeqWord(pos, layout.SlotWriting, p.me),
		layout.SeqWord(pos, layout.SlotFull, layout.SeqOwnerTomb))
}

// Commit publishes every reserved slot, in the order reserved, and wakes
// parked consumers. It fails only if another process overwrote a claimed
// slot (ErrCorrupt); the reservations after that one then become
// tombstones, so that no slot stays claimed behind the failure.
func (p *Producer) Commit() (err error) {
	if err := p.enter("Commit"); err != nil {
		return err
	}
	defer p.g.Exit()
	if len(p.pending) == 0 {
		return nil
	}
	if p.q.guarded {
		defer p.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	return opError("Commit", p.commit())
}

func (p *Producer) commit() error {
	var err error
	n := uint64(0)
	for _, pos := range p.pending {
		if err != nil {
			p.tombstone(pos)
			continue
		}
		if err = p.publish(pos); err == nil {
			n++
		}
	}
	p.msgs += n
	if err == nil {
		p.bytes += p.pendBytes
	}
	p.pending, p.pendBytes = p.pending[:0], 0
	p.ctr.Messages.Set(p.msgs)
	p.ctr.Bytes.Set(p.bytes)
	p.wakeIfWaiting(p.q, p.q.consumerWake, p.e)
	return err
}

// send claims, fills and publishes one slot, without waking consumers.
func (p *Producer) send(msg []byte) error {
	b, err := p.reserve(len(msg))
	if err != nil {
		return err
	}
	copy(b, msg)
	pos := p.pending[0]
	p.pending = p.pending[:0]
	p.pendBytes = 0
	if err := p.publish(pos); err != nil {
		return err
	}
	p.msgs++
	p.bytes += uint64(len(msg))
	return nil
}

// TrySend copies msg into a slot and commits it, or returns ErrFull
// (unwrapped) without blocking. It fails with ErrPending if reservations
// are outstanding.
func (p *Producer) TrySend(msg []byte) (err error) {
	if err := p.enter("TrySend"); err != nil {
		return err
	}
	defer p.g.Exit()
	if p.q.guarded {
		defer p.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	return opError("TrySend", p.trySend(msg))
}

func (p *Producer) trySend(msg []byte) error {
	if p.q.lk != nil {
		_, err := p.lockedBatch(context.Background(), false, [][]byte{msg})
		return err
	}
	if len(p.pending) != 0 {
		return ErrPending
	}
	if err := p.send(msg); err != nil {
		return err
	}
	p.ctr.Messages.Set(p.msgs)
	p.ctr.Bytes.Set(p.bytes)
	if p.q.consumerWake.Waiters.Any() { // inlined: no call while no one waits
		p.wakeIfWaiting(p.q, p.q.consumerWake, p.e)
	}
	return nil
}

// TrySendBatch sends as many of msgs as there are free slots, committing
// each as soon as it is written, and wakes consumers once. It returns how
// many it sent, and ErrFull if that is fewer than len(msgs).
func (p *Producer) TrySendBatch(msgs [][]byte) (_ int, err error) {
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

func (p *Producer) trySendBatch(msgs [][]byte) (int, error) {
	if p.q.lk != nil {
		return p.lockedBatch(context.Background(), false, msgs)
	}
	if len(p.pending) != 0 {
		return 0, ErrPending
	}
	n := 0
	var err error
	for _, m := range msgs {
		if err = p.send(m); err != nil {
			break
		}
		n++
	}
	if n > 0 {
		p.ctr.Messages.Set(p.msgs)
		p.ctr.Bytes.Set(p.bytes)
		p.wakeIfWaiting(p.q, p.q.consumerWake, p.e)
	}
	return n, err
}

// Send copies msg into a slot and commits it, waiting while the queue is
// full until ctx ends or the producer is closed. While it waits it requeues
// the messages of consumers that died holding the slot it waits for.
func (p *Producer) Send(ctx context.Context, msg []byte) (err error) {
	if err := p.enter("Send"); err != nil {
		return err
	}
	defer p.g.Exit()
	if p.q.guarded {
		defer p.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	return opError("Send", p.sendWait(ctx, msg))
}

func (p *Producer) sendWait(ctx context.Context, msg []byte) error {
	if p.q.lk != nil {
		bctx, release := p.g.Bind(ctx)
		defer release()
		_, err := p.lockedBatch(bctx, true, [][]byte{msg})
		return closedOr(p.g.Closed(), err)
	}
	for {
		err := p.trySend(msg)
		if err != ErrFull {
			return err
		}
		if err := p.waitRoom(ctx); err != nil {
			return err
		}
	}
}

// waitRoom waits until the slot word that made the last claim fail, or the
// enqueue cursor, changes.
func (p *Producer) waitRoom(ctx context.Context) error {
	q := p.q
	pos, w := p.lastPos, p.lastWord
	return q.waitFor(ctx, p.g, q.producerWake, p.e, w, 0, func() bool {
		return q.enq.Load() != pos || q.seqs[pos&q.mask].Load() != w
	})
}

// SendBatch sends every message of msgs, waiting for room as needed.
func (p *Producer) SendBatch(ctx context.Context, msgs [][]byte) (err error) {
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
			if err := p.sendWait(ctx, msgs[0]); err != nil {
				return opError("SendBatch", err)
			}
			msgs = msgs[1:]
		}
	}
	return nil
}

// Close turns uncommitted reservations into tombstones (consumers skip
// them) and detaches the producer, leaving committed messages for the
// consumers. Close may be called from any goroutine: a call blocked in Send
// or ReserveWait returns ErrClosed, and Close returns after it.
func (p *Producer) Close() (err error) {
	if p == nil || p.g == nil {
		return opError("Close", errNilHandle)
	}
	p.g.Close(func() { err = p.teardown() })
	return err
}

// teardown tombstones the reservations and detaches, once no call is in
// flight. It forgets the handle last, so that a Queue.Close that runs
// meanwhile finds it and waits for this teardown before it unmaps.
func (p *Producer) teardown() (err error) {
	defer func() {
		p.q.mu.Lock()
		delete(p.q.producers, p)
		p.q.mu.Unlock()
	}()
	if p.q.guarded {
		defer p.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	for _, pos := range p.pending {
		p.tombstone(pos)
	}
	p.pending, p.pendBytes = nil, 0
	err = p.e.Detach()
	// Wake consumers: for the tombstones, and for those waiting for the end
	// of the stream (Consumer.EndOfStream), which a detach may be.
	p.q.wake(p.q.consumerWake)
	return opError("Close", err)
}
