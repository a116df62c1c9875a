package wakeline

import (
	"context"
	"errors"

	"github.com/shmq/shmq/internal/gate"
	"github.com/shmq/shmq/internal/spinhint"
	"github.com/shmq/shmq/notify"
)

// preSpin is how many times PreSpin checks its condition, with a spin hint
// after each: about a microsecond, the time a peer spinning on the other
// side takes to answer.
const preSpin = spinhint.PerMicrosecond

// PreSpin checks ready up to preSpin times, unless p parks at once, and
// reports whether it became true. It catches a peer that is about to
// publish before Spin reads the clock to bound itself: time.Now costs as
// much as a round trip on some VMs.
func PreSpin(p notify.Policy, ready func() bool) bool {
	if p.Spin < 0 {
		return false
	}
	for range preSpin {
		if ready() {
			return true
		}
		spinhint.Pause()
	}
	return false
}

// Spin runs the spin phase of a wait made inside a call that g admitted:
// l.Spin under p, which also ends when ctx does or g closes (a long spin
// policy would otherwise outlast both), looking at them every 64 checks. It
// reports whether ready became true, or why the wait must end
// (ErrClosed, or ctx's error); (false, nil) means the spin ran out and the
// caller parks.
//
// Every function value in it is called directly, so that ready stays on the
// caller's stack and a wait allocates nothing: a spin passed as a function
// value would make ready escape, and with it the caller's closure, at every
// wait.
func Spin(ctx context.Context, l notify.Line, p notify.Policy, g *gate.Gate, ready func() bool) (bool, error) {
	n := 0
	stopped := false
	ok := l.Spin(p, func() bool {
		if ready() {
			return true
		}
		if n++; n%64 == 0 && (g.Closed() || ctx.Err() != nil) {
			stopped = true
			return true
		}
		return false
	})
	switch {
	case !stopped:
		return ok, nil
	case g.Closed():
		return false, ErrClosed
	}
	return false, ctx.Err()
}

// ErrClosed is Spin's report that the gate closed; callers map it to their
// package's closed error.
var ErrClosed = errors.New("wakeline: gate closed")
