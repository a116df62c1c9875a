package notify

// Adversarial review of the core redesign (branch review).

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestReviewEventfdSpuriousWakeups: WakeIfWaiting promises that a waiter
// counted while not parked "at most consumes one spurious wake-up later".
// With the Eventfd backend every WakeIfWaiting adds n units to the shared
// counter, and a parked Wait consumes one per return, so units pile up for
// as long as a registration stands without a parked waiter: a waiter
// between its registration and its park, or one killed while registered
// (until a publisher's sweep, ~100ms of publishing, removes it). Here a dead
// registration stands during 1000 publishes; a live waiter that parks
// afterwards returns from the backend about 1000 times, re-checking its
// condition each time, instead of sleeping.
func TestReviewEventfdSpuriousWakeups(t *testing.T) {
	e, err := NewEventfd()
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var seq atomic.Uint32
	words := []*atomic.Uint64{new(atomic.Uint64)}
	l := Line{Seq: &seq, Waiters: NewWaiterSet(words)}
	l.Waiters.Add(5) // a waiter killed while registered
	for range 1000 {
		l.WakeIfWaiting(e) // one publish each
	}
	checks := 0
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	l.Park(ctx, Policy{Backend: e, Spin: -1}, 1, 100*time.Millisecond, func() bool { checks++; return false }, nil)
	if checks > 10 {
		t.Errorf("a waiter parked on an idle line re-checked %d times in 300ms (wake-ups left over from a dead registration)", checks)
	}
}
