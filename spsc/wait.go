package spsc

import (
	"context"
	"time"

	"github.com/shmq/shmq/internal/gate"
	"github.com/shmq/shmq/internal/wakeline"
	"github.com/shmq/shmq/notify"
	"github.com/shmq/shmq/ring"
)

// Wait tunes how Send and Recv wait for space or data. The zero value suits
// a typical service: spin and yield (for at most notify.DefaultSpin, and
// only while spinning has recently caught the change: see
// notify.Policy.Spin), then park on a futex (a polling back-off where there
// is none), so an idle blocked side uses no measurable CPU and a busy
// stream makes no system calls.
type Wait = notify.Policy

// waker is the publishing side's half of the wake protocol, kept by each
// handle (internal/wakeline).
type waker struct{ wakeline.Waker }

// wakeIfWaiting is called by the publishing side after its store, while l's
// waiter set is not empty: it wakes l's sleepers and sweeps dead
// registrants once per livenessPeriod. e is the caller's registry entry, whose
// wake counter it advances; nil once the caller has detached.
func (w *waker) wakeIfWaiting(q *Queue, l notify.Line, e *ring.Entry) {
	w.Wake(q.seg, l, q.wait.Backend, e, livenessPeriod)
}

// livenessPeriod bounds each park, because a dead peer wakes no one: after
// it the waiter checks whether the peer's registry entry is dead.
const livenessPeriod = 100 * time.Millisecond

// waitFor returns nil once ready reports true, ErrClosed when g closes, the
// context's error when ctx ends, or ErrPeerDead when the peer at registry
// entry peer died without detaching. own is the waiting side's registry
// entry, whose wait counter it advances. spin, if not nil, stands in for
// ready while spinning: a cheaper check that may see what ready sees some
// checks late.
func (q *Queue) waitFor(ctx context.Context, g *gate.Gate, l notify.Line, own *ring.Entry, peer int, ready, spin func() bool) error {
	if spin == nil {
		spin = ready
	}
	if wakeline.PreSpin(q.wait, spin) {
		return nil
	}
	if ok, err := wakeline.Spin(ctx, l, q.wait, g, spin); ok || err != nil {
		return closedOr(g.Closed(), err)
	}
	bctx, release := g.Bind(ctx)
	defer release()
	parked, err := l.Park(bctx, q.wait, own.Index(), livenessPeriod, ready, func() error { return q.peerDead(peer) })
	if parked {
		own.Waits.Store(own.Waits.Load() + 1)
	}
	return closedOr(g.Closed(), err)
}
