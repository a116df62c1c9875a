package gate

import "context"

// Spin runs the spin phase of a wait for a call admitted by g: spin (such
// as a notify.Line's Spin under a policy) checks ready until it gives up,
// and Spin makes it also end when ctx does or g closes (a long spin policy
// would otherwise outlast both), looking at them every 64 checks. It
// reports whether ready became true, or the reason the wait must end
// (closed, or ctx's error); (false, nil) means the spin ran out and the
// caller parks.
func (g *Gate) Spin(ctx context.Context, spin func(ready func() bool) bool, ready func() bool) (bool, error) {
	n := 0
	stopped := false
	ok := spin(func() bool {
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
