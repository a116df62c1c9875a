// Package notify parks and wakes goroutines, possibly in different
// processes, on a 32-bit word in shared memory.
//
// The protocol is the futex one. A waiter reads the word, decides it must
// wait for it to change, and calls Wait with the value it read. A waker
// first changes the word (any atomic write) and then calls Wake. Because Wait
// re-checks the word after it has made itself findable by Wake, a change made
// before Wake is never missed: either Wait sees the new value and returns at
// once, or Wake finds the waiter parked. Wait may also return spuriously, so
// callers always re-check their condition in a loop.
//
// In the terminology of the Go memory model, a Wake call that wakes a Wait
// call is synchronized before the return of that Wait call, and all backends
// rely on the atomic write of the word by the waker being sequentially
// consistent (as sync/atomic operations are).
//
// Backends:
//
//   - [Futex] (Linux): a shared futex on the word itself. Cheapest; Wake is a
//     single system call and is only needed when a waiter is registered.
//   - [Eventfd] (Linux): an eventfd shared by related processes (inherited
//     or passed with [SendFD]); waits park on the Go netpoller. A wake
//     reaches every waiter on the eventfd, whatever its word.
//   - [Socket]: a Unix domain socket per waiting process, for unrelated
//     processes and for systems without futexes.
//   - [Poll]: bounded back-off polling of the word; needs no kernel object.
//
// [Default] returns a futex backend on Linux and a polling backend
// elsewhere.
//
// On top of the backends, a [Line] is one side of a queue: the sequence
// word its waiters park on and the set of registered waiters, so that a
// publisher wakes only when someone waits; waiters spin first, adaptively
// by default (see [Policy]). A [Group] waits on the lines of several queues
// at once, with futex_waitv where the kernel has it.
package notify

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Backend parks and wakes waiters on a 32-bit word in shared memory.
//
// All methods are safe for concurrent use by multiple goroutines.
type Backend interface {
	// Wait parks the caller until it is woken by Wake, and returns nil
	// without parking when *word != old on entry. Returns without a wake
	// (spurious returns) are allowed, so callers re-check their condition.
	//
	// When ctx is done Wait returns promptly (within about 10 ms) an error
	// that wraps ctx.Err(), so errors.Is(err, context.Canceled) or
	// errors.Is(err, context.DeadlineExceeded) holds.
	Wait(ctx context.Context, word *atomic.Uint32, old uint32) error

	// Wake wakes up to n waiters parked on word. The caller must have
	// changed *word (with a sync/atomic write) before calling Wake. n <= 0
	// is a no-op.
	Wake(word *atomic.Uint32, n int) error

	// Stats returns counters of the calls made through this Backend value.
	Stats() Stats

	// Close releases the kernel objects the backend owns. Waiters blocked
	// in Wait return, and later calls return ErrClosed (wrapped).
	Close() error
}

// Stats counts the work a backend did. All counters are monotonic.
type Stats struct {
	Waits        uint64 // Wait calls that had to park (word unchanged on entry)
	Wakes        uint64 // Wake calls with n > 0
	WakeSyscalls uint64 // system calls made by Wake (writes, futex wakes)
}

// stats is embedded by backends; its fields are updated atomically.
type stats struct {
	waits, wakes, wakeSyscalls atomic.Uint64
}

func (s *stats) Stats() Stats {
	return Stats{Waits: s.waits.Load(), Wakes: s.wakes.Load(), WakeSyscalls: s.wakeSyscalls.Load()}
}

// ErrClosed reports a call on a closed backend.
var ErrClosed = errors.New("notify: backend closed")

// ErrPeerRejected reports a socket connection from a peer that failed the
// credential check.
var ErrPeerRejected = errors.New("notify: peer credentials rejected")

// ctxErr returns the error Wait reports for a done ctx, or nil if ctx is not
// done (see done).
func ctxErr(ctx context.Context) error {
	if err := done(ctx); err != nil {
		return fmt.Errorf("notify: wait: %w", err)
	}
	return nil
}

// done returns ctx's error once ctx is done, or nil. A passed deadline
// counts as done even if ctx's own timer has not fired yet, so that a
// kernel timeout derived from the deadline is never taken for a spurious
// wake-up (and a loop around the wait does not spin until the timer runs);
// done then waits for that timer, which is already due, so that a caller
// that gets the error also finds ctx.Err() set, as after any call that
// takes a context.
func done(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}
