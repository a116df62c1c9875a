package notify

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/shmq/shmq/internal/futex"
	"golang.org/x/sys/unix"
)

// Futex is a Backend that parks waiters in the kernel on the word itself,
// with a shared (cross-process) futex. The word must lie in memory that all
// parties map (MAP_SHARED file or memfd mapping, or ordinary memory for a
// single process).
//
// Wait occupies an OS thread while it is parked (the scheduler hands the P
// to another thread). It honours ctx without polling: a deadline becomes
// the futex timeout, and cancellation wakes the word from a
// context.AfterFunc callback, which may also wake other waiters on the same
// word spuriously.
//
// The zero value is ready to use. Close only makes later calls fail.
type Futex struct {
	stats
	closed atomic.Bool
}

// NewFutex returns a futex backend.
func NewFutex() *Futex { return new(Futex) }

// Wait implements Backend.
func (f *Futex) Wait(ctx context.Context, word *atomic.Uint32, old uint32) error {
	if f.closed.Load() {
		return fmt.Errorf("notify: futex wait: %w", ErrClosed)
	}
	if word.Load() != old {
		return nil
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	return f.wait(ctx, word, old, 0)
}

// WaitAtMost is Wait bounded also by d (if d > 0), without the cost of a
// derived context: the bound becomes the futex timeout.
func (f *Futex) WaitAtMost(ctx context.Context, word *atomic.Uint32, old uint32, d time.Duration) error {
	if f.closed.Load() {
		return fmt.Errorf("notify: futex wait: %w", ErrClosed)
	}
	if word.Load() != old {
		return nil
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	return f.wait(ctx, word, old, d)
}

func (f *Futex) wait(ctx context.Context, word *atomic.Uint32, old uint32, bound time.Duration) error {
	timeout := bound
	if d, ok := ctx.Deadline(); ok {
		left := time.Until(d)
		if left <= 0 {
			return ctxErr(ctx)
		}
		if timeout <= 0 || left < timeout {
			timeout = left
		}
	}
	f.waits.Add(1)
	var out atomic.Bool // set once this waiter has left the kernel
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() {
			// A cancellation that lands between the ctx check above and
			// the waiter entering the kernel finds nobody to wake, so keep
			// waking until the waiter is out. This runs only after
			// cancellation, for at most a few milliseconds.
			for !out.Load() {
				_, _ = futex.Wake(word, math.MaxInt32)
				time.Sleep(time.Millisecond)
			}
		})
		defer stop()
	}
	err := futex.Wait(word, old, timeout)
	out.Store(true)
	switch err {
	case nil, unix.EAGAIN, unix.EINTR, unix.ETIMEDOUT:
		return ctxErr(ctx) // nil unless ctx is done: a (possibly spurious) wake-up
	default:
		return fmt.Errorf("notify: futex wait: %w", err)
	}
}

// Wake implements Backend. Each call with n > 0 makes one futex system call.
func (f *Futex) Wake(word *atomic.Uint32, n int) error {
	if n <= 0 {
		return nil
	}
	if f.closed.Load() {
		return fmt.Errorf("notify: futex wake: %w", ErrClosed)
	}
	f.wakes.Add(1)
	f.wakeSyscalls.Add(1)
	if _, err := futex.Wake(word, n); err != nil {
		return fmt.Errorf("notify: futex wake: %w", err)
	}
	return nil
}

// Close implements Backend. Waits already parked stay parked until woken.
func (f *Futex) Close() error {
	f.closed.Store(true)
	return nil
}
