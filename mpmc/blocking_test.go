package mpmc

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/shmq/shmq/internal/shmtest"
	"github.com/shmq/shmq/notify"
	"github.com/shmq/shmq/ring"
)

// openHandle maps q's segment once more, with its own wait policy.
func openHandle(t testing.TB, q *Queue, w Wait) *Queue {
	t.Helper()
	q2, err := Open(context.Background(), ring.FD(q.Segment().Fd()), &Options{Wait: w})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q2.Close() })
	return q2
}

// TestNoLostWakeups parks and wakes producers and consumers thousands of
// times: rings of one and two slots, three producers and three consumers,
// each on its own handle with its own futex backend, waiters that park at
// once (Spin -1), random tiny delays on both sides. A lost wakeup shows up
// as a hang, which the deadline turns into a failure; every message must
// arrive exactly once and in order per producer, and the backends must
// have parked.
func TestNoLostWakeups(t *testing.T) {
	testNoLostWakeups(t, false)
}

func testNoLostWakeups(t *testing.T, locked bool) {
	const np, nc = 3, 3
	per := 3000
	if testing.Short() {
		per = 700
	}
	for _, slots := range []uint64{1, 2} {
		t.Run(fmt.Sprint(slots), func(t *testing.T) {
			q := newTestQueue(t, Config{Slots: slots, SlotSize: 64, Locked: locked})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var backends []notify.Backend
			handle := func() *Queue {
				b := notify.Default()
				t.Cleanup(func() { b.Close() })
				backends = append(backends, b)
				return openHandle(t, q, Wait{Backend: b, Spin: -1})
			}
			var ps []*Producer
			var cs []*Consumer
			for i := 0; i < np; i++ {
				ps = append(ps, mustProducer(t, handle()))
			}
			for i := 0; i < nc; i++ {
				cs = append(cs, mustConsumer(t, handle()))
			}
			errc := make(chan error, np+nc+1)
			got := make([][]uint64, nc) // per consumer: id<<32|seq
			var pwg, cwg sync.WaitGroup
			for i, p := range ps {
				pwg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(i), 1))
					msg := make([]byte, 12)
					for k := 0; k < per; k++ {
						binary.LittleEndian.PutUint32(msg, uint32(i))
						binary.LittleEndian.PutUint64(msg[4:], uint64(k))
						if err := p.Send(ctx, msg); err != nil {
							errc <- fmt.Errorf("producer %d send %d (a lost wakeup if the deadline passed): %w", i, k, err)
							return
						}
						if rng.IntN(4) == 0 {
							time.Sleep(time.Duration(rng.IntN(20)) * time.Microsecond)
						}
					}
				})
			}
			for i, c := range cs {
				cwg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(i), 2))
					buf := make([]byte, 64)
					for {
						n, err := c.Recv(ctx, buf)
						if err != nil {
							errc <- fmt.Errorf("consumer %d after %d messages (a lost wakeup if the deadline passed): %w", i, len(got[i]), err)
							return
						}
						if n != 12 {
							errc <- fmt.Errorf("consumer %d: %d-byte message", i, n)
							return
						}
						id := binary.LittleEndian.Uint32(buf)
						if id == sentinelID {
							return
						}
						got[i] = append(got[i], uint64(id)<<32|binary.LittleEndian.Uint64(buf[4:]))
						if rng.IntN(4) == 0 {
							time.Sleep(time.Duration(rng.IntN(20)) * time.Microsecond)
						}
					}
				})
			}
			// One end-of-stream message per consumer, after every real one.
			pwg.Wait()
			end := make([]byte, 12)
			binary.LittleEndian.PutUint32(end, sentinelID)
			for range nc {
				if err := ps[0].Send(ctx, end); err != nil {
					errc <- fmt.Errorf("sentinel: %w", err)
					break
				}
			}
			cwg.Wait()
			close(errc)
			for err := range errc {
				t.Error(err)
			}
			if t.Failed() {
				t.FailNow()
			}
			seen := make([][]int, np)
			for i := range seen {
				seen[i] = make([]int, per)
			}
			for i, g := range got {
				last := map[uint32]uint64{}
				for _, m := range g {
					id, seq := uint32(m>>32), m&(1<<32-1)
					if int(id) >= np || int(seq) >= per {
						t.Fatalf("consumer %d got producer %d seq %d", i, id, seq)
					}
					if l, ok := last[id]; ok && seq <= l {
						t.Fatalf("consumer %d: producer %d seq %d after %d", i, id, seq, l)
					}
					last[id] = seq
					seen[id][seq]++
				}
			}
			for id := range seen {
				for seq, n := range seen[id] {
					if n != 1 {
						t.Fatalf("producer %d seq %d delivered %d times", id, seq, n)
					}
				}
			}
			var parks, syscalls uint64
			for _, b := range backends {
				parks += b.Stats().Waits
				syscalls += b.Stats().WakeSyscalls
			}
			t.Logf("%d messages; %d parks, %d wake syscalls", np*per, parks, syscalls)
			// Locked mode spins by package sem's rules (Spin is not used),
			// so it may get through a short run without parking.
			if parks == 0 && !locked {
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
	defer pf.Close()
	q := newTestQueue(t, Config{Slots: 1024, MaxMessage: 64, Wait: Wait{Backend: pf}})
	qc := openHandle(t, q, Wait{Spin: time.Second})
	p, c := mustProducer(t, q), mustConsumer(t, qc)
	shmtest.CheckStreamWakes(t, count, p.Send, c.Recv, func() uint64 { return pf.Stats().WakeSyscalls })
}

// TestIdleConsumerUsesNoCPU: a consumer blocked in Recv on an empty queue
// parks (returning once a second to look for dead producers)
// instead of polling. SHMQ_IDLE=10s measures a longer idle period.
func TestIdleConsumerUsesNoCPU(t *testing.T) {
	for _, locked := range []bool{false, true} {
		t.Run(fmt.Sprintf("locked=%v", locked), func(t *testing.T) {
			q := newTestQueue(t, Config{Slots: 16, Locked: locked})
			c := mustConsumer(t, openHandle(t, q, Wait{}))
			shmtest.CheckIdleRecv(t, func(ctx context.Context) error {
				_, err := c.Recv(ctx, make([]byte, q.MaxMessage()))
				return err
			})
		})
	}
}
