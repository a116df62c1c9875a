package spsc

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
)

func killIterations() int {
	if testing.Short() {
		return 15
	}
	return 60
}

// TestKillLoopConsumers kills consumer processes at random points while
// this process streams to them. Each consumer reports what it received
// before releasing it; across all of them every message must appear, in
// order, with repeats only where a killed consumer had not yet released
// (at-least-once across a consumer crash, never a loss).
func TestKillLoopConsumers(t *testing.T) {
	const count = 400000
	loc := tempShm(t)
	q, err := Create(loc, Config{Capacity: 1 << 12})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	p, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sent := make(chan error, 1)
	go func() {
		msg := make([]byte, 24)
		for seq := uint64(0); seq < count; {
			fill(msg, seq)
			err := p.Send(ctx, msg)
			if errors.Is(err, ErrPeerDead) {
				continue // the consumer was killed; the next one drains the ring
			}
			if err != nil {
				sent <- err
				return
			}
			seq++
		}
		sent <- nil
	}()
	rng := rand.New(rand.NewPCG(7, 7))
	next, repeats, kills := uint64(0), 0, 0
	for next < count {
		h := startHelper(t, "consume-log", queueName(loc), nil)
		h.expect(t, "attached")
		last := kills == killIterations()
		if !last {
			time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
			h.cmd.Process.Kill()
			kills++
		}
		first := true
		for h.out.Scan() {
			for _, f := range strings.Fields(h.out.Text()) {
				seq, err := strconv.ParseUint(f, 10, 64)
				if err != nil {
					t.Fatalf("consumer said %q", h.out.Text())
				}
				switch {
				case first && seq < next: // redelivery of what the dead consumer had not released
					repeats += int(next - seq)
					next = seq + 1
				case seq == next:
					next++
				default:
					t.Fatalf("after message %d the consumer got %d (first of its life: %v)", next-1, seq, first)
				}
				first = false
			}
			if last && next == count {
				break
			}
		}
		h.kill()
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d consumers killed, %d messages delivered, %d redelivered", kills, count, repeats)
}

// TestKillLoopProducers kills producer processes at random points while
// this process consumes. Everything a producer committed before it died is
// received, in order; the consumer is then told the producer is dead, and
// the next producer continues the sequence.
func TestKillLoopProducers(t *testing.T) {
	loc := tempShm(t)
	q, err := Create(loc, Config{Capacity: 1 << 12})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	c, err := q.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rng := rand.New(rand.NewPCG(8, 8))
	buf := make([]byte, 256)
	next := uint64(0)
	for i := 0; i < killIterations(); i++ {
		h := startHelper(t, "produce", queueName(loc), map[string]string{
			"SHMQ_SIZE": fmt.Sprint(8 + rng.IntN(200)), "SHMQ_FIRST": fmt.Sprint(next)})
		h.expect(t, "attached")
		time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
		h.kill()
		for {
			n, err := c.Recv(ctx, buf)
			if errors.Is(err, ErrPeerDead) {
				break
			}
			if err != nil {
				t.Fatalf("iteration %d: %v", i, err)
			}
			if err := verify(buf[:n], next); err != nil {
				t.Fatalf("iteration %d: %v", i, err)
			}
			next++
		}
	}
	// Each producer's registry counters start at zero (a reused entry does
	// not inherit its dead predecessor's), so the cursors are the check.
	st, _ := q.Stats()
	if st.Used != 0 || st.Consumer.Messages != next {
		t.Fatalf("after the loop: %d received, consumer counters say %d, %d bytes left", next, st.Consumer.Messages, st.Used)
	}
	t.Logf("%d producers killed, %d messages received in order", killIterations(), next)
}
