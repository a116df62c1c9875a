package mpmc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmq/shmq/ring"
)

// TestReviewRecoveryStress drives the lock-free protocol's recovery paths
// at random, in one process: live producers and consumers, each on its own
// handle, stream messages through rings of 1, 2 and 8 slots while a killer
// repeatedly opens a handle, attaches a producer or a consumer (often
// taking over a dead entry: recoverEntry), commits or takes a few messages,
// leaves a reservation or a peeked message behind, and "dies" (its mapping
// closed without detaching, which the registry sees as a death). The test
// hooks delay the recovery CASes at random. Every message a producer
// committed must be delivered at least once; only those a dead consumer had
// taken may be delivered twice; nothing may report ErrCorrupt; nothing may
// hang. A check of soundness: it passes (it logs its seed, and how many
// requeues and tombstones it caused).
func TestReviewRecoveryStress(t *testing.T) {
	if testing.Short() {
		t.Skip("stress")
	}
	for _, slots := range []uint64{1, 2, 8} {
		t.Run(fmt.Sprint(slots), func(t *testing.T) { recoveryStress(t, slots) })
	}
}

func recoveryStress(t *testing.T, slots uint64) {
	const (
		producers = 2
		consumers = 2
		per       = 500
		deaths    = 100
	)
	q := newTestQueue(t, Config{Slots: slots, SlotSize: 64, Registry: 32})
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	var hookMu sync.Mutex
	testHook = func(point string, pos uint64) {
		hookMu.Lock()
		d := time.Duration(rng.IntN(300)) * time.Microsecond
		hookMu.Unlock()
		time.Sleep(d)
	}
	defer func() { testHook = func(string, uint64) {} }()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	type key struct{ id, seq uint32 }
	var mu sync.Mutex
	committed := map[key]bool{}  // every message whose commit returned nil
	delivered := map[key]int{}   // deliveries
	heldByDead := map[key]bool{} // taken by a consumer that then died
	var errs []error
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
		cancel()
	}
	msg := func(id, seq uint32) []byte {
		var b [8]byte
		binary.LittleEndian.PutUint32(b[0:], id)
		binary.LittleEndian.PutUint32(b[4:], seq)
		return b[:]
	}
	parse := func(m []byte) key {
		return key{binary.LittleEndian.Uint32(m[0:]), binary.LittleEndian.Uint32(m[4:])}
	}
	const (
		filler   = 1 << 31
		reserved = 1 << 30
	)

	var live sync.WaitGroup
	var killed atomic.Bool
	var requeued atomic.Uint64
	for i := range producers {
		p := mustProducer(t, reopen(t, q))
		live.Go(func() {
			defer func() { requeued.Add(p.Requeued()) }()
			// Until the killer is done, and at least per messages.
			for s := uint32(0); s < per || !killed.Load(); s++ {
				if s%8 == 0 {
					time.Sleep(50 * time.Microsecond)
				}
				if err := p.Send(ctx, msg(uint32(i), s)); err != nil {
					fail(fmt.Errorf("producer %d: %w", i, err))
					return
				}
				mu.Lock()
				committed[key{uint32(i), s}] = true
				mu.Unlock()
			}
		})
	}
	var readers sync.WaitGroup
	var cs []*Consumer
	for range consumers {
		c := mustConsumer(t, reopen(t, q))
		cs = append(cs, c)
		readers.Go(func() {
			buf := make([]byte, 64)
			for {
				n, err := c.Recv(ctx, buf)
				if err != nil {
					if !errors.Is(err, ErrClosed) && ctx.Err() == nil {
						fail(fmt.Errorf("consumer: %w", err))
					}
					return
				}
				if k := parse(buf[:n]); k.id != filler {
					mu.Lock()
					delivered[k]++
					mu.Unlock()
				}
			}
		})
	}
	// The killer: doomed producers (ids 100+) and consumers.
	live.Go(func() {
		r := rand.New(rand.NewPCG(seed, 4))
		defer killed.Store(true)
		for d := range deaths {
			if ctx.Err() != nil {
				return
			}
			qd, err := Open(ctx, fdOf(q), nil)
			if err != nil {
				fail(err)
				return
			}
			if r.IntN(2) == 0 {
				p, err := qd.Producer()
				if err != nil {
					fail(fmt.Errorf("doomed producer: %w", err))
					return
				}
				id := uint32(100 + d)
				for s := range uint32(r.IntN(3)) {
					if err := p.TrySend(msg(id, s)); err == nil {
						mu.Lock()
						committed[key{id, s}] = true
						mu.Unlock()
					} else if err != ErrFull {
						fail(fmt.Errorf("doomed producer: %w", err))
						return
					}
				}
				if r.IntN(2) == 0 {
					if b, err := p.Reserve(8); err == nil {
						copy(b, msg(reserved|id, 0)) // never committed: dropped
					} else if err != ErrFull {
						fail(fmt.Errorf("doomed reserve: %w", err))
						return
					}
				}
				qd.Segment().Close()
				p.g.Close(nil)
				delete(qd.producers, p)
			} else {
				c, err := qd.Consumer()
				if err != nil {
					fail(fmt.Errorf("doomed consumer: %w", err))
					return
				}
				buf := make([]byte, 64)
				if n, err := c.TryRecv(buf); err == nil {
					if k := parse(buf[:n]); k.id != filler {
						mu.Lock()
						delivered[k]++
						mu.Unlock()
					}
				} else if err != ErrEmpty {
					fail(fmt.Errorf("doomed consumer: %w", err))
					return
				}
				for want, tries := r.IntN(3), 0; want > 0 && tries < 200; tries++ {
					m, err := c.Peek()
					if err == ErrEmpty {
						time.Sleep(20 * time.Microsecond)
						continue
					}
					want--
					if err != nil {
						fail(fmt.Errorf("doomed peek: %w", err))
						return
					}
					if k := parse(m); k.id != filler {
						mu.Lock()
						heldByDead[k] = true
						mu.Unlock()
					}
				}
				qd.Segment().Close()
				c.g.Close(nil)
				delete(qd.consumers, c)
			}
			time.Sleep(time.Duration(r.IntN(2000)) * time.Microsecond)
		}
	})
	live.Wait()

	// Messages dead consumers held are requeued only when a producer laps
	// their slot: keep producing fillers until everything has arrived.
	flush := mustProducer(t, reopen(t, q))
	var missing []key
	for {
		missing = missing[:0]
		mu.Lock()
		for k := range committed {
			if delivered[k] == 0 {
				missing = append(missing, k)
			}
		}
		failed := len(errs) > 0
		mu.Unlock()
		if len(missing) == 0 || failed || ctx.Err() != nil {
			break
		}
		flush.TrySend(msg(filler, 0))
		time.Sleep(time.Millisecond)
	}
	skipped := uint64(0)
	for _, c := range cs {
		c.Close()
		skipped += c.Skipped()
	}
	readers.Wait()
	mu.Lock()
	defer mu.Unlock()
	for _, err := range errs {
		t.Error(err)
	}
	if len(missing) > 0 {
		t.Errorf("%d committed messages never delivered, e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
	for k, n := range delivered {
		if n > 1 && !heldByDead[k] {
			t.Errorf("message %v delivered %d times, never held by a dead consumer", k, n)
		}
		if !committed[k] {
			t.Errorf("message %v delivered, never committed", k)
		}
	}
	t.Logf("%d committed, %d delivered, %d held by dead consumers; live producers requeued %d, live consumers passed %d tombstones",
		len(committed), len(delivered), len(heldByDead), requeued.Load(), skipped)
}

func fdOf(q *Queue) ring.Location { return ring.FD(q.Segment().Fd()) }
