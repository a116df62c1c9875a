package spsc

import (
	"context"
	"testing"
	"time"

	"github.com/shmq/shmq/ring"
)

// TestWaitAllocatesNothing: a wait that spins and ends (here on an expired
// context) allocates nothing, on either side; the closures a wait checks
// used to escape through the gate's spin function, one or more allocations
// per wait of a streaming peer.
func TestWaitAllocatesNothing(t *testing.T) {
	q, err := Create(ring.Memfd("waitalloc"), Config{Capacity: 64, Wait: Wait{Spin: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	p, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	c, err := q.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
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
		if err := p.waitRoom(ctx, 8); err != context.Canceled {
			t.Fatalf("waitRoom: %v, want context.Canceled", err)
		}
	}); n != 0 {
		t.Errorf("a producer's wait allocated %v times", n)
	}
}
