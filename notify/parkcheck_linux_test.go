package notify

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestParkChecksOnlyWhenNotReady: a park that ends with the condition
// still false runs check before parking again; one that a wake ends with
// the condition true returns without it (the queues' check is a registry
// lock test, a system call on every message of a park-at-once stream).
//
// A timed futex wait also ends spuriously (EINTR, when the Go runtime's
// preemption signal lands on its thread), which is a park that ends with
// the condition false too; so the test counts parks and checks, and wants
// one check for every park but the last, whatever the number of parks.
func TestParkChecksOnlyWhenNotReady(t *testing.T) {
	var seq atomic.Uint32
	l := NewLine(&seq, NewWaiterSet([]*atomic.Uint64{new(atomic.Uint64)}))
	f := NewFutex()
	p := Policy{Backend: f, Spin: -1}
	var ready atomic.Bool
	var checks atomic.Int32
	done := make(chan error, 1)
	go func() {
		_, err := l.Park(context.Background(), p, 1, time.Hour, ready.Load, func() error { checks.Add(1); return nil })
		done <- err
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	// A wake with the condition false: Park checks, then parks again.
	waitFor("the first park", func() bool { return f.Stats().Waits >= 1 })
	parks := f.Stats().Waits
	l.WakeIfWaiting(f)
	waitFor("the park after the wake", func() bool { return f.Stats().Waits > parks })
	// A wake with the condition true: Park returns without a check.
	ready.Store(true)
	l.WakeIfWaiting(f)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Park did not return after the wake")
	}
	// Every park but the last ended with the condition false, the last
	// with it true.
	parks = f.Stats().Waits
	if n := checks.Load(); uint64(n) != parks-1 {
		t.Fatalf("%d checks after %d parks, want %d: one after each park that ended with the condition false, none after the wake that made it true", n, parks, parks-1)
	}
}
