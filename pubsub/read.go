package pubsub

import (
	"fmt"
	"runtime"

	"github.com/shmq/shmq/layout"
)

// How a subscriber reads: where it starts, how it walks records, and in a
// lossy queue how it detects that the publisher overwrote what it reads
// and where it resumes. Distances are taken from positions the subscriber
// knows, so that positions may wrap around 2^64.

// peek returns the next message after s.pos and moves past it. In a lossy
// queue it checks, after reading the record's header and before handing
// out anything derived from it, that the publisher has not overwritten
// the record; what fails that check is reported as lost, whatever the
// header said.
func (s *Subscriber) peek() ([]byte, error) {
	q := s.q
	for {
		if s.pos == s.tailCache {
			if err := s.loadTail(); err != nil {
				return nil, err
			}
			if s.pos == s.tailCache {
				s.stalls++
				s.ctr.Stalls.Set(s.stalls)
				return nil, ErrEmpty
			}
		}
		length, typ, seq := q.header(s.pos)
		size, padding, err := layout.CheckPubSubRecord(length, typ, q.idx(s.pos), s.tailCache-s.pos, s.cap, s.maxMsg)
		if err == nil && seq != s.seq {
			err = fmt.Errorf("%w: record at position %d has sequence number %d, expected %d", ErrCorrupt, s.pos, seq, s.seq)
		}
		if s.lossy {
			s.rf.fence()
			if q.intent.Load()-s.pos > s.cap {
				// Torn: the header was being overwritten as it was read.
				if err := s.lapped(); err != nil {
					return nil, err
				}
				continue
			}
		}
		if err != nil {
			return nil, err
		}
		at := s.pos
		s.pos += size
		if padding {
			continue
		}
		s.seq++
		n := uint64(length) - layout.PubSubRecordHeaderSize
		s.peeked++
		s.peekedBytes += n
		if s.lossy && !s.unverified {
			s.unverified, s.viewStart = true, at
		}
		return q.payload(at, n), nil
	}
}

// loadTail refreshes the cached tail and validates it: it never moves
// back, and in a back-pressure queue never runs more than a ring ahead of
// the subscriber's released position. (A lossy subscriber more than a ring
// behind is overwritten; peek notices it through the intent.)
func (s *Subscriber) loadTail() error {
	t := s.q.tail.Load()
	switch {
	case t%layout.PubSubRecordAlign != 0 || int64(t-s.tailCache) < 0:
		return fmt.Errorf("%w: tail moved from %d to %d", ErrCorrupt, s.tailCache, t)
	case !s.lossy && t-s.head > s.cap:
		return fmt.Errorf("%w: tail %d is more than a %d-byte ring ahead of subscriber position %d", ErrCorrupt, t, s.cap, s.head)
	}
	s.tailCache = t
	return nil
}

// verify checks that the publisher of a lossy queue has not overwritten
// the records from the first view handed out since the last check on,
// which covers every view since and every copy made of them; it returns a
// *LostError, having resumed at the oldest record, if it has.
func (s *Subscriber) verify() error {
	s.rf.fence()
	if s.q.intent.Load()-s.viewStart > s.cap {
		return s.lapped() // at least the view at viewStart is lost
	}
	s.unverified = false
	return nil
}

// lapped resumes a lossy subscriber that the publisher has overwritten at
// the oldest record still whole, and returns a *LostError with the number
// of messages it skipped from its released position on (those peeked
// included), or nil if it skipped none (only padding). The oldest position
// is loaded after the intent, which the publisher stores after it, so the
// record there was whole when the intent was loaded; its sequence number
// is read, then checked against the intent again.
func (s *Subscriber) lapped() error {
	q := s.q
	var last [3]uint64
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt%64 == 63 {
			runtime.Gosched()
		}
		in := q.intent.Load()
		o := q.oldest.Load()
		t := q.tail.Load()
		if o%layout.PubSubRecordAlign != 0 || t%layout.PubSubRecordAlign != 0 || t-o > s.cap || in-o > s.cap {
			// Moved on between the loads, or garbage: look again, unless
			// nothing moved since the last look.
			if err := stuck(&last, attempt, in, o, t); err != nil {
				return err
			}
			continue
		}
		seq := q.seqAt(o)
		s.rf.fence()
		if in2 := q.intent.Load(); in2-o > s.cap {
			if err := stuck(&last, attempt, in2, o, t); err != nil {
				return err
			}
			continue
		}
		lost := seq - s.headSeq
		if int64(lost) < 0 {
			return fmt.Errorf("%w: the oldest record, at position %d, has sequence number %d, before the %d expected",
				ErrCorrupt, o, seq, s.headSeq)
		}
		s.head, s.headSeq, s.pos, s.seq, s.tailCache = o, seq, o, seq, t
		s.peeked, s.peekedBytes, s.unverified = 0, 0, false
		s.w.pos.Store(o)
		s.w.seq.Store(seq)
		if lost == 0 {
			return nil
		}
		s.lost += lost
		s.w.lost.Store(s.lost)
		return &LostError{Count: lost}
	}
	return fmt.Errorf("%w: no whole record found after %d attempts (tail, intent and oldest inconsistent)", ErrCorrupt, maxAttempts)
}

// startPinned places a new subscriber of a back-pressure queue. It pins a
// position first: it stores a position at or after limit - capacity, then
// loads the limit again, and retries if the publisher raised it past the
// position meanwhile. Once pinned, the publisher does not overwrite the
// records from there on (see Publisher.scan), so the subscriber may walk
// them to find its start.
func (s *Subscriber) startPinned(from Start) error {
	q := s.q
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt%64 == 63 {
			runtime.Gosched()
		}
		lim := q.limit.Load()
		t := q.tail.Load()
		floor := lim - s.cap
		if t%layout.PubSubRecordAlign != 0 || floor%layout.PubSubRecordAlign != 0 || t-floor > s.cap {
			return fmt.Errorf("%w: tail %d and limit %d in a %d-byte ring", ErrCorrupt, t, lim, s.cap)
		}
		pos := floor
		if from == FromNext {
			pos = t
		}
		s.w.pos.Store(pos)
		if d := q.limit.Load() - s.cap - pos; d != 0 && int64(d) > 0 {
			continue // the publisher moved past pos before it could see it
		}
		if from == FromLatest {
			var err error
			if pos, err = s.latest(pos, t); err != nil {
				return err
			}
		}
		s.place(pos, q.seqAt(pos), t)
		return nil
	}
	return fmt.Errorf("%w: could not pin a position in %d attempts", ErrCorrupt, maxAttempts)
}

// startLossy places a new subscriber of a lossy queue: it reads where to
// start (walking the records from the oldest one for FromLatest) and then
// checks that the publisher did not overwrite what it read, retrying if it
// did.
func (s *Subscriber) startLossy(from Start) error {
	q := s.q
	var last [3]uint64
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt%64 == 63 {
			runtime.Gosched()
		}
		o := q.oldest.Load()
		t := q.tail.Load()
		if o%layout.PubSubRecordAlign != 0 || t%layout.PubSubRecordAlign != 0 {
			return fmt.Errorf("%w: oldest %d, tail %d", ErrCorrupt, o, t)
		}
		if t-o > s.cap {
			// The publisher ran a ring between the loads, or garbage.
			if err := stuck(&last, attempt, q.intent.Load(), o, t); err != nil {
				return err
			}
			continue
		}
		pos, base := o, o
		var err error
		switch from {
		case FromNext:
			pos, base = t, t
		case FromLatest:
			pos, err = s.latest(o, t)
		}
		seq := q.seqAt(pos)
		s.rf.fence()
		if in := q.intent.Load(); in-base > s.cap {
			// Overwritten while it was read, or garbage.
			if err := stuck(&last, attempt, in, o, t); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		s.w.pos.Store(pos)
		s.place(pos, seq, t)
		return nil
	}
	return fmt.Errorf("%w: could not find a start in %d attempts", ErrCorrupt, maxAttempts)
}

// place sets a new subscriber's position and the sequence number expected
// there, and records them in its entry.
func (s *Subscriber) place(pos, seq, tail uint64) {
	s.head, s.headSeq, s.pos, s.seq, s.tailCache = pos, seq, pos, seq, tail
	s.w.pos.Store(pos)
	s.w.seq.Store(seq)
}

// latest walks the committed records from position from to the tail t and
// returns the position of the last message among them, or t if there is
// none. In a lossy queue the caller checks afterwards that nothing it read
// was overwritten, and ignores the error if it was.
func (s *Subscriber) latest(from, t uint64) (uint64, error) {
	q := s.q
	last := t
	for p := from; p != t; {
		if t-p > s.cap {
			return 0, fmt.Errorf("%w: walk from %d passed the tail %d", ErrCorrupt, from, t)
		}
		length, typ, _ := q.header(p)
		size, padding, err := layout.CheckPubSubRecord(length, typ, q.idx(p), t-p, s.cap, s.maxMsg)
		if err != nil {
			return 0, err
		}
		if !padding {
			last = p
		}
		p += size
	}
	return last, nil
}

// stuck is called by a lossy subscriber's retry loop with the intent,
// oldest and tail it found inconsistent. The publisher moving on explains
// an inconsistency once; the same values found twice in a row cannot be
// explained by progress and are corruption.
func stuck(last *[3]uint64, attempt int, in, o, t uint64) error {
	cur := [3]uint64{in, o, t}
	if attempt > 0 && cur == *last {
		return fmt.Errorf("%w: intent %d, oldest %d and tail %d are inconsistent", ErrCorrupt, in, o, t)
	}
	*last = cur
	return nil
}
