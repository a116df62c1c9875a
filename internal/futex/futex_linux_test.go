package futex

import (
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestWaitV: futex_waitv returns at once when a word differs, times out
// when none changes, and returns the index of the word a Wake woke.
func TestWaitV(t *testing.T) {
	if !WaitVSupported() {
		t.Skip("no futex_waitv on this kernel")
	}
	words := []*atomic.Uint32{new(atomic.Uint32), new(atomic.Uint32), new(atomic.Uint32)}
	private := new(atomic.Uint32)
	ws := func() []Waiter {
		var out []Waiter
		for _, w := range words {
			out = append(out, NewWaiter(w, 0, false))
		}
		return append(out, NewWaiter(private, 0, true))
	}
	words[1].Store(1)
	if _, err := WaitV(ws(), time.Second); err != unix.EAGAIN {
		t.Fatalf("a word differs on entry: %v, want EAGAIN", err)
	}
	words[1].Store(0)
	start := time.Now()
	if _, err := WaitV(ws(), 20*time.Millisecond); err != unix.ETIMEDOUT {
		t.Fatalf("no change: %v, want ETIMEDOUT", err)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Fatalf("timed out after %v, want 20ms", d)
	}
	for _, tc := range []struct {
		index int
		wake  func() (int, error)
	}{
		{2, func() (int, error) { words[2].Store(1); return Wake(words[2], 1) }},
		{3, func() (int, error) { private.Store(1); return WakePrivate(private, 1) }},
	} {
		words[2].Store(0)
		private.Store(0)
		done := make(chan [2]any, 1)
		go func() {
			i, err := WaitV(ws(), 5*time.Second)
			done <- [2]any{i, err}
		}()
		// Wake until the waiter is out: it may not have parked yet.
		for woken := false; !woken; {
			time.Sleep(10 * time.Millisecond)
			n, err := tc.wake()
			if err != nil {
				t.Fatal(err)
			}
			select {
			case r := <-done:
				if n == 1 && (r[0] != tc.index || r[1] != nil) {
					t.Fatalf("woke word %d: WaitV = %v, %v", tc.index, r[0], r[1])
				}
				woken = true
			case <-time.After(time.Second):
				t.Fatal("WaitV did not return after a wake")
			}
		}
	}
	if _, err := WaitV(nil, 0); err != unix.EINVAL {
		t.Fatalf("no words: %v, want EINVAL", err)
	}
}

// TestWaitPrivate: a private wait sleeps until its timeout or a private
// wake. A timed futex wait also returns EINTR when a signal handler runs
// on its thread (the kernel does not restart it, SA_RESTART or not), as the
// Go runtime's preemption signal does now and then; callers wait again,
// and so does the test.
func TestWaitPrivate(t *testing.T) {
	w := new(atomic.Uint32)
	if err := WaitPrivate(w, 1, time.Second); err != unix.EAGAIN {
		t.Fatalf("word differs: %v, want EAGAIN", err)
	}
	if err := waitPrivateNoEINTR(w, 0, 10*time.Millisecond); err != unix.ETIMEDOUT {
		t.Fatalf("no wake: %v, want ETIMEDOUT", err)
	}
	done := make(chan error, 1)
	go func() { done <- waitPrivateNoEINTR(w, 0, 5*time.Second) }()
	for {
		time.Sleep(10 * time.Millisecond)
		w.Store(1)
		if _, err := WakePrivate(w, 1); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil && err != unix.EAGAIN {
				t.Fatal(err)
			}
			return
		case <-time.After(time.Second):
			t.Fatal("WaitPrivate did not return after a wake")
		}
	}
}

// waitPrivateNoEINTR is WaitPrivate waiting again, for what is left of
// timeout, after a signal interrupted it.
func waitPrivateNoEINTR(w *atomic.Uint32, old uint32, timeout time.Duration) error {
	end := time.Now().Add(timeout)
	for d := timeout; d > 0; d = time.Until(end) {
		if err := WaitPrivate(w, old, d); err != unix.EINTR {
			return err
		}
	}
	return unix.ETIMEDOUT
}
