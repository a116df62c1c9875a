package localq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/spsc"
)

// spscSource reads an SPSC queue as its one consumer. The consumer API
// frees messages only all at once (Release frees everything peeked), so a
// prefix is freed by rewinding, peeking the prefix again, releasing, and
// peeking the rest again; the records stay where they are, so this costs a
// header check per record and no copy.
//
// A message's id is the byte position of its record, which the consumer
// reports (Consumer.LastPosition): a restarted consumer finds the records
// its predecessor had not released at the same positions.
type spscSource struct {
	q       *spsc.Queue
	c       *spsc.Consumer
	name    string
	created int64

	ends []uint64 // end position of each held record, in order
}

func openSPSCSource(ctx context.Context, loc ring.Location, name string, cfg Config) (Source, error) {
	q, err := spsc.OpenOrCreate(ctx, loc, spsc.Config{Capacity: cfg.Capacity, AcceptExisting: true})
	if err != nil {
		return nil, err
	}
	c, err := q.Consumer()
	if err != nil {
		q.Close()
		return nil, err
	}
	return &spscSource{q: q, c: c, name: name, created: q.Segment().Header().CreatedNano}, nil
}

func (s *spscSource) Next(buf []byte) ([]byte, MsgID, error) {
	m, err := s.c.Peek()
	if err != nil {
		if err == spsc.ErrEmpty {
			return nil, MsgID{}, ErrEmpty
		}
		return nil, MsgID{}, err
	}
	pos, ok := s.c.LastPosition()
	if !ok {
		return nil, MsgID{}, fmt.Errorf("localq: no position for the message peeked from %s", s.name)
	}
	s.ends = append(s.ends, pos+layout.RecordSize(len(m)))
	// The message lies in the shared ring: copy it under the guard that
	// turns a truncation of the file into an error.
	err = s.q.Guard(func() error {
		buf = append(buf[:0], m...)
		return nil
	})
	return buf, MsgID{Queue: s.name, Created: s.created, Pos: pos}, err
}

// Wait parks in PeekWait until a message is committed, and rewinds: it
// runs only while nothing is held, so the next Peek returns that message.
// While no producer is attached (the last one closed, io.EOF, or died,
// ErrPeerDead) it polls for the next one.
func (s *spscSource) Wait(ctx context.Context) error {
	for {
		_, err := s.c.PeekWait(ctx)
		switch {
		case err == nil:
			s.c.Rewind()
			return nil
		case errors.Is(err, spsc.ErrPeerDead), errors.Is(err, io.EOF):
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		return err
	}
}

func (s *spscSource) ReleasePrefix(n int) (bool, error) {
	switch {
	case n <= 0:
		return true, nil
	case n > len(s.ends):
		return false, fmt.Errorf("localq: release of %d messages, %d held", n, len(s.ends))
	case n == len(s.ends):
		if err := s.c.Release(); err != nil {
			return false, err
		}
		s.ends = s.ends[:0]
		return true, nil
	}
	rest := len(s.ends) - n
	s.c.Rewind()
	for i := 0; i < n; i++ {
		if _, err := s.c.Peek(); err != nil {
			return false, fmt.Errorf("localq: peeking a held message again: %w", err)
		}
	}
	if err := s.c.Release(); err != nil {
		return false, err
	}
	for i := 0; i < rest; i++ {
		if _, err := s.c.Peek(); err != nil {
			return false, fmt.Errorf("localq: peeking a held message again: %w", err)
		}
	}
	s.ends = append(s.ends[:0], s.ends[n:]...)
	return true, nil
}

func (s *spscSource) Held() int { return len(s.ends) }

// Redelivered is 0: a restarted SPSC consumer gets what its predecessor had
// not released, but cannot tell which of it was sent; the ids make
// JetStream drop the repeats.
func (s *spscSource) Redelivered() uint64 { return 0 }

func (s *spscSource) MaxMessage() int { return s.q.MaxMessage() }

func (s *spscSource) Close() error {
	s.c.Close()
	return s.q.Close()
}

type spscSink struct {
	q *spsc.Queue
	p *spsc.Producer
}

func openSPSCSink(ctx context.Context, loc ring.Location, cfg Config) (Sink, error) {
	q, err := spsc.OpenOrCreate(ctx, loc, spsc.Config{Capacity: cfg.Capacity, AcceptExisting: true})
	if err != nil {
		return nil, err
	}
	p, err := q.Producer()
	if err != nil {
		q.Close()
		return nil, err
	}
	return &spscSink{q: q, p: p}, nil
}

func (s *spscSink) TrySend(msg []byte) error {
	err := s.p.TrySend(msg)
	if err == spsc.ErrFull {
		return ErrFull
	}
	return err
}

func (s *spscSink) Send(ctx context.Context, msg []byte) error {
	for {
		err := s.p.Send(ctx, msg)
		if !errors.Is(err, spsc.ErrPeerDead) {
			return err
		}
		// The consumer died with the ring full; a new one may attach.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *spscSink) MaxMessage() int { return s.q.MaxMessage() }

func (s *spscSink) Close() error {
	s.p.Close()
	return s.q.Close()
}
