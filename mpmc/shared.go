package mpmc

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shmq/shmq/internal/gate"
	"github.com/shmq/shmq/internal/wakeline"
	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/notify"
)

// SharedProducer is a producer that any number of goroutines may use at
// once, through one registry entry: for a server whose thousands of
// request goroutines send to one queue, where a Producer each would need
// thousands of entries (a registry holds at most 1024) and a pool of them
// would make goroutines wait for one another.
//
// Sending is lock-free as with a Producer: each call claims its slot by
// compare-and-swap, in the entry's name, fills it and publishes it, so
// calls of different goroutines proceed in parallel, and the messages of
// one goroutine are delivered in the order it sent them (a call returns
// once its message is committed; a later call claims a later slot). A
// process that dies mid-call leaves claims in the entry's name, which
// consumers and the entry's next holder handle as any dead producer's.
//
// While the queue is full one goroutine at a time parks on the queue (a
// waiter set has one bit per registry entry), and the others wait in line
// behind it in this process. When room appears the parked one wakes the
// first in line; each goroutine that then sends wakes the next, so a slot
// freed lets one waiting goroutine through, not all of them at once.
//
// The entry's counters (Stats: messages, bytes, stalls) are kept in this
// process and published to the entry after each call, by whichever
// goroutine gets to it: they may lag by the calls in flight.
//
// In locked mode (Config.Locked) the calls are serialised through one
// Producer by a mutex held for each non-blocking attempt, and the waits
// for room park on the free-slots semaphore, one goroutine at a time, as
// above.
//
// Close may be called from any goroutine: blocked calls return ErrClosed,
// and Close returns once no call is in flight. Queue.Close closes it too.
type SharedProducer struct {
	base *Producer      // the entry and the gate; in locked mode the producer used under mu
	pool sync.Pool      // *Producer: claim state (stuck-slot tracking, last failure) for one call
	room relay          // one goroutine parks for room, the others queue here
	mu   sync.Mutex     // locked mode: guards base
	free *atomic.Uint32 // locked mode: the free-slots count, parked on for room

	msgs, bytes, stalls, requeued atomic.Uint64
	publishing                    atomic.Bool  // a goroutine is storing the counters to the entry
	lastSweep                     atomic.Int64 // unix nanoseconds of the last sweep for dead waiters
}

// SharedProducer attaches a producer that any number of goroutines may use
// at once, taking one registry entry, as Producer does (and failing as it
// does).
func (q *Queue) SharedProducer() (*SharedProducer, error) {
	p, err := q.producer(gate.New) // calls overlap: a single gate would lose count of them
	if err != nil {
		return nil, err
	}
	s := &SharedProducer{base: p}
	s.pool.New = func() any {
		return &Producer{q: q, e: p.e, g: p.g, me: p.me, maxMsg: p.maxMsg, units: p.units}
	}
	if q.lk != nil {
		if s.free, err = q.seg.Uint32(q.hdr.ProducerWake + layout.WakeSemCount); err != nil {
			p.Close()
			return nil, opError("SharedProducer", err)
		}
	}
	return s, nil
}

func (s *SharedProducer) enter(op string) error {
	if s == nil || s.base == nil {
		return opError(op, errNilHandle)
	}
	return s.base.enter(op)
}

// Index returns the producer's registry entry index.
func (s *SharedProducer) Index() int { return s.base.Index() }

// Requeued returns how many messages of dead consumers this producer's
// calls requeued (see Producer.Requeued).
func (s *SharedProducer) Requeued() uint64 { return s.requeued.Load() }

// TrySend copies msg into a slot and commits it, or returns ErrFull
// (unwrapped) without blocking.
func (s *SharedProducer) TrySend(msg []byte) (err error) {
	if err := s.enter("TrySend"); err != nil {
		return err
	}
	defer s.base.g.Exit()
	if s.base.q.guarded {
		defer s.base.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	w := s.pool.Get().(*Producer)
	defer s.pool.Put(w)
	return opError("TrySend", s.trySend(w, msg))
}

// Send copies msg into a slot and commits it, waiting while the queue is
// full until ctx ends or the producer is closed.
func (s *SharedProducer) Send(ctx context.Context, msg []byte) (err error) {
	if err := s.enter("Send"); err != nil {
		return err
	}
	defer s.base.g.Exit()
	if s.base.q.guarded {
		defer s.base.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	w := s.pool.Get().(*Producer)
	defer s.pool.Put(w)
	waited := false
	for {
		err := s.trySend(w, msg)
		if err != ErrFull {
			if err == nil && waited {
				s.room.handOn()
			}
			return opError("Send", err)
		}
		if err := s.waitRoom(ctx, w); err != nil {
			return opError("Send", err)
		}
		waited = true
	}
}

// TrySendBatch sends as many of msgs as there are free slots, in order,
// and wakes consumers once. It returns how many it sent, and ErrFull if
// that is fewer than len(msgs).
func (s *SharedProducer) TrySendBatch(msgs [][]byte) (_ int, err error) {
	if err := s.enter("TrySendBatch"); err != nil {
		return 0, err
	}
	defer s.base.g.Exit()
	if s.base.q.guarded {
		defer s.base.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	w := s.pool.Get().(*Producer)
	defer s.pool.Put(w)
	n, err := s.trySendBatch(w, msgs)
	return n, opError("TrySendBatch", err)
}

// SendBatch sends every message of msgs, in order, waiting for room as
// needed. The messages of other goroutines may come between them.
func (s *SharedProducer) SendBatch(ctx context.Context, msgs [][]byte) (err error) {
	if err := s.enter("SendBatch"); err != nil {
		return err
	}
	defer s.base.g.Exit()
	if s.base.q.guarded {
		defer s.base.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	w := s.pool.Get().(*Producer)
	defer s.pool.Put(w)
	waited := false
	for len(msgs) > 0 {
		n, err := s.trySendBatch(w, msgs)
		msgs = msgs[n:]
		if n > 0 && waited {
			s.room.handOn()
			waited = false
		}
		if err != ErrFull {
			return opError("SendBatch", err)
		}
		if err := s.waitRoom(ctx, w); err != nil {
			return opError("SendBatch", err)
		}
		waited = true
	}
	return nil
}

// Close detaches the producer; see SharedProducer for what happens to
// calls in progress.
func (s *SharedProducer) Close() error {
	if s == nil || s.base == nil {
		return opError("Close", errNilHandle)
	}
	return s.base.Close()
}

// trySend sends one message with w's claim state and wakes consumers.
func (s *SharedProducer) trySend(w *Producer, msg []byte) error {
	if s.free != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.base.trySend(msg)
	}
	if err := s.send(w, msg); err != nil {
		return err
	}
	s.count(1, uint64(len(msg)))
	s.wakeConsumers()
	return nil
}

// trySendBatch sends msgs until the queue is full, and wakes consumers
// once.
func (s *SharedProducer) trySendBatch(w *Producer, msgs [][]byte) (int, error) {
	if s.free != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.base.trySendBatch(msgs)
	}
	n, bytes := 0, uint64(0)
	var err error
	for _, m := range msgs {
		if err = s.send(w, m); err != nil {
			break
		}
		n++
		bytes += uint64(len(m))
	}
	if n > 0 {
		s.count(uint64(n), bytes)
		s.wakeConsumers()
	}
	return n, err
}

// send claims, fills and publishes one slot in the shared entry's name,
// with w's claim state, without waking consumers.
func (s *SharedProducer) send(w *Producer, msg []byte) error {
	n := len(msg)
	if n <= 0 || n > int(w.maxMsg) {
		return fmt.Errorf("%w: %d bytes (limits 1 and %d)", ErrMessageSize, n, w.maxMsg)
	}
	pos, err := w.claim()
	if w.requeued != 0 {
		s.requeued.Add(w.requeued)
		w.requeued = 0
	}
	if err != nil {
		if err == ErrFull {
			s.stalls.Add(1)
			s.publish()
		}
		return err
	}
	q := w.q
	off := q.slot(pos)
	le32put(q.data[off+layout.SlotLength:], uint32(n))
	le32put(q.data[off+layout.SlotProducer:], w.me)
	copy(q.payload(pos, uint32(n)), msg)
	return w.publish(pos)
}

// count adds sent messages to the counters and publishes them.
func (s *SharedProducer) count(msgs, bytes uint64) {
	s.msgs.Add(msgs)
	s.bytes.Add(bytes)
	s.publish()
}

// publish stores the counters in the registry entry, whose words have one
// writer at a time: the goroutine that holds publishing. One that finds it
// held leaves the work to the holder, which looks again after letting go
// and stores anything added meanwhile, so the entry never goes back and
// ends up current.
func (s *SharedProducer) publish() {
	ctr := s.base.ctr // single-writer words: publishing makes their writers take turns
	for s.publishing.CompareAndSwap(false, true) {
		m, b, st := s.msgs.Load(), s.bytes.Load(), s.stalls.Load()
		ctr.Messages.Set(m)
		ctr.Bytes.Set(b)
		ctr.Stalls.Set(st)
		s.publishing.Store(false)
		if s.msgs.Load() == m && s.bytes.Load() == b && s.stalls.Load() == st {
			return
		}
	}
}

// wakeConsumers is the commit's wake, as a Producer's (waker.wakeIfWaiting),
// with its sweep for dead waiters shared by the goroutines.
func (s *SharedProducer) wakeConsumers() {
	q := s.base.q
	n, _ := q.consumerWake.WakeIfWaiting(q.wait.Backend)
	if n == 0 {
		return
	}
	s.base.e.Wakes.Add(1)
	now := time.Now().UnixNano()
	last := s.lastSweep.Load()
	if now-last >= int64(sweepPeriod) && s.lastSweep.CompareAndSwap(last, now) {
		q.consumerWake.Waiters.Members(func(i int) { q.seg.ReapWaiter(i) })
	}
}

// waitRoom waits, after w's claim found the queue full, until there may be
// room: as the goroutine that parks on the queue, or in line behind it.
func (s *SharedProducer) waitRoom(ctx context.Context, w *Producer) error {
	return s.room.wait(ctx, s.base.g, func() error {
		if s.free != nil {
			return s.waitFree(ctx)
		}
		return w.waitRoom(ctx)
	})
}

// waitFree parks, in locked mode, until the free-slots semaphore has a
// unit; it takes none (the next attempt does). Between parks it recovers
// the units of dead processes, as a blocked Send does.
func (s *SharedProducer) waitFree(ctx context.Context) error {
	q := s.base.q
	line := notify.Line{Seq: s.free, Waiters: q.lk.sets[0]}
	ready := func() bool { return s.free.Load() > 0 }
	if ok, err := wakeline.Spin(ctx, line, q.wait, s.base.g, ready); ok || err != nil {
		return closedOr(s.base.g.Closed(), err)
	}
	bctx, release := s.base.g.Bind(ctx)
	defer release()
	period := lockedIdleRecheck
	if q.lk.cmu.Held() {
		period = lockedRecheck
	}
	_, err := line.Park(bctx, q.wait, int(s.base.me), period, ready, func() error {
		if err := q.recoverIdle(s.base.units, 0); err != nil {
			return err
		}
		return errRecheck
	})
	if err == errRecheck {
		return nil
	}
	return closedOr(s.base.g.Closed(), err)
}

// relay lets one goroutine at a time wait for room on the queue, since a
// waiter set holds one bit per registry entry, and lines up the others
// behind it in this process. The goroutine that parked hands the turn to
// the first in line when it returns, whatever the reason; every goroutine
// that sends after waiting hands it to the next (handOn). So each freed
// slot wakes about one goroutine, and a goroutine in line is woken within
// one park of the parked one (at most a second), whatever happens to it.
type relay struct {
	mu     sync.Mutex
	parked bool            // a goroutine waits on the queue
	line   []chan struct{} // the others, first come first; closed to hand them the turn
	n      atomic.Int32    // len(line), read without mu
}

// wait runs park if no other goroutine is parked, and otherwise waits its
// turn in line, until ctx ends or the gate g closes.
func (r *relay) wait(ctx context.Context, g *gate.Gate, park func() error) error {
	r.mu.Lock()
	if !r.parked {
		r.parked = true
		r.mu.Unlock()
		err := park()
		r.mu.Lock()
		r.parked = false
		r.next()
		r.mu.Unlock()
		return err
	}
	turn := make(chan struct{})
	r.line = append(r.line, turn)
	r.n.Add(1)
	r.mu.Unlock()
	bctx, release := g.Bind(ctx)
	defer release()
	select {
	case <-turn:
		return nil
	case <-bctx.Done():
	}
	r.mu.Lock()
	if !r.drop(turn) {
		r.next() // handed the turn as we left: pass it on
	}
	r.mu.Unlock()
	if g.Closed() {
		return ErrClosed
	}
	return ctx.Err()
}

// handOn gives the turn to the first goroutine in line, if any.
func (r *relay) handOn() {
	if r.n.Load() == 0 {
		return
	}
	r.mu.Lock()
	r.next()
	r.mu.Unlock()
}

// next hands the turn to the first in line. r.mu is held.
func (r *relay) next() {
	if len(r.line) == 0 {
		return
	}
	close(r.line[0])
	r.line[0] = nil
	r.line = r.line[1:]
	r.n.Add(-1)
}

// drop takes turn out of the line and reports whether it was there. r.mu
// is held.
func (r *relay) drop(turn chan struct{}) bool {
	for i, c := range r.line {
		if c == turn {
			r.line = append(r.line[:i], r.line[i+1:]...)
			r.n.Add(-1)
			return true
		}
	}
	return false
}
