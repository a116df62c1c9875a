package sem

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmq/shmq/internal/shmtest"
	"github.com/shmq/shmq/notify"
)

func newSem(t *testing.T, initial, max uint32, be notify.Backend) *Semaphore {
	t.Helper()
	count := new(atomic.Uint32)
	waiters := notify.NewWaiterSet([]*atomic.Uint64{new(atomic.Uint64)})
	count.Store(initial)
	s, err := New(count, waiters, max, be)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// semBackends makes a fresh backend per semaphore.
func semBackends() map[string]func(t *testing.T) notify.Backend {
	m := map[string]func(t *testing.T) notify.Backend{
		"default": func(*testing.T) notify.Backend { return notify.Default() },
		"poll":    func(*testing.T) notify.Backend { return notify.NewPoll(notify.PollConfig{}) },
	}
	addOSBackends(m)
	return m
}

func TestSemaphoreHammer(t *testing.T) {
	const max = 3
	goroutines, iters := 16, 400
	if testing.Short() {
		iters = 100
	}
	for name, mk := range semBackends() {
		t.Run(name, func(t *testing.T) {
			be := mk(t)
			defer be.Close()
			s := newSem(t, max, max, be)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var inside, peak atomic.Int32
			var wg sync.WaitGroup
			errs := make(chan error, goroutines)
			for g := range goroutines {
				wg.Go(func() {
					for range iters {
						if err := s.Acquire(ctx, g); err != nil {
							errs <- err
							return
						}
						if v := inside.Add(1); v > peak.Load() {
							peak.Store(v)
						}
						if rand.IntN(4) == 0 {
							time.Sleep(time.Duration(rand.IntN(20)) * time.Microsecond)
						}
						inside.Add(-1)
						if err := s.Release(1); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if p := peak.Load(); p > max {
				t.Fatalf("%d holders at once, max %d", p, max)
			}
			if c, w := s.count.Load(), s.waiters.Count(); c != max || w != 0 {
				t.Fatalf("count=%d waiters=%d, want %d and 0", c, w, max)
			}
		})
	}
}

// TestBoundedBufferNoLostWakeup runs a producer and consumer over a tiny
// buffer guarded by two semaphores; a lost wake-up stalls it until the
// overall timeout, which fails the test.
func TestBoundedBufferNoLostWakeup(t *testing.T) {
	items := 3000
	if testing.Short() {
		items = 1000
	}
	for name, mk := range semBackends() {
		for _, capacity := range []uint32{1, 2} {
			t.Run(name+"/cap"+string(rune('0'+capacity)), func(t *testing.T) {
				beE, beF := mk(t), mk(t)
				defer beE.Close()
				defer beF.Close()
				empty := newSem(t, capacity, capacity, beE)
				full := newSem(t, 0, capacity, beF)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				var mu sync.Mutex
				var buf []int
				jitter := func() {
					if rand.IntN(8) == 0 {
						time.Sleep(time.Duration(rand.IntN(10)) * time.Microsecond)
					}
				}
				errc := make(chan error, 2)
				go func() {
					for i := range items {
						if err := empty.Acquire(ctx, 0); err != nil {
							errc <- err
							return
						}
						mu.Lock()
						buf = append(buf, i)
						if len(buf) > int(capacity) {
							mu.Unlock()
							errc <- errors.New("buffer over capacity")
							return
						}
						mu.Unlock()
						jitter()
						if err := full.Release(1); err != nil {
							errc <- err
							return
						}
					}
					errc <- nil
				}()
				go func() {
					for i := range items {
						if err := full.Acquire(ctx, 1); err != nil {
							errc <- err
							return
						}
						mu.Lock()
						if len(buf) == 0 || buf[0] != i {
							mu.Unlock()
							errc <- errors.New("item missing or out of order")
							return
						}
						buf = buf[1:]
						mu.Unlock()
						jitter()
						if err := empty.Release(1); err != nil {
							errc <- err
							return
						}
					}
					errc <- nil
				}()
				for range 2 {
					if err := <-errc; err != nil {
						t.Fatal(err)
					}
				}
				t.Logf("parks: empty %d, full %d", beE.Stats().Waits, beF.Stats().Waits)
			})
		}
	}
}

func TestSemaphoreGarbageIsAnError(t *testing.T) {
	s := newSem(t, 0, 4, notify.NewPoll(notify.PollConfig{}))
	if err := s.Release(5); !errors.Is(err, ErrOverflow) {
		t.Fatalf("Release over max: %v", err)
	}
	if err := s.Release(0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Release(0): %v", err)
	}
	s.count.Store(0xfffffff0) // hostile peer
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.Acquire(ctx, 0); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Acquire on corrupt count: %v", err)
	}
	if s.TryAcquire() {
		t.Fatal("TryAcquire succeeded on corrupt count")
	}
	if err := s.Release(1); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Release on corrupt count: %v", err)
	}
	s.count.Store(0)
	for i := range 64 {
		s.waiters.Add(i) // garbage waiters: only useless wakes
	}
	if err := s.Release(1); err != nil {
		t.Fatal(err)
	}
	if !s.TryAcquire() {
		t.Fatal("TryAcquire failed")
	}
	if _, err := New(s.count, s.waiters, MaxCount+1, notify.Default()); !errors.Is(err, ErrInvalid) {
		t.Fatalf("New above MaxCount: %v", err)
	}
}

// TestAcquireDeadline: Acquire ends at its context's deadline, not a park
// period later, and leaves no registration behind. A loaded machine (the
// race detector on a shared 2-core CI box) stalls a 30 ms wait past the
// 80 ms bound about once in 300, so a late return gets a retry; an Acquire
// that overshoots its deadline by a park period does on every try.
func TestAcquireDeadline(t *testing.T) {
	s := newSem(t, 0, 1, notify.Default())
	shmtest.Retry(t, func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := s.Acquire(ctx, 0)
		d := time.Since(start)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
		if w := s.waiters.Count(); w != 0 {
			t.Fatalf("waiters = %d after cancelled Acquire", w)
		}
		if d > 80*time.Millisecond {
			return fmt.Sprintf("took %v", d)
		}
		return ""
	})
}

// TestReleaseWithoutWaitersMakesNoWakeCall is the fast-path promise.
func TestReleaseWithoutWaitersMakesNoWakeCall(t *testing.T) {
	be := notify.Default()
	s := newSem(t, 1, 1, be)
	for range 1000 {
		if err := s.Acquire(context.Background(), 0); err != nil {
			t.Fatal(err)
		}
		if err := s.Release(1); err != nil {
			t.Fatal(err)
		}
	}
	if st := be.Stats(); st.Wakes != 0 || st.WakeSyscalls != 0 || st.Waits != 0 {
		t.Fatalf("stats = %+v, want all zero", st)
	}
}

// failingWake is a backend whose wake calls fail, as a socket backend's do
// when the peer's socket is gone.
type failingWake struct{ notify.Backend }

func (failingWake) Wake(*atomic.Uint32, int) error { return errors.New("wake failed") }

// TestReleaseStandsWhenWakeFails: once the units are published, Release
// reports success (a caller that saw an error would retry and duplicate
// what it released); the failed wake is counted.
func TestReleaseStandsWhenWakeFails(t *testing.T) {
	s := newSem(t, 0, 4, failingWake{notify.Default()})
	s.waiters.Add(3) // a registered waiter, whose wake will fail
	if err := s.Release(1); err != nil {
		t.Fatalf("Release with a failing wake: %v, want nil", err)
	}
	if v, n := s.Value(), s.WakeErrors.Load(); v != 1 || n != 1 {
		t.Fatalf("count %d, wake errors %d; want 1 and 1", v, n)
	}
	words := newWords()
	words.Waiters.Add(5)
	m := mutexHandles(t, 1, words)[0]
	m.be = failingWake{notify.Default()}
	if err := m.Lock(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	if err := m.Unlock(); err != nil || m.WakeErrors.Load() != 1 {
		t.Fatalf("Unlock with a failing wake: %v, %d wake errors; want nil, 1", err, m.WakeErrors.Load())
	}
}
