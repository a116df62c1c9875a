package pubsub

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"

	"github.com/shmq/shmq/internal/counter"
	"github.com/shmq/shmq/internal/gate"
	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
)

// Start says where a new subscriber starts reading.
type Start int

const (
	// FromLatest: at the newest message committed before it attached, if
	// one is still in the ring, then everything after it. A subscriber
	// that attaches to an idle queue receives the last value published.
	FromLatest Start = iota
	// FromOldest: at the oldest message still in the ring (history). In a
	// lossy queue, that is the oldest record the publisher has not begun
	// to overwrite. In a back-pressure queue, it is the oldest one the
	// publisher has promised not to overwrite (its limit less the
	// capacity): the slowest live subscriber's position, or a point at
	// least a quarter of a ring back, whichever is earlier.
	FromOldest
	// FromNext: at the first message committed after it attached.
	FromNext
)

func (s Start) String() string {
	switch s {
	case FromLatest:
		return "latest"
	case FromOldest:
		return "oldest"
	case FromNext:
		return "next"
	}
	return fmt.Sprintf("Start(%d)", int(s))
}

// Subscriber is one reading side of a queue: it receives every message
// committed from its start on, in order, unless (lossy queues only) the
// publisher overwrites some first, which it then reports. It is not safe
// for concurrent use, except that Close may be called from any goroutine.
//
// Peek returns messages in order without releasing them; Release releases
// everything peeked so far with one store of the subscriber's position. In
// a back-pressure queue a peeked message is a view of the ring that stays
// valid until Release. In a lossy queue the publisher may overwrite it
// meanwhile: the view is to be trusted only if the Release that follows
// returns nil; if it returns a *LostError the views were overwritten and
// are counted as lost. TryRecv, Recv and TryRecvBatch copy or hand out
// messages and release them; in a lossy queue they check each copy before
// delivering it.
type Subscriber struct {
	q      *Queue
	e      *ring.Entry
	w      *entryWords // this subscriber's registry entry
	g      *gate.Gate
	cap    uint64
	maxMsg uint32
	lossy  bool

	head, headSeq uint64 // released position and the sequence number expected there
	pos, seq      uint64 // next record to peek and the sequence number expected there
	tailCache     uint64 // last tail loaded from shared memory

	peeked, peekedBytes uint64 // messages peeked since the last release
	unverified          bool   // lossy: views handed out that no check has covered yet,
	viewStart           uint64 // the first of which is at this position
	lost                uint64
	msgs, bytes, stalls uint64        // private copies of the registry counters
	ctr                 counter.Entry // the registry counters, written unfenced
	scratch             []byte        // lossy TryRecvBatch: the copy handed to fn
	rf                  readFence
	waker
}

// Subscriber attaches a new subscriber, starting at from. It takes a free
// registry entry (or one whose holder died), failing with ErrRegistryFull
// if every one is held by a live process.
func (q *Queue) Subscriber(from Start) (_ *Subscriber, err error) {
	if err := q.enter("Subscriber"); err != nil {
		return nil, err
	}
	defer q.g.Exit()
	if from < FromLatest || from > FromNext {
		return nil, opError("Subscriber", fmt.Errorf("%w: start %v", ErrInvalid, from))
	}
	if q.guarded {
		defer q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	e, err := q.seg.AttachAny(layout.PubSubFirstSubscriber, layout.RoleConsumer)
	if err != nil {
		return nil, opError("Subscriber", err)
	}
	s := &Subscriber{q: q, e: e, w: &q.subs[e.Index()], g: gate.NewSingle(), ctr: counter.OfEntry(e), cap: q.cap, maxMsg: q.maxMsg, lossy: q.lossy}
	if q.lossy {
		err = s.startLossy(from)
	} else {
		err = s.startPinned(from)
	}
	if err != nil {
		e.Detach()
		return nil, opError("Subscriber", err)
	}
	s.w.lost.Store(0)
	// A back-pressure publisher may be parked on the position this entry's
	// predecessor left in it.
	s.wakeIfWaiting(q, q.publisherWake, e)
	q.mu.Lock()
	q.subscribers[s] = struct{}{}
	q.mu.Unlock()
	return s, nil
}

// enter admits a call of operation op, or says why not.
func (s *Subscriber) enter(op string) error {
	if s == nil || s.g == nil {
		return opError(op, errNilHandle)
	}
	if !s.g.Enter() {
		return opError(op, ErrClosed)
	}
	return nil
}

// Seq returns the sequence number of the next message Peek or Recv
// returns.
func (s *Subscriber) Seq() uint64 { return s.seq }

// Lost returns how many messages this subscriber has lost to overwriting
// (lossy queues), in total.
func (s *Subscriber) Lost() uint64 { return s.lost }

// Peek returns the next message not yet peeked, without releasing it, or
// ErrEmpty (unwrapped) when no committed message is left. The slice
// aliases the shared ring; see Subscriber for how long it stays valid. In
// a lossy queue Peek returns a *LostError instead of a message when the
// subscriber was overwritten; the next call returns the oldest message
// still whole.
func (s *Subscriber) Peek() (_ []byte, err error) {
	if err := s.enter("Peek"); err != nil {
		return nil, err
	}
	defer s.g.Exit()
	if s.q.guarded {
		defer s.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	m, err := s.peek()
	return m, opError("Peek", err)
}

// PeekWait is Peek that waits, while there is no message, until one is
// committed or ctx ends, like Recv; it returns io.EOF at the end of the
// stream.
func (s *Subscriber) PeekWait(ctx context.Context) (_ []byte, err error) {
	if err := s.enter("PeekWait"); err != nil {
		return nil, err
	}
	defer s.g.Exit()
	if s.q.guarded {
		defer s.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	for {
		m, err := s.peek()
		if err != ErrEmpty {
			return m, opError("PeekWait", err)
		}
		if err := s.waitData(ctx); err != nil {
			return nil, opError("PeekWait", err)
		}
	}
}

// Release releases every message returned by Peek since the last Release
// with one store of the subscriber's position, and wakes a back-pressured
// publisher if it is parked. In a lossy queue it first checks that the
// publisher has not overwritten the peeked messages, and returns a
// *LostError if it has: the views held wrong data and count as lost.
func (s *Subscriber) Release() (err error) {
	if err := s.enter("Release"); err != nil {
		return err
	}
	defer s.g.Exit()
	if s.q.guarded {
		defer s.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	return opError("Release", s.release())
}

func (s *Subscriber) release() error {
	if s.unverified {
		if err := s.verify(); err != nil {
			return err
		}
	}
	if s.pos == s.head {
		return nil
	}
	old := s.head
	s.w.pos.Store(s.pos)
	s.w.seq.Store(s.seq)
	s.head, s.headSeq = s.pos, s.seq
	s.msgs += s.peeked
	s.bytes += s.peekedBytes
	s.peeked, s.peekedBytes = 0, 0
	s.ctr.Messages.Set(s.msgs)
	s.ctr.Bytes.Set(s.bytes)
	if !s.lossy {
		s.wakePublisher(old)
	}
	return nil
}

// wakePublisher wakes a parked back-pressure publisher if this release,
// from position old to s.head, is the one it waits for: the position it
// needs the slowest subscriber to reach lies after old and at or before
// the new position. Another subscriber's release, or one that still falls
// short, would wake it for nothing. The position store comes before the
// waiter set's load and the publisher stores the position it waits for
// before it registers, so a release that matters either finds it
// registered (and its target) or is seen by its check before it parks.
func (s *Subscriber) wakePublisher(old uint64) {
	l := s.q.publisherWake
	if !l.Waiters.Any() {
		return
	}
	if d := s.q.target.Load() - old; d == 0 || d > s.head-old {
		return
	}
	s.wakeIfWaiting(s.q, l, s.e)
}

// Rewind forgets the messages peeked since the last Release: the next
// Peek returns them again.
func (s *Subscriber) Rewind() {
	if s.enter("Rewind") != nil {
		return
	}
	defer s.g.Exit()
	s.pos, s.seq, s.peeked, s.peekedBytes, s.unverified = s.head, s.headSeq, 0, 0, false
}

// TryRecv copies the next message into buf and releases it, returning its
// length, or ErrEmpty (unwrapped) without blocking. If buf is too small it
// returns ErrShortBuffer and leaves the message. Messages peeked and not
// released are released along with it. In a lossy queue it returns a
// *LostError when the subscriber was overwritten (or the message was while
// it was being copied); the next call continues with the oldest message
// still whole.
func (s *Subscriber) TryRecv(buf []byte) (_ int, err error) {
	if err := s.enter("TryRecv"); err != nil {
		return 0, err
	}
	defer s.g.Exit()
	if s.q.guarded {
		defer s.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	n, err := s.tryRecv(buf)
	return n, opError("TryRecv", err)
}

func (s *Subscriber) tryRecv(buf []byte) (int, error) {
	m, err := s.peek()
	if err != nil {
		return 0, err
	}
	if len(m) > len(buf) {
		s.unpeek(m)
		return 0, fmt.Errorf("%w: message of %d bytes, buffer of %d", ErrShortBuffer, len(m), len(buf))
	}
	n := copy(buf, m)
	if err := s.release(); err != nil {
		return 0, err
	}
	return n, nil
}

// unpeek puts the message m, the last one peeked, back.
func (s *Subscriber) unpeek(m []byte) {
	s.pos -= layout.PubSubRecordSize(len(m))
	s.seq--
	s.peeked--
	s.peekedBytes -= uint64(len(m))
	s.unverified = s.unverified && s.pos != s.viewStart
}

// TryRecvBatch calls fn with up to max messages, in order, then releases
// them with one store. It returns how many it handed out, and ErrEmpty if
// there were none. In a back-pressure queue the slices passed to fn alias
// the ring; in a lossy queue they are checked copies. Either way they are
// valid only during the call; fn must not call Close on this subscriber or
// its queue. If fn returns an error, the messages before that one are
// released, that one and the rest are not, and the error is returned. A
// lossy subscriber overwritten part way returns what it handed out and a
// *LostError.
func (s *Subscriber) TryRecvBatch(max int, fn func(msg []byte) error) (_ int, err error) {
	if err := s.enter("TryRecvBatch"); err != nil {
		return 0, err
	}
	defer s.g.Exit()
	if max <= 0 {
		return 0, opError("TryRecvBatch", fmt.Errorf("%w: max %d", ErrInvalid, max))
	}
	if s.q.guarded {
		defer s.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	n := 0
	for n < max {
		m, err := s.peek()
		if err == ErrEmpty && n > 0 {
			break
		}
		if err != nil {
			if rerr := s.release(); rerr != nil {
				err = rerr
			}
			return n, opError("TryRecvBatch", err)
		}
		if s.lossy {
			if m, err = s.copyChecked(m); err != nil {
				return n, opError("TryRecvBatch", err)
			}
		}
		if err := fn(m); err != nil {
			s.unpeek(m)
			if rerr := s.release(); rerr != nil {
				return n, opError("TryRecvBatch", rerr)
			}
			return n, err
		}
		n++
		if s.lossy {
			// Checked and delivered: released now, so that an overwrite
			// found later in the batch does not count it as lost.
			s.release()
		}
	}
	return n, opError("TryRecvBatch", s.release())
}

// copyChecked copies the view m of a lossy ring into the subscriber's
// scratch buffer and checks that the publisher did not overwrite it (nor
// the messages peeked before it) meanwhile.
func (s *Subscriber) copyChecked(m []byte) ([]byte, error) {
	if s.scratch == nil {
		s.scratch = make([]byte, s.maxMsg)
	}
	c := s.scratch[:copy(s.scratch, m)]
	if err := s.verify(); err != nil {
		return nil, err
	}
	return c, nil
}

// Recv copies the next message into buf and releases it, waiting while
// there is none until ctx ends or the subscriber is closed. It returns
// io.EOF once the publisher has closed and every message it committed has
// been received (a publisher that attaches later continues the stream,
// which the next Recv returns). It fails with ErrPeerDead if there is no
// message and the publisher died without detaching (a new publisher may
// attach; Recv may be called again). In a lossy queue it returns a
// *LostError, without waiting, when the subscriber was overwritten.
func (s *Subscriber) Recv(ctx context.Context, buf []byte) (_ int, err error) {
	if err := s.enter("Recv"); err != nil {
		return 0, err
	}
	defer s.g.Exit()
	if s.q.guarded {
		defer s.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	for {
		n, err := s.tryRecv(buf)
		if err != ErrEmpty {
			return n, opError("Recv", err)
		}
		if err := s.waitData(ctx); err != nil {
			return 0, opError("Recv", err)
		}
	}
}

// waitData waits, after a peek found no message, until the tail moves or
// the stream ends (io.EOF).
func (s *Subscriber) waitData(ctx context.Context) error {
	if s.ended() {
		return io.EOF
	}
	q := s.q
	return q.waitFor(ctx, s.g, q.subscriberWake, s.e, func() bool {
		return q.tail.Load() != s.pos || q.pubState.Load() == layout.EntryDetached
	}, func() error { return q.peerDead(layout.PubSubPublisherEntry) })
}

// ended reports the end of the stream: the publisher detached cleanly and
// everything it committed has been peeked. The publisher stores its last
// tail before its detached state, so the tail loaded after seeing that
// state is final.
func (s *Subscriber) ended() bool {
	return s.q.pubState.Load() == layout.EntryDetached && s.q.tail.Load() == s.pos
}

// Close detaches the subscriber; a back-pressure publisher stops waiting
// for it. Close may be called from any goroutine: a call blocked in Recv
// or PeekWait returns ErrClosed, and Close returns after it.
func (s *Subscriber) Close() (err error) {
	if s == nil || s.g == nil {
		return opError("Close", errNilHandle)
	}
	s.g.Close(func() { err = s.teardown() })
	return err
}

// teardown detaches the subscriber, once no call is in flight, and forgets
// the handle last (see Publisher.teardown).
func (s *Subscriber) teardown() (err error) {
	defer func() {
		s.q.mu.Lock()
		delete(s.q.subscribers, s)
		s.q.mu.Unlock()
	}()
	if s.q.guarded {
		defer s.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	err = s.e.Detach()
	if !s.lossy {
		s.wakeIfWaiting(s.q, s.q.publisherWake, nil)
	}
	return opError("Close", err)
}
