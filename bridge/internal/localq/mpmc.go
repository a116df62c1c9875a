package localq

import (
	"context"
	"fmt"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/mpmc"
	"github.com/shmq/shmq/ring"
)

// mpmcDefaultMessage is the payload of mpmc's default slot, what shmq-demo
// creates when not told otherwise.
const mpmcDefaultMessage = mpmc.DefaultSlotSize - layout.SlotHeaderSize

// mpmcSource reads an MPMC queue as one of its consumers. Release frees
// every peeked slot at once, so only the whole held set can be freed
// (ReleasePrefix reports false for a shorter prefix).
//
// A message's id is the slot position it was committed at, which the
// consumer reports (Consumer.LastPosition). A message that a consumer
// died holding is requeued exactly one ring later (LAYOUT.md section
// 14.6), which the consumer reports too (Consumer.LastRequeued): it gets
// the id of the position it was first committed at, so JetStream drops it
// if the dead consumer had sent it. A message requeued twice gets the id
// of its second position, which is no other message's.
type mpmcSource struct {
	q       *mpmc.Queue
	c       *mpmc.Consumer
	name    string
	created int64
	slots   uint64

	held int // messages handed out by Next and not released

	// pending is the message Wait peeked and Next has not handed out yet:
	// the library holds it, the relay does not know it.
	pending    []byte
	hasPending bool
}

func openMPMCSource(ctx context.Context, loc ring.Location, name string, cfg Config) (Source, error) {
	q, err := openMPMC(ctx, loc, cfg)
	if err != nil {
		return nil, err
	}
	if q.Locked() {
		q.Close()
		return nil, fmt.Errorf("%w: %v is an MPMC queue in locked mode, which has no Peek: the bridge could not keep a message until JetStream acknowledged it", ErrUnsupported, loc)
	}
	c, err := q.Consumer()
	if err != nil {
		q.Close()
		return nil, err
	}
	return &mpmcSource{q: q, c: c, name: name, created: q.Segment().Header().CreatedNano, slots: q.Slots()}, nil
}

func openMPMC(ctx context.Context, loc ring.Location, cfg Config) (*mpmc.Queue, error) {
	mm := cfg.MaxMessage
	if mm == 0 {
		mm = mpmcDefaultMessage
	}
	return mpmc.OpenOrCreate(ctx, loc, mpmc.Config{Slots: cfg.Capacity, MaxMessage: uint32(mm), AcceptExisting: true})
}

func (s *mpmcSource) Next(buf []byte) ([]byte, MsgID, error) {
	m := s.pending
	if s.hasPending {
		s.pending, s.hasPending = nil, false
	} else {
		var err error
		if m, err = s.c.Peek(); err != nil {
			if err == mpmc.ErrEmpty {
				return nil, MsgID{}, ErrEmpty
			}
			return nil, MsgID{}, err
		}
	}
	s.held++
	// m is the message peeked last: Wait's peek, if any, was the last one.
	pos, ok := s.c.LastPosition()
	if !ok {
		return nil, MsgID{}, fmt.Errorf("localq: no position for the message peeked from %s", s.name)
	}
	if s.c.LastRequeued() {
		pos -= s.slots
	}
	// The message lies in the shared slot: copy it under the guard that
	// turns a truncation of the file into an error.
	err := s.q.Guard(func() error {
		buf = append(buf[:0], m...)
		return nil
	})
	return buf, MsgID{Queue: s.name, Created: s.created, Pos: pos}, err
}

// Wait parks in PeekWait until a message is committed, and keeps the
// message it took for the next call of Next.
func (s *mpmcSource) Wait(ctx context.Context) error {
	if s.hasPending {
		return nil
	}
	m, err := s.c.PeekWait(ctx)
	if err != nil {
		return err
	}
	s.pending, s.hasPending = m, true
	return nil
}

func (s *mpmcSource) ReleasePrefix(n int) (bool, error) {
	switch {
	case n <= 0:
		return true, nil
	case n > s.held:
		return false, fmt.Errorf("localq: release of %d messages, %d held", n, s.held)
	case n < s.held || s.hasPending:
		// Release would free the rest too, or the message Wait took.
		return false, nil
	}
	s.held = 0
	return true, s.c.Release()
}

func (s *mpmcSource) Held() int           { return s.held }
func (s *mpmcSource) Redelivered() uint64 { return s.c.Redelivered() }
func (s *mpmcSource) MaxMessage() int     { return s.q.MaxMessage() }

// Close detaches, unless messages are held: Consumer.Close would release
// them as consumed, so then the handle is left as a crash would leave it, and
// the process's exit makes the messages orphans that producers requeue (a
// lap of the ring later).
func (s *mpmcSource) Close() error {
	if n := s.held + btoi(s.hasPending); n > 0 {
		return fmt.Errorf("localq: %d message(s) not acknowledged by JetStream left to be requeued", n)
	}
	s.c.Close()
	return s.q.Close()
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

type mpmcSink struct {
	q *mpmc.Queue
	p *mpmc.Producer
}

func openMPMCSink(ctx context.Context, loc ring.Location, cfg Config) (Sink, error) {
	q, err := openMPMC(ctx, loc, cfg)
	if err != nil {
		return nil, err
	}
	p, err := q.Producer()
	if err != nil {
		q.Close()
		return nil, err
	}
	return &mpmcSink{q: q, p: p}, nil
}

func (s *mpmcSink) TrySend(msg []byte) error {
	err := s.p.TrySend(msg)
	if err == mpmc.ErrFull {
		return ErrFull
	}
	return err
}

func (s *mpmcSink) Send(ctx context.Context, msg []byte) error { return s.p.Send(ctx, msg) }
func (s *mpmcSink) MaxMessage() int                            { return s.q.MaxMessage() }

func (s *mpmcSink) Close() error {
	s.p.Close()
	return s.q.Close()
}
