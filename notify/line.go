package notify

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Line is a parking place in shared memory for one side of a queue: a
// sequence word that waiters park on, and the set of registry entries
// whose holders are registered as waiters.
//
// The protocol: a waiter adds its entry to Waiters, reads Seq (setting its
// sleeper bit, see SleeperBit), re-checks its condition, and parks on Seq
// only if the condition still fails and Seq is unchanged. A publisher makes
// its change visible (a cursor or slot store), then loads Waiters and, only
// if the set is not empty (and the sleeper bit is set), advances Seq and
// wakes as many as are registered. Every step is a sequentially consistent
// atomic, a full fence, so either the publisher sees the registration (and
// the bit) or the waiter's re-check sees the change: no wakeup is lost
// (spec/wake.pml model-checks this), and a publisher with no waiter asleep
// makes no system call.
//
// A Line made by NewLine also carries the adaptive spin budget of the
// waiters that use it (see Policy.Spin); a Line literal shares one budget
// with every other such literal in the process.
type Line struct {
	Seq     *atomic.Uint32
	Waiters WaiterSet
	// SleeperBit: bit 0 of Seq says that a waiter is asleep or about to
	// sleep on it (layout.FlagSleeperBit). A waiter sets it before its
	// re-check; a publisher wakes only if it is set, and clears it as it
	// advances Seq. A waiter that registered but finds its condition true,
	// or was woken and has not left yet, then costs publishers no system
	// call: without the bit, every publish while the set was not empty
	// made one (40 per actual sleep with MPMC 2x2 on two cores).
	SleeperBit bool

	spin *spinState // adaptive spin budget; nil: sharedSpin
}

// NewLine returns the Line over seq and waiters with a spin budget of its
// own. Make one per handle on a queue side, not one per wait.
func NewLine(seq *atomic.Uint32, waiters WaiterSet) Line {
	return Line{Seq: seq, Waiters: waiters, spin: newSpinState()}
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
	// Backend parks and wakes; nil means Default(). One backend serves
	// both lines of a queue, and may serve any number of queues: futexes
	// and polling serve every word, an Eventfd wakes every waiter of every
	// word that waits on its eventfd, and a Socket every waiter in the
	// process listening at its Peer (those on other words return
	// spuriously). Both sides of a queue must use backends that reach each
	// other: futexes always do; an eventfd or socket backend must be
	// shared (the eventfd inherited or passed, the socket paths crossed).
	Backend Backend
	// Spin is how long to check before parking. 0 adapts: spin for up to
	// DefaultSpin while spinning has recently caught the condition, park
	// at once while it has not, and never have more goroutines of the
	// process spinning than it has processors to spare; a spin that has not
	// caught the condition within a couple of microseconds gives the
	// processor to other threads between checks (sched_yield), so that a
	// peer waiting for this CPU can run (spin.go). A positive value spins
	// that long every time, holding the processor (Spin: DefaultSpin is the
	// fixed policy that was the default before), a negative value parks at
	// once, and a very large one never parks.
	Spin time.Duration
}

// DefaultSpin is the longest adaptive spin: it catches the next message of
// a busy stream and is short compared with a park and wake.
const DefaultSpin = 20 * time.Microsecond

// WithDefaults fills in the zero fields of p. A zero Spin stays zero: it
// means the adaptive policy.
func (p Policy) WithDefaults() Policy {
	if p.Backend == nil {
		p.Backend = Default()
	}
	return p
}

// WakeIfWaiting is the publisher's half of the protocol, called after the
// store that publishes. It returns how many registered waiters it woke (0
// when the set was empty, without a system call), and the backend's error.
// A waiter counted here may not be parked yet; it then sees the change in
// its re-check, and at most consumes one spurious wake-up later.
func (l Line) WakeIfWaiting(b Backend) (int, error) {
	if !l.Waiters.Any() {
		return 0, nil
	}
	if l.SleeperBit {
		// No bit: every registered waiter has yet to set it, and re-checks
		// after it does. A failed CAS: another publisher cleared it after
		// our load, hence after our publication, and wakes the sleepers.
		s := l.Seq.Load()
		if s&1 == 0 || !l.Seq.CompareAndSwap(s, s+1) {
			return 0, nil
		}
	} else {
		l.Seq.Add(1)
	}
	n := l.Waiters.Count()
	if n == 0 {
		return 0, nil // all left between the two loads: they saw the change
	}
	return n, b.Wake(l.Seq, n)
}

// Await is the waiter's half, for the holder of registry entry me: Spin,
// then Park. It returns nil once ready reports true, ctx's error when ctx
// ends, or the first error of check, which it calls after each park of at
// most period that ends with ready still false (a dead peer wakes no one,
// so the caller checks for one).
// parked reports whether it registered and parked at all, for the caller's
// statistics. ready runs in the spin loop and must be cheap.
func (l Line) Await(ctx context.Context, p Policy, me int, period time.Duration, ready func() bool, check func() error) (parked bool, err error) {
	if l.Spin(p, ready) {
		return false, nil
	}
	return l.Park(ctx, p, me, period, ready, check)
}

// Spin checks ready for p.Spin (adaptively for 0), yielding the processor
// now and then, and reports whether it became true. It makes no system
// call and touches no shared word but what ready reads.
func (l Line) Spin(p Policy, ready func() bool) bool {
	switch {
	case p.Spin < 0:
		return ready()
	case p.Spin > 0:
		ok, _ := spinFor(p.Spin, false, ready)
		return ok
	}
	s := l.spin
	if s == nil {
		s = sharedSpin
	}
	return s.spin(ready)
}

// Park registers entry me as a waiter and parks until ready reports true
// (nil), ctx ends (ctx's error, unwrapped), or check fails (check's error).
// Each park lasts at most period; check runs after every park that ends
// with ready still false, before the next one, so a dead peer, who wakes
// no one, is noticed within about a period. A park that a wake ends with
// ready true returns without check: a check may be a system call (a
// registry lock test), and the wake is the common case. Park reports
// whether it parked at all.
func (l Line) Park(ctx context.Context, p Policy, me int, period time.Duration, ready func() bool, check func() error) (parked bool, err error) {
	l.Waiters.Add(me)
	defer l.Waiters.Remove(me)
	for {
		seq := l.arm()
		if ready() {
			return parked, nil
		}
		if err := done(ctx); err != nil {
			return parked, err
		}
		if parked && check != nil {
			if err := check(); err != nil {
				return parked, err
			}
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
		if err := done(ctx); err != nil {
			return parked, err
		}
		if err != nil && !isTimeout(err) {
			return parked, fmt.Errorf("notify: wait: %w", err)
		}
	}
}

// arm returns the value of Seq to park on. With SleeperBit it first sets
// bit 0, so that the re-check that follows sees every publication made by a
// publisher that found the bit clear and woke no one.
func (l Line) arm() uint32 {
	s := l.Seq.Load()
	if !l.SleeperBit {
		return s
	}
	for s&1 == 0 {
		if l.Seq.CompareAndSwap(s, s|1) {
			return s | 1
		}
		s = l.Seq.Load()
	}
	return s
}

// isTimeout reports whether err is a bounded park ending (the derived
// context's deadline), not a failure of the backend.
func isTimeout(err error) bool {
	return errors.Is(err, context.DeadlineExceeded)
}
