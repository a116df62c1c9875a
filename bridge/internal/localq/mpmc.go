package localq

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync/atomic"

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
// A message's id is its slot position. Peek does not report it: the slot
// index comes from where the peeked slice lies in the data region, and the
// lap from the dequeue cursor, which is past the position and less than a
// ring ahead of it while the slot is held. A message that a consumer died
// holding is requeued exactly one ring later (LAYOUT.md §14.6), and a
// requeued message is seen through Consumer.Redelivered; it gets the id of
// the position it was first committed at, so JetStream drops it if the dead
// consumer had sent it. A message requeued twice gets the id of its second
// position, which is no other message's.
type mpmcSource struct {
	q        *mpmc.Queue
	c        *mpmc.Consumer
	seg      *ring.Segment
	name     string
	created  int64
	data     []byte
	deq      *atomic.Uint64 // the dequeue cursor in the segment
	slots    uint64
	slotSize uint64

	held        int
	stashed     bool   // Wait took a message that Next has not handed out yet
	redelivered uint64 // c.Redelivered() when the last message was handed out
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
	seg := q.Segment()
	h := seg.Header()
	deq, err := seg.Uint64(h.Consumer + layout.CursorPosition)
	if err != nil {
		q.Close()
		return nil, err
	}
	c, err := q.Consumer()
	if err != nil {
		q.Close()
		return nil, err
	}
	return &mpmcSource{
		q: q, c: c, seg: seg, name: name, created: h.CreatedNano, data: seg.Data(), deq: deq,
		slots: h.Capacity, slotSize: uint64(h.SlotSize),
	}, nil
}

func openMPMC(ctx context.Context, loc ring.Location, cfg Config) (*mpmc.Queue, error) {
	mm := cfg.MaxMessage
	if mm == 0 {
		mm = mpmcDefaultMessage
	}
	return mpmc.OpenOrCreate(ctx, loc, mpmc.Config{Slots: cfg.Capacity, MaxMessage: uint32(mm)})
}

func (s *mpmcSource) Next(buf []byte) (_ []byte, _ MsgID, err error) {
	m, err := s.c.Peek()
	if err != nil {
		if err == mpmc.ErrEmpty {
			return nil, MsgID{}, ErrEmpty
		}
		return nil, MsgID{}, err
	}
	s.held++
	s.stashed = false
	if s.seg.Shrinkable() {
		defer s.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	off, ok := offsetIn(s.data, m)
	if !ok {
		return nil, MsgID{}, fmt.Errorf("%w: peeked message outside the data region", mpmc.ErrCorrupt)
	}
	slot := off / s.slotSize
	cur := s.deq.Load() - 1
	pos := cur - (cur-slot)&(s.slots-1)
	if r := s.c.Redelivered(); r != s.redelivered {
		s.redelivered = r
		pos -= s.slots
	}
	buf = append(buf[:0], m...)
	return buf, MsgID{Queue: s.name, Created: s.created, Pos: pos}, nil
}

// Wait uses Recv with an empty buffer: it parks until a message is
// committed, takes it and keeps it (ErrShortBuffer), and the next Peek
// returns it. (PeekWait will replace this.)
func (s *mpmcSource) Wait(ctx context.Context) error {
	_, err := s.c.Recv(ctx, nil)
	if errors.Is(err, mpmc.ErrShortBuffer) {
		s.stashed = true
		return nil
	}
	return err
}

func (s *mpmcSource) ReleasePrefix(n int) (bool, error) {
	switch {
	case n <= 0:
		return true, nil
	case n > s.held:
		return false, fmt.Errorf("localq: release of %d messages, %d held", n, s.held)
	case n < s.held:
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
	if s.held > 0 || s.stashed {
		return fmt.Errorf("localq: %d message(s) not acknowledged by JetStream left to be requeued", s.held+btoi(s.stashed))
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
