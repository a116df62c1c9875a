// Package openorcreate is the create-or-open loop that the spsc, mpmc and
// pubsub queues share, so that two processes can start in either order.
package openorcreate

import (
	"context"
	"errors"
	"fmt"

	"github.com/shmq/shmq/ring"
)

// Queue is what the loop needs of a queue handle.
type Queue interface{ Close() error }

// Do creates the queue at loc with create or, if one exists, opens it with
// open. An opened queue for which differs names a difference is closed and
// refused with ring.ErrMismatch unless accept is set. A segment that a
// shmq creator left half made (ring.ErrAbandoned) is removed and the loop
// starts again, as it does when the queue it found disappears before it
// is opened; anything else at loc fails with open's error and is left
// alone. The loop ends with ctx.
func Do[Q Queue](ctx context.Context, loc ring.Location, accept bool,
	create func() (Q, error), open func() (Q, error), differs func(Q) string) (Q, error) {
	var none Q
	for {
		q, err := create()
		if !errors.Is(err, ring.ErrExists) {
			return q, err
		}
		q, err = open()
		switch {
		case err == nil:
			if d := differs(q); d != "" && !accept {
				q.Close()
				return none, fmt.Errorf("%w: %v: %s", ring.ErrMismatch, loc, d)
			}
			return q, nil
		case errors.Is(err, ring.ErrAbandoned):
			if err := ring.RemoveAbandoned(loc); err != nil && !errors.Is(err, ring.ErrExists) && !errors.Is(err, ring.ErrNotFound) {
				return none, err
			}
		case !errors.Is(err, ring.ErrNotFound):
			return none, err
		}
		if err := ctx.Err(); err != nil {
			return none, err
		}
	}
}
