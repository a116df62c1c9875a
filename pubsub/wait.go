package pubsub

import (
	"context"
	"time"

	"github.com/shmq/shmq/internal/gate"
	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/notify"
	"github.com/shmq/shmq/ring"
)

// Wait tunes how Send and Recv wait for room or messages. The zero value
// suits a typical service: spin and yield for notify.DefaultSpin, then
// park on a futex (a polling back-off where there is none), so an idle
// blocked side uses no measurable CPU and a busy stream makes no system
// calls.
type Wait = notify.Policy

func newWakeLine(seg *ring.Segment, off uint64, set int) (notify.Line, error) {
	seq, err := seg.Uint32(off + layout.WakeSeq)
	if err != nil {
		return notify.Line{}, err
	}
	words, err := seg.WaiterSet(set)
	if err != nil {
		return notify.Line{}, err
	}
	return notify.Line{Seq: seq, Waiters: notify.NewWaiterSet(words), SleeperBit: seg.Header().Flags&layout.FlagSleeperBit != 0}, nil
}

// waker is the publishing side's half of the wake protocol, kept by each
// handle: the publisher wakes subscribers after a commit, a subscriber
// wakes the back-pressured publisher after a release.
type waker struct {
	lastSweep time.Time // when the waiter set was last checked for dead registrants
}

// wakeIfWaiting is called after the store that publishes (the tail, a
// subscriber's position). With no waiter registered it costs one load per
// 64 registry entries and no system call; otherwise one bump of the line's
// futex word and one wake system call for all the waiters, however many.
// While it keeps finding waiters it checks, once per livenessPeriod, that
// they are alive: a waiter killed while parked leaves its registration,
// and clearing it is what brings a stream back to one load per publish
// (with the sleeper bit, the dead waiter costs one wake, then a clock read
// per publish until the sweep). e is the caller's registry entry, whose wake counter it advances; nil once
// the caller has detached.
func (w *waker) wakeIfWaiting(q *Queue, l notify.Line, e *ring.Entry) {
	n, _ := l.WakeIfWaiting(q.wait.Backend) // an error only means no one was there to wake
	if n > 0 && e != nil {
		e.Wakes.Store(e.Wakes.Load() + 1)
	}
	// Sweep even without a wake: with the sleeper bit, one wake clears
	// it, and a waiter killed while registered would then be woken, and
	// found dead, never again.
	if now := time.Now(); now.Sub(w.lastSweep) >= livenessPeriod {
		w.lastSweep = now
		l.Waiters.Members(func(i int) { q.seg.ReapWaiter(i) })
	}
}

// livenessPeriod bounds each park: a dead peer wakes no one, so a waiter
// checks for one this often. It is how soon a back-pressured publisher
// drops a subscriber that died holding it back.
const livenessPeriod = 50 * time.Millisecond

// waitFor returns nil once ready reports true, ErrClosed when g closes, the
// context's error when ctx ends, or check's error, which it calls after
// each park of at most livenessPeriod. own is the waiting side's registry
// entry, whose wait counter it advances.
func (q *Queue) waitFor(ctx context.Context, g *gate.Gate, l notify.Line, own *ring.Entry, ready func() bool, check func() error) error {
	if ok, err := g.Spin(ctx, func(r func() bool) bool { return l.Spin(q.wait, r) }, ready); ok || err != nil {
		return closedOr(g.Closed(), err)
	}
	bctx, release := g.Bind(ctx)
	defer release()
	parked, err := l.Park(bctx, q.wait, own.Index(), livenessPeriod, ready, check)
	if parked {
		own.Waits.Store(own.Waits.Load() + 1)
	}
	return closedOr(g.Closed(), err)
}
