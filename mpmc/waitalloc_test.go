package mpmc

import (
	"context"
	"testing"
	"time"
)

// TestWaitAllocatesNothing: a wait that spins and ends (here on an expired
// context) allocates nothing, on either side; the closures a wait checks
// used to escape through the gate's spin function, one or more allocations
// per wait of a streaming peer.
func TestWaitAllocatesNothing(t *testing.T) {
	q := newTestQueue(t, Config{Slots: 4, MaxMessage: 8, Wait: Wait{Spin: time.Millisecond}})
	p, c := mustProducer(t, q), mustConsumer(t, q)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.TryRecv(make([]byte, 8)); err != ErrEmpty {
		t.Fatalf("TryRecv: %v, want ErrEmpty", err)
	}
	if n := testing.AllocsPerRun(50, func() {
		if err := c.waitData(ctx); err != context.Canceled {
			t.Fatalf("waitData: %v, want context.Canceled", err)
		}
	}); n != 0 {
		t.Errorf("a consumer's wait allocated %v times", n)
	}
	for p.TrySend(make([]byte, 8)) == nil {
	}
	if n := testing.AllocsPerRun(50, func() {
		if err := p.waitRoom(ctx); err != context.Canceled {
			t.Fatalf("waitRoom: %v, want context.Canceled", err)
		}
	}); n != 0 {
		t.Errorf("a producer's wait allocated %v times", n)
	}
}
