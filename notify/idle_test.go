//go:build unix

package notify

import (
	"context"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// cpu returns the CPU time this process has used.
func cpu(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestIdleAfterWake: after a burst of wakes, an idle waiter parked on a
// line whose condition stays false uses (almost) no CPU, on every backend.
// Before, the eventfd backend wrote 2^30 units per wake and every later
// Wait returned at once: one wake turned an idle Recv into a busy loop
// (1.3 s of CPU per second).
func TestIdleAfterWake(t *testing.T) {
	forEach(t, func(t *testing.T, nb namedBackend, b Backend) {
		var seq atomic.Uint32
		l := Line{Seq: &seq, Waiters: NewWaiterSet([]*atomic.Uint64{new(atomic.Uint64)})}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var checks atomic.Int64
		parked := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			l.Park(ctx, Policy{Backend: b, Spin: -1}, 1, time.Second, func() bool {
				if checks.Add(1) == 1 {
					close(parked)
				}
				return false
			}, nil)
		}()
		<-parked
		time.Sleep(parkDelay)
		for range 100 { // a burst of publishes while the waiter is registered
			seq.Add(0)
			l.WakeIfWaiting(b)
		}
		time.Sleep(parkDelay) // let it take the wakes
		before, c0 := cpu(t), checks.Load()
		time.Sleep(300 * time.Millisecond)
		used, n := cpu(t)-before, checks.Load()-c0
		cancel()
		<-done
		if used > 60*time.Millisecond || n > 5 {
			t.Fatalf("%s: an idle waiter used %v of CPU and re-checked %d times in 300ms after a burst of wakes", nb.name, used, n)
		}
	})
}
