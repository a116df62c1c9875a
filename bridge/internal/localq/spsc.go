package localq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
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
// A message's id is the byte position of its record. Peek does not report
// it, so it is computed from where the peeked slice lies in the ring: the
// record starts at the position handed out last, or after a padding record
// at the start of the ring.
type spscSource struct {
	q       *spsc.Queue
	c       *spsc.Consumer
	seg     *ring.Segment
	name    string
	created int64
	data    []byte
	mask    uint64

	head uint64   // released position
	next uint64   // position after the last record handed out
	ends []uint64 // end position of each held record, in order

	dropped uint64 // empty records consumed by Wait (no Go or C producer writes them)
}

func openSPSCSource(ctx context.Context, loc ring.Location, name string, cfg Config) (Source, error) {
	q, err := spsc.OpenOrCreate(ctx, loc, spsc.Config{Capacity: cfg.Capacity})
	if err != nil {
		return nil, err
	}
	c, err := q.Consumer()
	if err != nil {
		q.Close()
		return nil, err
	}
	// The consumer role is ours now: only we move the head.
	st, err := q.Stats()
	if err != nil {
		q.Close()
		return nil, err
	}
	seg := q.Segment()
	h := seg.Header()
	return &spscSource{
		q: q, c: c, seg: seg, name: name, created: h.CreatedNano,
		data: seg.Data(), mask: h.Capacity - 1,
		head: st.Head, next: st.Head,
	}, nil
}

func (s *spscSource) Next(buf []byte) (_ []byte, _ MsgID, err error) {
	m, err := s.c.Peek()
	if err != nil {
		if err == spsc.ErrEmpty {
			return nil, MsgID{}, ErrEmpty
		}
		return nil, MsgID{}, err
	}
	if s.seg.Shrinkable() {
		defer s.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	off, ok := offsetIn(s.data, m)
	if !ok || off < layout.RecordHeaderSize {
		return nil, MsgID{}, fmt.Errorf("%w: peeked message outside the ring", spsc.ErrCorrupt)
	}
	idx := off - layout.RecordHeaderSize
	pos := s.next + (idx-s.next)&s.mask
	s.next = pos + layout.RecordSize(len(m))
	s.ends = append(s.ends, s.next)
	buf = append(buf[:0], m...)
	return buf, MsgID{Queue: s.name, Created: s.created, Pos: pos}, nil
}

// Wait uses Recv with an empty buffer: it parks until a message is
// committed and then fails with ErrShortBuffer, leaving the message in the
// ring. (PeekWait will replace this.) It runs only while nothing is held,
// so the release that Recv makes after copying an empty record frees that
// record alone.
func (s *spscSource) Wait(ctx context.Context) error {
	for {
		_, err := s.c.Recv(ctx, nil)
		switch {
		case err == nil:
			// An empty record (which no Go or C producer writes): copied,
			// 0 bytes, and released.
			s.dropped++
			st, serr := s.q.Stats()
			if serr != nil {
				return serr
			}
			s.head, s.next = st.Head, st.Head
			continue
		case errors.Is(err, spsc.ErrShortBuffer):
			return nil
		case errors.Is(err, spsc.ErrPeerDead), errors.Is(err, io.EOF):
			// No producer now; one may attach later.
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
		s.head = s.next
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
	s.head = s.ends[n-1]
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
	q, err := spsc.OpenOrCreate(ctx, loc, spsc.Config{Capacity: cfg.Capacity})
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
