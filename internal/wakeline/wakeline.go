// Package wakeline binds the wake protocol of package notify to a segment's
// wake lines, for the queue packages (spsc, mpmc, pubsub): where a line's
// words are, whether the segment uses the sleeper bit, and the publishing
// side's periodic sweep of dead registrants (layout/LAYOUT.md section 6),
// and the waiting side's spin inside a call that a gate admitted.
package wakeline

import (
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/notify"
	"github.com/shmq/shmq/ring"
)

// New returns the Line of the wake line at offset off of seg, whose waiters
// register in waiter set set, with a spin budget of its own (make one per
// queue handle side) and the sleeper bit if the segment's header has
// layout.FlagSleeperBit.
func New(seg *ring.Segment, off uint64, set int) (notify.Line, error) {
	seq, err := seg.Uint32(off + layout.WakeSeq)
	if err != nil {
		return notify.Line{}, err
	}
	words, err := seg.WaiterSet(set)
	if err != nil {
		return notify.Line{}, err
	}
	l := notify.NewLine(seq, notify.NewWaiterSet(words))
	l.SleeperBit = seg.Header().Flags&layout.FlagSleeperBit != 0
	return l, nil
}

// A Waker is the publishing side's half of the wake protocol, kept by each
// handle that publishes. The zero value is ready; it is not safe for
// concurrent use.
type Waker struct {
	lastSweep time.Time // when the waiter set was last checked for dead registrants
}

// Wake is called after the store that publishes, only while l's waiter set
// is not empty (callers test l.Waiters.Any() first, inlined, so that a
// publish with no waiter costs one load). It wakes l's sleepers through b,
// advancing e's wake counter if it made a wake (e is nil once the publisher
// has detached), and at most once per period checks the registered entries
// for dead holders and clears their registrations (Segment.ReapWaiter).
//
// The sweep runs whether or not this call woke anyone: with the sleeper
// bit, one wake clears the bit, so a waiter killed while parked is woken at
// most once, and until the sweep its registration costs each publish this
// call (a clock read and a load of the wake word), not a system call.
func (w *Waker) Wake(seg *ring.Segment, l notify.Line, b notify.Backend, e *ring.Entry, period time.Duration) {
	n, _ := l.WakeIfWaiting(b) // an error only means no one was there to wake
	if n > 0 && e != nil {
		e.Wakes.Store(e.Wakes.Load() + 1)
	}
	if w.SweepDue(period) {
		l.Waiters.Members(func(i int) { seg.ReapWaiter(i) })
	}
}

// SweepDue reports whether period has passed since it last reported true,
// for a publisher that sweeps other waiter sets on the same schedule (MPMC
// locked mode's).
func (w *Waker) SweepDue(period time.Duration) bool {
	now := time.Now()
	if now.Sub(w.lastSweep) < period {
		return false
	}
	w.lastSweep = now
	return true
}
