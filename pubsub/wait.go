package pubsub

import (
	"context"
	"time"

	"github.com/shmq/shmq/internal/gate"
	"github.com/shmq/shmq/internal/wakeline"
	"github.com/shmq/shmq/notify"
	"github.com/shmq/shmq/ring"
)

// Wait tunes how Send and Recv wait for room or messages. The zero value
// suits a typical service: spin and yield for notify.DefaultSpin, then
// park on a futex (a polling back-off where there is none), so an idle
// blocked side uses no measurable CPU and a busy stream makes no system
// calls.
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

// livenessPeriod bounds each park: a dead peer wakes no one, so a waiter
// checks for one this often. It is how soon a back-pressured publisher
// drops a subscriber that died holding it back.
const livenessPeriod = 50 * time.Millisecond

// waitFor returns nil once ready reports true, ErrClosed when g closes, the
// context's error when ctx ends, or check's error, which it calls after
// each park of at most livenessPeriod that ends with ready still false.
// own is the waiting side's registry entry, whose wait counter it advances.
func (q *Queue) waitFor(ctx context.Context, g *gate.Gate, l notify.Line, own *ring.Entry, ready func() bool, check func() error) error {
	if ok, err := wakeline.Spin(ctx, l, q.wait, g, ready); ok || err != nil {
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
