package notify

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
)

// Line is a parking place in shared memory for one side of a queue: a
// sequence word that waiters park on, and the number of waiters registered.
//
// The protocol: a waiter registers (Waiters++), reads Seq, re-checks its
// condition, and parks on Seq only if the condition still fails and Seq is
// unchanged. A publisher makes its change visible (a cursor or slot store),
// then loads Waiters and, only if it is non-zero, bumps Seq and wakes. All
// four steps are sequentially consistent atomics, each a full fence, so
// either the publisher sees the registration or the waiter's re-check sees
// the change: no wakeup is lost (spec/wake.pml model-checks this), and a
// publisher with no waiter makes no system call.
type Line struct {
	Seq     *atomic.Uint32
	Waiters *atomic.Uint32
}

// BoundedWaiter is implemented by backends that can bound a wait by a
// duration more cheaply than through a derived context (the futex backend
// makes the bound its timeout). Await uses it when it is there.
type BoundedWaiter interface {
	WaitAtMost(ctx context.Context, word *atomic.Uint32, old uint32, d time.Duration) error
}

// Policy says how a waiter waits: check its condition for Spin (spinning,
// then yielding the processor), then park on Backend.
type Policy struct {
	// Backend parks and wakes; nil means Default(). Both sides of a queue
	// must use backends that reach each other: futexes always do; an
	// eventfd or socket backend must be shared.
	Backend Backend
	// Spin is how long to check before parking; 0 means DefaultSpin, a
	// negative value parks at once, and a very large one never parks.
	Spin time.Duration
}

// DefaultSpin catches the next message of a busy stream and is short
// compared with a park and wake.
const DefaultSpin = 20 * time.Microsecond

// WithDefaults fills in the zero fields of p.
func (p Policy) WithDefaults() Policy {
	if p.Backend == nil {
		p.Backend = Default()
	}
	if p.Spin == 0 {
		p.Spin = DefaultSpin
	}
	return p
}

// WakeIfWaiting is the publisher's half of the protocol, called after the
// store that publishes. It reports whether a waiter was registered (and so
// whether it woke anyone).
func (l Line) WakeIfWaiting(b Backend) bool {
	if l.Waiters.Load() == 0 {
		return false
	}
	l.Seq.Add(1)
	b.Wake(l.Seq, 1<<30) // an error only means no one was there to wake
	return true
}

// Await is the waiter's half. It returns nil once ready reports true, an
// error wrapping ctx's when ctx ends, or the first error of check, which it
// calls after each park of at most period (a dead peer wakes no one, so the
// caller checks for one). parked reports whether it registered and parked
// at all, for the caller's statistics. ready runs in the spin loop and must
// be cheap.
func (l Line) Await(ctx context.Context, p Policy, period time.Duration, ready func() bool, check func() error) (parked bool, err error) {
	if p.Spin > 0 {
		deadline := time.Now().Add(p.Spin)
		for i := 0; ; i++ {
			if ready() {
				return false, nil
			}
			if i%128 == 127 {
				if time.Now().After(deadline) {
					break
				}
				runtime.Gosched()
			}
		}
	}
	l.Waiters.Add(1)
	defer l.Waiters.Add(^uint32(0))
	for {
		seq := l.Seq.Load()
		if ready() {
			return parked, nil
		}
		if err := ctx.Err(); err != nil {
			return parked, fmt.Errorf("notify: wait: %w", err)
		}
		parked = true
		var err error
		if b, ok := p.Backend.(BoundedWaiter); ok {
			err = b.WaitAtMost(ctx, l.Seq, seq, period)
		} else {
			pctx, cancel := context.WithTimeout(ctx, period)
			err = p.Backend.Wait(pctx, l.Seq, seq)
			cancel()
		}
		if err != nil && ctx.Err() != nil {
			return parked, fmt.Errorf("notify: wait: %w", ctx.Err())
		}
		if check != nil {
			if err := check(); err != nil {
				return parked, err
			}
		}
	}
}
