//go:build linux || darwin || freebsd || solaris

package notify

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestSocketRejectsUnauthorizedPeer: a waker whose uid the listener refuses
// cannot wake it.
func TestSocketRejectsUnauthorizedPeer(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s")
	waiter, err := NewSocket(SocketConfig{Listen: p, Authorize: func(uint32) bool { return false }})
	if err != nil {
		t.Fatal(err)
	}
	defer waiter.Close()
	waker, err := NewSocket(SocketConfig{Peer: p})
	if err != nil {
		t.Fatal(err)
	}
	defer waker.Close()

	var w atomic.Uint32
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- waiter.Wait(ctx, &w, 0) }()
	time.Sleep(parkDelay)
	_ = waker.Wake(&w, 1)
	if err := <-done; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded (wake must be refused)", err)
	}
	// The listener's accept loop counts the rejection on its own
	// goroutine, which a loaded machine may not have run yet.
	for deadline := time.Now().Add(10 * time.Second); waiter.Rejected() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no rejection counted")
		}
	}
}

// TestSocketSeparateWakerAndStaleListener: a waker in another backend value
// wakes the listener, and a listener replaces a stale socket path.
func TestSocketSeparateWaker(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s")
	old, err := NewSocket(SocketConfig{Listen: p})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewSocket(SocketConfig{Listen: p}); err == nil {
		t.Fatal("second listener on a live path succeeded")
	}
	old.Close()
	waiter, err := NewSocket(SocketConfig{Listen: p})
	if err != nil {
		t.Fatal(err)
	}
	defer waiter.Close()
	waker, err := NewSocket(SocketConfig{Peer: p})
	if err != nil {
		t.Fatal(err)
	}
	defer waker.Close()
	var w atomic.Uint32
	done := make(chan error, 1)
	go func() { done <- waiter.Wait(context.Background(), &w, 0) }()
	time.Sleep(parkDelay)
	if err := waker.Wake(&w, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("not woken")
	}
}
