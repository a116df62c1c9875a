package notify

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// countingBackend counts Wake calls, the system calls SleeperBit saves.
type countingBackend struct {
	Backend
	wakes atomic.Int64
}

func (c *countingBackend) Wake(w *atomic.Uint32, n int) error {
	c.wakes.Add(1)
	return c.Backend.Wake(w, n)
}

// TestSleeperBitWakesOnlySleepers: with SleeperBit, a registered waiter
// that has not set the bit (it is between registering and its re-check, or
// was woken and has not left) costs a publisher no wake; one that set it
// gets exactly one, which clears the bit; without SleeperBit every publish
// to a non-empty set wakes.
func TestSleeperBitWakesOnlySleepers(t *testing.T) {
	var seq atomic.Uint32
	b := &countingBackend{Backend: NewFutex()}
	l := Line{Seq: &seq, Waiters: NewWaiterSet([]*atomic.Uint64{new(atomic.Uint64)}), SleeperBit: true}
	l.Waiters.Add(3)
	for range 3 {
		if n, _ := l.WakeIfWaiting(b); n != 0 {
			t.Fatalf("registered, bit clear: woke %d", n)
		}
	}
	if b.wakes.Load() != 0 || seq.Load() != 0 {
		t.Fatalf("registered, bit clear: %d wakes, seq %d; want none, 0", b.wakes.Load(), seq.Load())
	}
	if s := l.arm(); s != 1 || seq.Load() != 1 {
		t.Fatalf("arm: %d, seq %d; want 1, 1", s, seq.Load())
	}
	if s := l.arm(); s != 1 {
		t.Fatalf("arm again: %d, want 1 (the bit is already set)", s)
	}
	if n, _ := l.WakeIfWaiting(b); n != 1 || b.wakes.Load() != 1 || seq.Load() != 2 {
		t.Fatalf("bit set: woke %d with %d wakes, seq %d; want 1, 1, 2 (bit clear, epoch advanced)", n, b.wakes.Load(), seq.Load())
	}
	if n, _ := l.WakeIfWaiting(b); n != 0 || b.wakes.Load() != 1 {
		t.Fatalf("after the wake: woke %d, %d wakes; want no more", n, b.wakes.Load())
	}
	old := Line{Seq: &seq, Waiters: l.Waiters}
	for i := range 3 {
		if n, _ := old.WakeIfWaiting(b); n != 1 || b.wakes.Load() != int64(2+i) {
			t.Fatalf("without SleeperBit: woke %d, %d wakes", n, b.wakes.Load())
		}
	}
}

// TestSleeperBitPingPong: two goroutines trade a token through two lines
// with SleeperBit, parking at once and for as long as it takes (no bounded
// park to hide a lost wakeup), on every backend: a lost wakeup hangs, and
// the context fails the test. Each line has a backend of its own here;
// TestSharedBackendTwoLines (eventfd_shared_linux_test.go) plays the same
// game with one backend for both lines.
func TestSleeperBitPingPong(t *testing.T) {
	rounds := 20000
	if testing.Short() {
		rounds = 3000
	}
	forEach(t, func(t *testing.T, nb namedBackend, b Backend) {
		b2 := nb.make(t)
		t.Cleanup(func() { b2.Close() })
		backends := [2]Backend{b, b2}
		var seqs [2]atomic.Uint32
		var turn atomic.Int64 // even: a's turn, odd: b's
		lines := [2]Line{
			{Seq: &seqs[0], Waiters: NewWaiterSet([]*atomic.Uint64{new(atomic.Uint64)}), SleeperBit: true},
			{Seq: &seqs[1], Waiters: NewWaiterSet([]*atomic.Uint64{new(atomic.Uint64)}), SleeperBit: true},
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		play := func(me int) error {
			for r := range rounds {
				want := int64(2*r + me)
				p := Policy{Backend: backends[me], Spin: -1}
				if _, err := lines[me].Park(ctx, p, me, time.Hour, func() bool { return turn.Load() == want }, nil); err != nil {
					return err
				}
				turn.Add(1)
				lines[1-me].WakeIfWaiting(backends[1-me])
			}
			return nil
		}
		errc := make(chan error, 2)
		for me := range 2 {
			go func() { errc <- play(me) }()
		}
		for range 2 {
			if err := <-errc; err != nil {
				t.Fatalf("after %d moves: %v (a lost wakeup)", turn.Load(), err)
			}
		}
	})
}
