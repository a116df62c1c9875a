package spsc

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/shmq/shmq/internal/shmtest"
	"github.com/shmq/shmq/notify"
)

// openPair returns a producer and a consumer on two handles of one new
// queue, each handle with its own notifier.
func openPair(t testing.TB, capacity uint64, pw, cw Wait) (*Producer, *Consumer) {
	t.Helper()
	loc := tempShm(t)
	q, err := Create(loc, Config{Capacity: capacity, Wait: pw})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	q2, err := Open(context.Background(), loc, &Options{Wait: cw})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q2.Close() })
	p, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	c, err := q2.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	return p, c
}

// TestNoLostWakeups parks and wakes both sides thousands of times: rings of
// one and two messages, waiters that park at once, random delays on both
// sides. A lost wakeup shows up as a hang, which the deadline turns into a
// failure.
func TestNoLostWakeups(t *testing.T) {
	cycles := 20000
	if testing.Short() {
		cycles = 4000
	}
	for _, capacity := range []uint64{32, 64} { // one 24-byte message; two 8-byte ones
		t.Run(fmt.Sprint(capacity), func(t *testing.T) {
			pf, cf := notify.Default(), notify.Default()
			p, c := openPair(t, capacity, Wait{Backend: pf, Spin: -1}, Wait{Backend: cf, Spin: -1})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			errc := make(chan error, 1)
			go func() {
				rng := rand.New(rand.NewPCG(1, 1))
				msg := make([]byte, 8)
				for i := 0; i < cycles; i++ {
					fill(msg, uint64(i))
					if err := p.Send(ctx, msg); err != nil {
						errc <- fmt.Errorf("send %d: %w", i, err)
						return
					}
					if rng.IntN(4) == 0 {
						time.Sleep(time.Duration(rng.IntN(20)) * time.Microsecond)
					}
				}
				errc <- nil
			}()
			rng := rand.New(rand.NewPCG(2, 2))
			buf := make([]byte, 64)
			for i := 0; i < cycles; i++ {
				n, err := c.Recv(ctx, buf)
				if err != nil {
					t.Fatalf("recv %d (a lost wakeup if the deadline passed): %v", i, err)
				}
				if err := verify(buf[:n], uint64(i)); err != nil {
					t.Fatal(err)
				}
				if rng.IntN(4) == 0 {
					time.Sleep(time.Duration(rng.IntN(20)) * time.Microsecond)
				}
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			ps, cs := pf.Stats(), cf.Stats()
			t.Logf("producer parked %d times, consumer %d; wake syscalls %d and %d", ps.Waits, cs.Waits, ps.WakeSyscalls, cs.WakeSyscalls)
			if ps.Waits+cs.Waits == 0 {
				t.Fatal("no side ever parked: the test did not exercise the wake protocol")
			}
		})
	}
}

// TestStreamingMakesNoWakePerMessage: while the consumer keeps up, the
// producer's commits find no registered waiter and make no system call.
func TestStreamingMakesNoWakePerMessage(t *testing.T) {
	const count = 200000
	pf := notify.Default()
	p, c := openPair(t, 1<<16, Wait{Backend: pf}, Wait{Spin: time.Second})
	shmtest.CheckStreamWakes(t, count, p.Send, c.Recv, func() uint64 { return pf.Stats().WakeSyscalls })
}

// TestIdleConsumerUsesNoCPU: a consumer blocked in Recv on an empty queue
// parks instead of polling. SHMQ_IDLE=10s measures a longer idle period.
func TestIdleConsumerUsesNoCPU(t *testing.T) {
	_, c := openPair(t, 1<<12, Wait{}, Wait{})
	shmtest.CheckIdleRecv(t, func(ctx context.Context) error {
		_, err := c.Recv(ctx, make([]byte, 64))
		return err
	})
}

// TestBlockedRecvWokenAcrossProcesses: a consumer process parked on the
// futex is woken by this process's send.
func TestBlockedRecvWokenAcrossProcesses(t *testing.T) {
	loc := tempShm(t)
	q, err := Create(loc, Config{Capacity: 1 << 12, Wait: Wait{Spin: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	h := startHelper(t, "consume", queueName(loc), map[string]string{"SHMQ_COUNT": "50"})
	p, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	// Send only once the consumer is there: on a loaded machine it may
	// start after all the messages were sent, and then never park.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if st, _ := q.Stats(); st.Consumer.Alive || time.Now().After(deadline) {
			break
		}
	}
	msg := make([]byte, 16)
	for i := uint64(0); i < 50; i++ {
		time.Sleep(2 * time.Millisecond) // long enough for the consumer to park
		fill(msg, i)
		if err := p.Send(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
	h.expect(t, "ok 50")
	st, _ := q.Stats()
	if st.Consumer.Waits == 0 || st.Producer.Wakes == 0 {
		t.Fatalf("consumer parked %d times, producer woke it %d times: the test did not park", st.Consumer.Waits, st.Producer.Wakes)
	}
}
