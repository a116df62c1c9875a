package notify

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestEventfdWakeOnFullCounter: a peer fills the counter (its maximum is
// 2^64-2); a write then fails and raises no event, so Wake must make room
// and write again, or every later wake of every process is lost. Both on
// the filled Eventfd and on another descriptor of the same eventfd.
func TestEventfdWakeOnFullCounter(t *testing.T) {
	e := newTestEventfd(t)
	e2 := dupEventfd(t, e)
	var full [8]byte
	binary.NativeEndian.PutUint64(full[:], 1<<64-2)
	var werr error
	if err := e.rc.Control(func(fd uintptr) { _, werr = unix.Write(int(fd), full[:]) }); err != nil || werr != nil {
		t.Fatal(err, werr)
	}
	for _, b := range []*Eventfd{e, e2} {
		// Let the events of the filling write pass: a Wait returns on
		// them (spuriously) until they are spent.
		var w atomic.Uint32
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			err := b.Wait(ctx, &w, 0)
			cancel()
			if err != nil {
				break
			}
		}
		done := make(chan error, 1)
		parked := b.Stats().Waits + 1
		go func() { done <- b.Wait(context.Background(), &w, 0) }()
		// Wake once the Wait has taken its wake channel (it counts the
		// wait just after): the word never changes here, so only the
		// event of this Wake can end it.
		for b.Stats().Waits < parked {
			time.Sleep(time.Millisecond)
		}
		if err := e.Wake(&w, 1); err != nil {
			t.Fatalf("Wake on a full counter: %v", err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Wake on a full counter returned but the parked Wait was never woken")
		}
	}
}

// TestEventfdDroppedIsCollected: an Eventfd that parked once (so its poller
// runs) and is then dropped without Close is closed by the garbage
// collector, poller and descriptor with it.
func TestEventfdDroppedIsCollected(t *testing.T) {
	fds := func() int {
		d, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(d)
	}
	runtime.GC()
	g0, f0 := runtime.NumGoroutine(), fds()
	const n = 20
	func() {
		for range n {
			e, err := NewEventfd()
			if err != nil {
				t.Fatal(err)
			}
			var w atomic.Uint32
			ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
			if err := e.Wait(ctx, &w, 0); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Wait: %v", err)
			}
			cancel()
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		runtime.GC()
		g, f := runtime.NumGoroutine(), fds()
		if g < g0+n/2 && f < f0+n/2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after dropping %d Eventfds: goroutines %d -> %d, descriptors %d -> %d", n, g0, g, f0, f)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
