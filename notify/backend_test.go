package notify

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmq/shmq/internal/shmtest"
)

// namedBackend makes a fresh backend for one subtest.
type namedBackend struct {
	name string
	// kicks reports whether Wake alone, without a word change, makes a
	// parked Wait return (false for polling, which only watches the word).
	kicks bool
	make  func(t *testing.T) Backend
}

func allBackends() []namedBackend {
	return append(osBackends(),
		namedBackend{"socket", true, func(t *testing.T) Backend {
			p := filepath.Join(t.TempDir(), "s")
			s, err := NewSocket(SocketConfig{Listen: p, Peer: p})
			if errors.Is(err, errors.ErrUnsupported) {
				t.Skip(err)
			}
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		namedBackend{"poll", false, func(t *testing.T) Backend { return NewPoll(PollConfig{}) }},
	)
}

func forEach(t *testing.T, f func(t *testing.T, nb namedBackend, b Backend)) {
	for _, nb := range allBackends() {
		t.Run(nb.name, func(t *testing.T) {
			b := nb.make(t)
			t.Cleanup(func() { b.Close() })
			f(t, nb, b)
		})
	}
}

// parkDelay is how long tests give a waiter to park before acting.
const parkDelay = 20 * time.Millisecond

func TestWaitReturnsAtOnceWhenWordChanged(t *testing.T) {
	forEach(t, func(t *testing.T, _ namedBackend, b Backend) {
		var w atomic.Uint32
		w.Store(5)
		// A loaded machine may stall the goroutines for longer than the
		// bound now and then; a Wait that sleeps before it looks at the
		// word takes too long every time.
		shmtest.Retry(t, func() string {
			start := time.Now()
			err := within(t, time.Second, func() error { return b.Wait(context.Background(), &w, 4) })
			if err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > 50*time.Millisecond {
				return fmt.Sprintf("took %v", d)
			}
			return ""
		})
		if b.Stats().Waits != 0 {
			t.Fatalf("Waits = %d, want 0: should not have parked", b.Stats().Waits)
		}
	})
}

func TestWakeWakes(t *testing.T) {
	forEach(t, func(t *testing.T, _ namedBackend, b Backend) {
		var w atomic.Uint32
		done := make(chan error, 1)
		go func() {
			for w.Load() == 0 {
				if err := b.Wait(context.Background(), &w, 0); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		time.Sleep(parkDelay)
		select {
		case err := <-done:
			t.Fatalf("Wait returned before the word changed: %v", err)
		default:
		}
		w.Store(1)
		if err := b.Wake(&w, 1); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("waiter not woken")
		}
	})
}

// TestWakeKicksParkedWaiter shows that Wake itself reaches a parked waiter:
// the word never changes, so only the wake can end the Wait.
func TestWakeKicksParkedWaiter(t *testing.T) {
	forEach(t, func(t *testing.T, nb namedBackend, b Backend) {
		if !nb.kicks {
			t.Skip("backend only watches the word")
		}
		var w atomic.Uint32
		done := make(chan error, 1)
		go func() { done <- b.Wait(context.Background(), &w, 0) }()
		time.Sleep(parkDelay)
		deadline := time.After(2 * time.Second)
		for {
			// A wake that lands before the waiter parks is lost for the
			// futex backend (the word is unchanged), so repeat it.
			if err := b.Wake(&w, 1); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
				if b.Stats().WakeSyscalls == 0 {
					t.Fatal("no wake syscall counted")
				}
				return
			case <-time.After(100 * time.Millisecond):
			case <-deadline:
				t.Fatal("parked waiter not woken by Wake")
			}
		}
	})
}

func TestCancelReturnsPromptly(t *testing.T) {
	forEach(t, func(t *testing.T, _ namedBackend, b Backend) {
		shmtest.Retry(t, func() string {
			var w atomic.Uint32
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- b.Wait(ctx, &w, 0) }()
			time.Sleep(parkDelay)
			start := time.Now()
			cancel()
			select {
			case err := <-done:
				if !isCtxErr(err, context.Canceled) {
					t.Fatalf("err = %v, want context.Canceled", err)
				}
				if d := time.Since(start); d > 50*time.Millisecond {
					return fmt.Sprintf("returned %v after cancel", d)
				}
				return ""
			case <-time.After(2 * time.Second):
				t.Fatal("Wait ignored cancellation")
				return ""
			}
		})
	})
}

func TestDeadlineHonoured(t *testing.T) {
	forEach(t, func(t *testing.T, _ namedBackend, b Backend) {
		var w atomic.Uint32
		const d = 30 * time.Millisecond
		// The upper bound tells "woke at the deadline, late by scheduling"
		// (a loaded 2-core machine under the race detector: 200 ms) from
		// "waited out a park period or the 2 s bound" (a missed deadline);
		// a stall longer than that gets a retry. The clock starts before
		// the context, so that a stall between the two cannot make the
		// wait look shorter than d.
		shmtest.Retry(t, func() string {
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), d)
			defer cancel()
			var err error
			for err == nil { // spurious returns are allowed
				err = within(t, 2*time.Second, func() error { return b.Wait(ctx, &w, 0) })
			}
			el := time.Since(start)
			if !isCtxErr(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v, want DeadlineExceeded", err)
			}
			if el < d-5*time.Millisecond || el > d+500*time.Millisecond {
				return fmt.Sprintf("returned after %v, want about %v", el, d)
			}
			return ""
		})
	})
}

func TestClosedBackendFailsWait(t *testing.T) {
	forEach(t, func(t *testing.T, _ namedBackend, b Backend) {
		var w atomic.Uint32
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		b.Close()
		if err := b.Wait(ctx, &w, 0); err == nil {
			t.Fatal("Wait on closed backend returned nil")
		}
	})
}
