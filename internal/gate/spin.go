package gate

import (
	"context"

	"github.com/shmq/shmq/notify"
)

// Spin runs the spin phase of a wait on l for a call admitted by g: it
// checks ready as l.Spin does under policy p, but also ends when ctx does
// or g closes (a long Spin policy would otherwise outlast both), looking
// at them every 64 checks. It reports whether ready became true, or the
// reason the wait must end (closed, or ctx's error); (false, nil) means
// the spin ran out and the caller parks.
func (g *Gate) Spin(ctx context.Context, l notify.Line, p notify.Policy, ready func() bool) (bool, error) {
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
var ErrClosed = errClosed{}

type errClosed struct{}

func (errClosed) Error() string { return "gate closed" }
