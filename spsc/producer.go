package spsc

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime/debug"

	"github.com/shmq/shmq/internal/counter"
	"github.com/shmq/shmq/internal/fence"
	"github.com/shmq/shmq/internal/gate"
	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
)

// Producer is the writing side of a queue. Only one Producer may be attached
// to a queue at a time, across all processes; it is not safe for concurrent
// use (wrap it in a mutex or give each goroutine its own queue), except
// that Close may be called from any goroutine.
//
// Messages become visible to the consumer when they are committed: TrySend,
// Send and the batch calls commit what they write; Reserve leaves records
// pending until Commit. Commit is a release: every write to a committed
// record happens before the consumer's read of it.
type Producer struct {
	q      *Queue
	e      *ring.Entry
	g      *gate.Gate
	data   []byte
	cap    uint64
	mask   uint64
	maxMsg uint32

	tail      uint64 // next free position; ahead of published while records are reserved
	published uint64 // last tail stored to shared memory
	headCache uint64 // last head loaded from shared memory

	pendMsgs, pendBytes uint64        // reserved, not yet committed
	msgs, bytes, stalls uint64        // private copies of the registry counters
	ctr                 counter.Entry // the registry counters, written unfenced
	waker
}

// Producer attaches q's producer role. It fails with ErrRoleTaken while
// another live process (or another handle) holds it; a producer that died
// frees the role and its successor continues at the committed tail.
func (q *Queue) Producer() (*Producer, error) {
	return attach(q, "Producer", layout.SPSCProducerEntry, layout.RoleProducer, func(e *ring.Entry, tail, head uint64) *Producer {
		return &Producer{
			q: q, e: e, g: gate.NewSingle(), data: q.data, cap: q.hdr.Capacity, mask: q.mask, maxMsg: q.hdr.MaxMessage,
			tail: tail, published: tail, headCache: head, ctr: counter.OfEntry(e),
		}
	}, func() **Producer { return &q.producer })
}

// enter admits a call of operation op, or says why not.
func (p *Producer) enter(op string) error {
	if p != nil && p.g != nil && p.g.Enter() { // inlined
		return nil
	}
	return refused(op, p == nil || p.g == nil)
}

// Reserve claims room for a message of n bytes and returns the payload
// slice, which aliases the shared ring: fill it, then Commit. Several
// reservations may precede one Commit, which publishes them all with one
// store. The slices stay valid until Commit; after it the consumer may read
// them and then the producer may overwrite them, so do not keep them.
// Reserve returns ErrFull (unwrapped, cheap to test) when the ring lacks
// room. On a segment another process could truncate, fill the slice inside
// Queue.Guard.
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

// ReserveWait is Reserve that waits, while the ring lacks room, until there
// is room or ctx ends, like Send.
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
		if err := p.waitRoom(ctx, n); err != nil {
			return nil, opError("ReserveWait", err)
		}
	}
}

func (p *Producer) reserve(n int) ([]byte, error) {
	if n <= 0 || n > int(p.maxMsg) {
		return nil, fmt.Errorf("%w: %d bytes (limits 1 and %d)", ErrMessageSize, n, p.maxMsg)
	}
	size := layout.RecordSize(n)
	idx := p.tail & p.mask
	room := p.cap - idx // contiguous bytes to the end of the ring
	need := p.need(size)
	if need > p.cap-(p.tail-p.headCache) {
		head := p.q.head.Load()
		if err := p.q.checkUsed(p.tail, head); err != nil {
			return nil, err
		}
		if head-p.headCache > p.tail-p.headCache { // the head never moves back
			return nil, fmt.Errorf("%w: head moved from %d back to %d", ErrCorrupt, p.headCache, head)
		}
		p.headCache = head
		if need > p.cap-(p.tail-head) {
			p.stalls++
			p.ctr.Stalls.Set(p.stalls)
			return nil, ErrFull
		}
	}
	if size > room {
		putHeader(p.data[idx:], uint32(room), layout.TypePadding)
		p.tail += room
		idx = 0
	}
	putHeader(p.data[idx:], uint32(n+layout.RecordHeaderSize), layout.TypeMessage)
	p.tail += size
	p.pendMsgs++
	p.pendBytes += uint64(n)
	start := idx + layout.RecordHeaderSize
	return p.data[start : start+uint64(n) : start+uint64(n)], nil
}

// need returns the ring bytes a record of size bytes takes at the tail: its
// size, plus a padding record if it does not fit before the end of the ring.
func (p *Producer) need(size uint64) uint64 {
	if room := p.cap - p.tail&p.mask; size > room {
		return size + room
	}
	return size
}

func putHeader(b []byte, length, typ uint32) {
	binary.LittleEndian.PutUint32(b[layout.RecordLength:], length)
	binary.LittleEndian.PutUint32(b[layout.RecordType:], typ)
}

// Commit publishes every reserved record with one store of the tail cursor,
// and wakes the consumer if it is parked.
func (p *Producer) Commit() (err error) {
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

func (p *Producer) commit() {
	if p.tail == p.published {
		return
	}
	fence.Store(p.q.tail, p.tail)
	p.published = p.tail
	p.msgs += p.pendMsgs
	p.bytes += p.pendBytes
	p.pendMsgs, p.pendBytes = 0, 0
	p.ctr.Messages.Set(p.msgs)
	p.ctr.Bytes.Set(p.bytes)
	// fence.Store kept this load from passing the tail store (and the
	// waiter registers with an atomic read-modify-write before re-checking
	// the tail), so a consumer that registered is either seen here or
	// sees the new tail: no wakeup is lost.
	if p.q.consumerWake.Waiters.Any() { // inlined: no call while no one waits
		p.wakeIfWaiting(p.q, p.q.consumerWake, p.e)
	}
}

// TrySend copies msg into the ring and commits it, or returns ErrFull
// (unwrapped) without blocking. It fails with ErrPending if reservations are
// outstanding, since committing msg would publish them half-written.
func (p *Producer) TrySend(msg []byte) (err error) {
	if err := p.enter("TrySend"); err != nil {
		return err
	}
	defer p.g.Exit()
	if p.q.guarded {
		defer p.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	if p.sendFast(msg) {
		return nil
	}
	return opError("TrySend", p.trySend(msg))
}

func (p *Producer) trySend(msg []byte) error {
	if p.sendFast(msg) {
		return nil
	}
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

// sendFast is reserve, copy and commit in one function for the common
// case of a streaming send: no reservation pending, and a record that fits
// before the end of the ring in the room the cached head promises. It
// reports false, having done nothing, in every other case.
func (p *Producer) sendFast(msg []byte) bool {
	n := uint64(len(msg))
	if p.tail != p.published || n-1 >= uint64(p.maxMsg) { // n-1 wraps for n == 0
		return false
	}
	size := (n + layout.RecordHeaderSize + layout.RecordAlign - 1) &^ (layout.RecordAlign - 1)
	idx := p.tail & p.mask
	if size > p.cap-idx || size > p.cap-(p.tail-p.headCache) {
		return false
	}
	rec := p.data[idx : idx+size]
	putHeader(rec, uint32(n+layout.RecordHeaderSize), layout.TypeMessage)
	copy(rec[layout.RecordHeaderSize:], msg)
	p.tail += size
	p.pendMsgs, p.pendBytes = 1, n
	p.commit()
	return true
}

// TrySendBatch copies as many of msgs as fit and commits them together. It
// returns how many it sent, and ErrFull if that is fewer than len(msgs).
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
	if p.tail != p.published {
		return 0, ErrPending
	}
	n := p.fillFast(msgs)
	var err error
	for _, m := range msgs[n:] {
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

// fillFast writes the leading messages of msgs that fit, in the room the
// cached head promises, before the end of the ring, and returns how many it
// wrote, leaving the rest (and anything unusual) to reserve. It is the
// batch's hot loop: a header store and a copy per message, the tail and the
// counters kept in registers until the one commit. Each store behind a
// pending cache-line transfer holds a store-buffer slot, so a batch that
// called reserve per message (a frame, spills, an error path) streamed at
// about half the rate.
func (p *Producer) fillFast(msgs [][]byte) int {
	// room: free bytes the cached head promises, up to the end of the ring
	// (past it, reserve pads). Positions wrap at 2^64: compare distances.
	room := min(p.cap-(p.tail-p.headCache), p.cap-p.tail&p.mask)
	idx, data, maxMsg := p.tail&p.mask, p.data, uint64(p.maxMsg)
	var bytes uint64
	i := 0
	for ; i < len(msgs); i++ {
		m := msgs[i]
		n := uint64(len(m))
		size := (n + layout.RecordHeaderSize + layout.RecordAlign - 1) &^ (layout.RecordAlign - 1)
		if n-1 >= maxMsg || size > room { // n-1 wraps for n == 0
			break
		}
		rec := data[idx : idx+size]
		putHeader(rec, uint32(n+layout.RecordHeaderSize), layout.TypeMessage)
		copy(rec[layout.RecordHeaderSize:], m)
		idx += size
		room -= size
		bytes += n
	}
	p.tail += idx - p.tail&p.mask
	p.pendMsgs += uint64(i)
	p.pendBytes += bytes
	return i
}

// Send copies msg into the ring and commits it, waiting while the ring is
// full until ctx ends or the producer is closed. It fails with ErrPeerDead
// if the ring stays full and the consumer died without detaching (a new
// consumer may attach and drain it; Send may be called again).
func (p *Producer) Send(ctx context.Context, msg []byte) (err error) {
	if err := p.enter("Send"); err != nil {
		return err
	}
	defer p.g.Exit()
	if p.q.guarded {
		defer p.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	if p.sendFast(msg) {
		return nil
	}
	return opError("Send", p.send(ctx, msg))
}

func (p *Producer) send(ctx context.Context, msg []byte) error {
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

// waitRoom waits until a message of n bytes fits.
func (p *Producer) waitRoom(ctx context.Context, n int) error {
	need := p.need(layout.RecordSize(n))
	return p.q.waitFor(ctx, p.g, p.q.producerWake, p.e, layout.SPSCConsumerEntry, func() bool {
		return p.cap-(p.tail-p.q.head.Load()) >= need
	}, nil)
}

// SendBatch sends every message of msgs, committing as many at a time as
// fit, and waiting for room as needed.
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
			if err := p.send(ctx, msgs[0]); err != nil {
				return opError("SendBatch", err)
			}
			msgs = msgs[1:]
		}
	}
	return nil
}

// Close discards uncommitted reservations and detaches the producer role,
// leaving committed messages for the consumer; once it has drained them,
// the consumer's Recv returns io.EOF. Close may be called from any
// goroutine: a call blocked in Send or ReserveWait returns ErrClosed, and
// Close returns after it.
func (p *Producer) Close() (err error) {
	if p == nil || p.g == nil {
		return opError("Close", errNilHandle)
	}
	p.g.Close(func() { err = p.teardown() })
	return err
}

// teardown detaches the producer, once no call is in flight. It forgets the
// handle last, so that a Queue.Close that runs meanwhile finds it and waits
// for this teardown before it unmaps.
func (p *Producer) teardown() (err error) {
	defer detach(p.q, &p.q.producer, p)
	if p.q.guarded {
		defer p.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	p.tail, p.pendMsgs, p.pendBytes = p.published, 0, 0
	err = p.e.Detach()
	// The detached state is the end of the stream: wake a consumer parked
	// on an empty ring so that it sees it.
	p.wakeIfWaiting(p.q, p.q.consumerWake, nil)
	return opError("Close", err)
}
