package mpmc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/notify"
)

// TestSharedProducerManyGoroutines: thousands of goroutines send through
// one SharedProducer, with every call, to consumer processes (the stress
// consumers, which check per-producer order: here the producer id is the
// goroutine's); every message is delivered exactly once, and the queue's
// registry shows one producer entry with all the messages counted.
func TestSharedProducerManyGoroutines(t *testing.T) {
	goroutines, per := 2000, 25
	if raceEnabled {
		goroutines, per = 500, 20
	}
	for _, locked := range []bool{false, true} {
		t.Run(fmt.Sprintf("locked=%v", locked), func(t *testing.T) {
			sharedStress(t, locked, goroutines, per)
		})
	}
}

func sharedStress(t *testing.T, locked bool, goroutines, per int) {
	const nc = 2
	q := newTestQueue(t, Config{Slots: 64, SlotSize: 64, Locked: locked})
	dir := t.TempDir()
	var cons []*exec.Cmd
	for i := range nc {
		cmd := helper(t, q, "stress-consumer", "MPMC_OUT="+filepath.Join(dir, fmt.Sprint(i)))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				cmd.Process.Kill()
				cmd.Wait()
			}
		})
		cons = append(cons, cmd)
	}
	s, err := q.SharedProducer()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for id := range goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(id), 3))
			buf := make([]byte, 2*q.MaxMessage())
			size := func() int { return stressHeader + rng.IntN(q.MaxMessage()-stressHeader+1) }
			for seq := 0; seq < per; {
				var err error
				switch r := rng.IntN(8); {
				case r == 0 && per-seq >= 2:
					m0 := stressMessage(buf, uint32(id), uint64(seq), size())
					m1 := stressMessage(buf[q.MaxMessage():], uint32(id), uint64(seq+1), size())
					err = s.SendBatch(ctx, [][]byte{m0, m1})
					seq += 2
				case r == 1:
					m := stressMessage(buf, uint32(id), uint64(seq), size())
					for {
						if err = s.TrySend(m); err != ErrFull {
							break
						}
						time.Sleep(time.Duration(rng.IntN(200)) * time.Microsecond)
					}
					seq++
				case r == 2:
					m := stressMessage(buf, uint32(id), uint64(seq), size())
					for {
						var n int
						if n, err = s.TrySendBatch([][]byte{m}); n == 1 || err != ErrFull {
							break
						}
						time.Sleep(time.Duration(rng.IntN(200)) * time.Microsecond)
					}
					seq++
				default:
					err = s.Send(ctx, stressMessage(buf, uint32(id), uint64(seq), size()))
					seq++
				}
				if err != nil {
					errs <- fmt.Errorf("goroutine %d: %w", id, err)
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
	buf := make([]byte, 64)
	for range nc {
		if err := s.Send(ctx, stressMessage(buf, sentinelID, 0, stressHeader)); err != nil {
			t.Fatal(err)
		}
	}
	for _, cmd := range cons {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("consumer: %v", err)
		}
	}
	seen := make([][]uint8, goroutines)
	for i := range seen {
		seen[i] = make([]uint8, per)
	}
	for i := range nc {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		for ; len(b) >= 8; b = b[8:] {
			id, seq := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:])
			if int(id) >= goroutines || int(seq) >= per {
				t.Fatalf("consumer %d got goroutine %d seq %d", i, id, seq)
			}
			seen[id][seq]++
		}
	}
	for id := range seen {
		for seq, n := range seen[id] {
			if n != 1 {
				t.Fatalf("goroutine %d seq %d delivered %d times", id, seq, n)
			}
		}
	}
	st, err := q.Stats()
	if err != nil {
		t.Fatal(err)
	}
	producers := 0
	for _, e := range st.Entries {
		if e.Role == layout.RoleProducer && e.State == layout.EntryAttached {
			producers++
			if e.Index != s.Index() || e.Messages != uint64(goroutines*per+nc) {
				t.Fatalf("producer entry %d counts %d messages, want entry %d with %d", e.Index, e.Messages, s.Index(), goroutines*per+nc)
			}
		}
	}
	if producers != 1 {
		t.Fatalf("%d producer entries attached, want 1", producers)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestSharedProducerOneWaiter: while many goroutines are blocked on a full
// queue, one of them parks, registered as the entry's waiter, and the
// others wait in line; the messages taken let them all through.
func TestSharedProducerOneWaiter(t *testing.T) {
	for _, locked := range []bool{false, true} {
		t.Run(fmt.Sprintf("locked=%v", locked), func(t *testing.T) {
			f := notify.Default()
			q := newTestQueue(t, Config{Slots: 4, MaxMessage: 8, Locked: locked, Wait: Wait{Backend: f}})
			s, err := q.SharedProducer()
			if err != nil {
				t.Fatal(err)
			}
			c := mustConsumer(t, q)
			const n = 100
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i := range n {
				wg.Go(func() { errs <- s.Send(ctx, []byte{byte(i)}) })
			}
			set := q.producerWake.Waiters
			if locked {
				set = q.lk.sets[0]
			}
			waitUntil(t, func() bool { return set.Count() == 1 && set.Has(s.Index()) && s.room.n.Load() == n-4-1 }) // 4 sent, 1 parked
			parks := f.Stats().Waits
			time.Sleep(50 * time.Millisecond)
			if k := f.Stats().Waits - parks; k > 2 {
				t.Fatalf("%d parks in 50ms with %d goroutines blocked, want 1 goroutine parked", k, n)
			}
			got := map[byte]bool{}
			buf := make([]byte, 8)
			for len(got) < n {
				m, err := c.Recv(ctx, buf)
				if err != nil {
					t.Fatal(err)
				}
				if got[buf[0]] || m != 1 {
					t.Fatalf("message %d twice", buf[0])
				}
				got[buf[0]] = true
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			if set.Any() {
				t.Fatal("still registered after every Send returned")
			}
		})
	}
}

// waitUntil polls cond for up to 5 s.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSharedProducerCloseWhileBlocked: Close (of the producer, or of its
// queue) while goroutines are blocked in Send and SendBatch, parked or in
// line, returns ErrClosed to every one of them, and later calls fail alike.
func TestSharedProducerCloseWhileBlocked(t *testing.T) {
	for _, viaQueue := range []bool{false, true} {
		t.Run(fmt.Sprintf("queue=%v", viaQueue), func(t *testing.T) {
			q := newTestQueue(t, Config{Slots: 2, MaxMessage: 8})
			s, err := q.SharedProducer()
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if err := s.TrySend([]byte("x")); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.TrySend([]byte("x")); err != ErrFull {
				t.Fatalf("TrySend on a full queue: %v", err)
			}
			const n = 50
			errs := make(chan error, n)
			for i := range n {
				go func() {
					if i%2 == 0 {
						errs <- s.Send(context.Background(), []byte("x"))
					} else {
						errs <- s.SendBatch(context.Background(), [][]byte{[]byte("y"), []byte("z")})
					}
				}()
			}
			waitUntil(t, func() bool { return s.room.n.Load() == n-1 })
			done := make(chan error, 1)
			go func() {
				if viaQueue {
					done <- q.Close()
				} else {
					done <- s.Close()
				}
			}()
			for range n {
				select {
				case err := <-errs:
					if !errors.Is(err, ErrClosed) || !errors.Is(err, net.ErrClosed) {
						t.Fatalf("blocked call returned %v, want ErrClosed", err)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("a blocked call did not return after Close")
				}
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Close did not return")
			}
			if err := s.TrySend([]byte("x")); !errors.Is(err, ErrClosed) {
				t.Fatalf("TrySend after Close: %v", err)
			}
		})
	}
}

// TestSharedProducerContext: goroutines waiting for room whose context
// ends leave with their context's error (parked or in line); the others
// still get through.
func TestSharedProducerContext(t *testing.T) {
	q := newTestQueue(t, Config{Slots: 2, MaxMessage: 8})
	s, err := q.SharedProducer()
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.TrySend([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	type result struct {
		short bool
		err   error
	}
	const n = 20
	results := make(chan result, n)
	for i := range n {
		ctx := context.Background()
		if i%2 == 1 {
			ctx = short
		}
		go func() { results <- result{i%2 == 1, s.Send(ctx, []byte{byte(i)})} }()
	}
	<-short.Done()
	time.Sleep(30 * time.Millisecond)
	// A consumer drains the queue; a Send that starts late (on a loaded
	// machine) may find room and succeed although its context has ended.
	rctx, rcancel := context.WithCancel(context.Background())
	defer rcancel()
	var received atomic.Int64
	go func() {
		c := mustConsumer(t, q)
		buf := make([]byte, 8)
		for {
			if _, err := c.Recv(rctx, buf); err != nil {
				return
			}
			received.Add(1)
		}
	}()
	sent, expired := 0, 0
	for range n {
		select {
		case r := <-results:
			switch {
			case r.err == nil:
				sent++
			case r.short && errors.Is(r.err, context.DeadlineExceeded):
				expired++
			default:
				t.Fatalf("Send (short context %v): %v", r.short, r.err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%d sends still blocked after 10s", n-sent-expired)
		}
	}
	if expired == 0 {
		t.Fatal("no send expired: the test did not exercise leaving the line")
	}
	waitUntil(t, func() bool { return received.Load() == int64(2+sent) })
}

// TestSharedProducerArguments: bad input and nil handles give typed
// errors.
func TestSharedProducerArguments(t *testing.T) {
	q := newTestQueue(t, Config{Slots: 2, MaxMessage: 8})
	s, err := q.SharedProducer()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.TrySend(make([]byte, 9)); !errors.Is(err, ErrMessageSize) {
		t.Fatalf("TrySend of 9 bytes: %v", err)
	}
	if err := s.Send(context.Background(), nil); !errors.Is(err, ErrMessageSize) {
		t.Fatalf("Send of 0 bytes: %v", err)
	}
	var nilS *SharedProducer
	if err := nilS.TrySend([]byte("x")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("TrySend on nil: %v", err)
	}
	if err := (&SharedProducer{}).Close(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Close of a zero SharedProducer: %v", err)
	}
}
