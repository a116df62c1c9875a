// Package sem provides a counting semaphore and a robust mutex whose state
// lives in memory shared between processes, in words supplied by the caller.
//
// # Protocol
//
// Both types use the same rule to never lose a wake-up. A waiter first
// registers (adds its registry entry to a shared [notify.WaiterSet]), then
// re-checks the condition, and only then parks through a [notify.Backend],
// passing the value of the word it checked. A releaser first publishes
// (changes the word), then reads the waiter set and makes a wake call only
// if it is not empty. Every step is a sync/atomic operation, and Go's atomics are
// sequentially consistent (each acts as a full fence), so of the two orders
// "register before publish" and "publish before register" one holds: in
// the first the releaser sees the registration and wakes; in the second
// the waiter's re-check sees the published change and does not park (and
// the backend's Wait returns at once if the word changed after the
// re-check). When no waiter is registered, a release makes no system call.
//
// # Hostile peers
//
// Any process that maps the words can write anything into them. Values
// outside the documented ranges are reported as [ErrCorrupt] (wrapped), and
// a garbage waiter set costs at most useless wake calls; nothing here
// panics or hangs forever because of shared-word contents, provided callers
// pass a ctx that can end.
package sem

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"

	"github.com/shmq/shmq/notify"
)

// Errors returned (wrapped with %w) by this package.
var (
	ErrCorrupt   = errors.New("sem: shared state holds an impossible value")
	ErrOverflow  = errors.New("sem: release would exceed the maximum count")
	ErrInvalid   = errors.New("sem: invalid argument")
	ErrOwnerDead = errors.New("sem: previous mutex owner died holding it")
	ErrNotLocked = errors.New("sem: unlock of a mutex not locked through this handle")
)

// MaxCount is the largest maximum a Semaphore accepts.
const MaxCount = 1<<31 - 1

// Spin budget bounds, in polls of the count word.
const (
	minSpin = 4
	maxSpin = 128
)

// Semaphore is a counting semaphore whose state is two 32-bit words in
// shared memory. Many processes may each hold their own Semaphore value over
// the same words; a Semaphore value is safe for concurrent use by multiple
// goroutines.
//
// A Release of n units is synchronized before the Acquire calls that take
// those units return, in the sense of the Go memory model (extended to all
// processes mapping the words).
type Semaphore struct {
	count   *atomic.Uint32   // shared; units available, in [0, max]; also the word waiters park on
	waiters notify.WaiterSet // shared; the registered (possibly parked) waiters
	max     uint32
	be      notify.Backend
	spin    atomic.Int32 // local; adaptive spin budget
	// WakeErrors counts wake calls that failed after a release was
	// published: the release stands (the units are there), and a waiter
	// that missed the wake finds them at its next bounded park.
	WakeErrors atomic.Uint64
}

// New returns a Semaphore over the shared count word and waiter set, with
// the given maximum count (1..MaxCount), parking through be. be may serve
// other words too (a wake meant for them costs an Eventfd's or Socket's
// waiters here a spurious return); a Socket wakes only the process
// listening at its Peer.
//
// New does not initialise the words: the process that creates the shared
// memory stores the initial count (and an empty set) before publishing it.
func New(count *atomic.Uint32, waiters notify.WaiterSet, max uint32, be notify.Backend) (*Semaphore, error) {
	if count == nil || be == nil || max == 0 || max > MaxCount {
		return nil, fmt.Errorf("%w: New(max=%d)", ErrInvalid, max)
	}
	s := &Semaphore{count: count, waiters: waiters, max: max, be: be}
	s.spin.Store(minSpin * 4)
	return s, nil
}

// Value returns a snapshot of the count, for display.
func (s *Semaphore) Value() uint32 { return s.count.Load() }

// try takes a unit if one is available.
func (s *Semaphore) try() (bool, error) {
	for {
		c := s.count.Load()
		if c > s.max {
			return false, fmt.Errorf("%w: count %d above maximum %d", ErrCorrupt, c, s.max)
		}
		if c == 0 {
			return false, nil
		}
		if s.count.CompareAndSwap(c, c-1) {
			return true, nil
		}
	}
}

// TryAcquire takes a unit without blocking and reports whether it did. It
// reports false if the count word is corrupt; Acquire reports why.
func (s *Semaphore) TryAcquire() bool {
	ok, _ := s.try()
	return ok
}

// Acquire takes a unit, blocking until one is available or ctx is done. It
// first tries in user space, then spins briefly (the budget adapts to how
// often spinning succeeds), then registers as waiter me (a registry entry
// the caller holds; one goroutine at a time per entry) and parks.
func (s *Semaphore) Acquire(ctx context.Context, me int) error {
	if ok, err := s.try(); ok || err != nil {
		return err
	}
	n := s.spin.Load()
	for range n {
		runtime.Gosched()
		if ok, err := s.try(); ok || err != nil {
			if ok {
				s.spin.Store(min(2*n, maxSpin))
			}
			return err
		}
	}
	s.spin.Store(max(n/2, minSpin))
	return s.park(ctx, me)
}

func (s *Semaphore) park(ctx context.Context, me int) error {
	s.waiters.Add(me) // register, then re-check (full fence: atomics are SC)
	for {
		ok, err := s.try()
		if ok {
			s.waiters.Remove(me)
			return nil
		}
		if err == nil {
			err = s.be.Wait(ctx, s.count, 0)
			if err == nil {
				continue
			}
		}
		s.waiters.Remove(me)
		// A wake meant for a unit may have reached this waiter; since it
		// leaves without the unit, hand the wake on to another waiter.
		if s.count.Load() > 0 && s.waiters.Any() {
			_ = s.be.Wake(s.count, 1)
		}
		return fmt.Errorf("sem: acquire: %w", err)
	}
}

// Release adds n units (1..MaxCount) and wakes up to n registered waiters;
// it makes no wake call when no waiter is registered. It fails with
// ErrOverflow, releasing nothing, if the count would exceed the maximum.
// Once the units are published Release succeeds: a failed wake is counted
// in WakeErrors, not returned, since the caller must not take back (or
// repeat) a release that stands.
func (s *Semaphore) Release(n int) error {
	if n <= 0 || n > MaxCount {
		return fmt.Errorf("%w: Release(%d)", ErrInvalid, n)
	}
	for {
		c := s.count.Load()
		if c > s.max {
			return fmt.Errorf("%w: count %d above maximum %d", ErrCorrupt, c, s.max)
		}
		if uint64(c)+uint64(n) > uint64(s.max) {
			return fmt.Errorf("%w: count %d + %d > %d", ErrOverflow, c, n, s.max)
		}
		if s.count.CompareAndSwap(c, c+uint32(n)) { // publish, then check waiters
			break
		}
	}
	if s.waiters.Any() {
		if w := s.waiters.Count(); w > 0 {
			if err := s.be.Wake(s.count, min(n, w)); err != nil {
				s.WakeErrors.Add(1)
			}
		}
	}
	return nil
}

// Reset sets the count from old to v, if it is still old, and wakes
// waiters if it grew. It is for repairing a count from an outside source of
// truth (a queue's cursors) while the caller knows no unit is in flight;
// it reports whether the count was old.
func (s *Semaphore) Reset(old, v uint32) bool {
	if v > s.max || !s.count.CompareAndSwap(old, v) {
		return false
	}
	if v > old && s.waiters.Any() {
		if w := s.waiters.Count(); w > 0 {
			if err := s.be.Wake(s.count, min(int(v-old), w)); err != nil {
				s.WakeErrors.Add(1)
			}
		}
	}
	return true
}
