package spsc

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
)

// locations makes one fresh queue location of each backing.
func locations(t *testing.T) map[string]ring.Location {
	return map[string]ring.Location{
		"shm":   tempShm(t),
		"file":  ring.File(filepath.Join(t.TempDir(), "q")),
		"memfd": ring.Memfd("lifecycle"),
	}
}

// waitParked waits until registry entry i is registered in l's waiter set.
func waitParked(t *testing.T, set func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !set() {
		if time.Now().After(deadline) {
			t.Fatal("the call never parked")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCloseUnblocks: every blocking call returns an error matching
// ErrClosed and net.ErrClosed when its queue or handle is closed by another
// goroutine, on every backing, and the process survives the unmap.
func TestCloseUnblocks(t *testing.T) {
	type op struct {
		name    string
		blocked func(q *Queue, p *Producer, c *Consumer) error
		full    bool // the ring must be full for the call to block
	}
	ops := []op{
		{"Recv", func(q *Queue, p *Producer, c *Consumer) error {
			_, err := c.Recv(context.Background(), make([]byte, 64))
			return err
		}, false},
		{"PeekWait", func(q *Queue, p *Producer, c *Consumer) error {
			_, err := c.PeekWait(context.Background())
			return err
		}, false},
		{"Send", func(q *Queue, p *Producer, c *Consumer) error {
			return p.Send(context.Background(), make([]byte, 8))
		}, true},
		{"ReserveWait", func(q *Queue, p *Producer, c *Consumer) error {
			_, err := p.ReserveWait(context.Background(), 8)
			return err
		}, true},
		{"SendBatch", func(q *Queue, p *Producer, c *Consumer) error {
			return p.SendBatch(context.Background(), [][]byte{make([]byte, 8), make([]byte, 8)})
		}, true},
	}
	closers := map[string]func(q *Queue, p *Producer, c *Consumer) error{
		"Queue.Close":  func(q *Queue, p *Producer, c *Consumer) error { return q.Close() },
		"handle.Close": nil, // the blocked call's own handle
	}
	for lname, loc := range locations(t) {
		for _, o := range ops {
			for cname, closer := range closers {
				t.Run(lname+"/"+o.name+"/"+cname, func(t *testing.T) {
					q, err := Create(loc, Config{Capacity: 256, Wait: Wait{Spin: -1}})
					if err != nil {
						t.Fatal(err)
					}
					defer q.Close()
					defer ring.Unlink(loc)
					p, err := q.Producer()
					if err != nil {
						t.Fatal(err)
					}
					c, err := q.Consumer()
					if err != nil {
						t.Fatal(err)
					}
					set, entry := q.consumerWake.Waiters, layout.SPSCConsumerEntry
					if o.full {
						for p.TrySend(make([]byte, 8)) == nil {
						}
						set, entry = q.producerWake.Waiters, layout.SPSCProducerEntry
					}
					done := make(chan error, 1)
					go func() { done <- o.blocked(q, p, c) }()
					waitParked(t, func() bool { return set.Has(entry) })
					if closer == nil {
						if o.full {
							closer = func(*Queue, *Producer, *Consumer) error { return p.Close() }
						} else {
							closer = func(*Queue, *Producer, *Consumer) error { return c.Close() }
						}
					}
					if err := closer(q, p, c); err != nil {
						t.Fatalf("close: %v", err)
					}
					select {
					case err := <-done:
						if !errors.Is(err, ErrClosed) || !errors.Is(err, net.ErrClosed) {
							t.Fatalf("%s after close: %v, want ErrClosed and net.ErrClosed", o.name, err)
						}
						if !strings.HasPrefix(err.Error(), "spsc: "+o.name+": ") {
							t.Fatalf("error %q does not name the operation", err)
						}
					case <-time.After(5 * time.Second):
						t.Fatalf("%s still blocked 5 s after close", o.name)
					}
					if err := o.blocked(q, p, c); !errors.Is(err, ErrClosed) {
						t.Fatalf("%s on a closed handle: %v", o.name, err)
					}
				})
			}
		}
	}
}

// TestCloseWhileBusy: Queue.Close while other goroutines run non-blocking
// calls in a tight loop; nothing faults, and every call after Close
// returned fails with ErrClosed.
func TestCloseWhileBusy(t *testing.T) {
	for lname, loc := range locations(t) {
		t.Run(lname, func(t *testing.T) {
			for range 20 {
				q, err := Create(loc, Config{Capacity: 1024})
				if err != nil {
					t.Fatal(err)
				}
				p, _ := q.Producer()
				c, _ := q.Consumer()
				var wg sync.WaitGroup
				stop := make(chan struct{})
				wg.Go(func() {
					for {
						if err := p.TrySend(make([]byte, 16)); errors.Is(err, ErrClosed) {
							return
						}
					}
				})
				wg.Go(func() {
					buf := make([]byte, 64)
					for {
						if _, err := c.TryRecv(buf); errors.Is(err, ErrClosed) {
							return
						}
						q.Stats()
					}
				})
				time.Sleep(2 * time.Millisecond)
				if err := q.Close(); err != nil {
					t.Fatal(err)
				}
				close(stop)
				wg.Wait()
				if _, err := q.Stats(); !errors.Is(err, ErrClosed) {
					t.Fatalf("Stats after Close: %v", err)
				}
				ring.Unlink(loc)
			}
		})
	}
}

// TestEndOfStream: after the producer closes cleanly and the consumer has
// drained the ring, Recv and PeekWait return io.EOF; a producer that
// attaches later starts a new stream on the same consumer.
func TestEndOfStream(t *testing.T) {
	q, err := Create(tempShm(t), Config{Capacity: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	c, err := q.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	buf := make([]byte, 64)
	for stream := range 3 {
		p, err := q.Producer()
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan int, 1)
		go func() { // blocked in Recv before the producer closes
			n := 0
			for {
				if _, err := c.Recv(ctx, buf); err != nil {
					if err != io.EOF {
						t.Errorf("stream %d: Recv: %v, want io.EOF", stream, err)
					}
					got <- n
					return
				}
				n++
			}
		}()
		for i := range 100 {
			if err := p.Send(ctx, []byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(5 * time.Millisecond)
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if n := <-got; n != 100 {
			t.Fatalf("stream %d: %d messages before io.EOF, want 100", stream, n)
		}
		if _, err := c.PeekWait(ctx); err != io.EOF {
			t.Fatalf("PeekWait at the end: %v, want io.EOF", err)
		}
		if _, err := c.TryRecv(buf); err != ErrEmpty {
			t.Fatalf("TryRecv at the end: %v, want ErrEmpty", err)
		}
	}
	// Before any producer attached, Recv waits rather than ending.
	q2, err := Create(tempShm(t), Config{Capacity: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Close()
	c2, _ := q2.Consumer()
	sctx, scancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer scancel()
	if _, err := c2.Recv(sctx, buf); !errors.Is(err, context.DeadlineExceeded) ||
		err.Error() != "spsc: Recv: context deadline exceeded" {
		t.Fatalf("Recv with no producer yet: %v, want \"spsc: Recv: context deadline exceeded\"", err)
	}
}

// TestErrorVocabulary: the sentinels are shared and match the standard
// library's.
func TestErrorVocabulary(t *testing.T) {
	for _, c := range []struct {
		err, std error
	}{
		{ErrClosed, net.ErrClosed},
		{ErrNotFound, fsErrNotExist},
		{ErrExists, fsErrExist},
		{ErrPermission, fsErrPermission},
		{ErrInvalid, fsErrInvalid},
	} {
		if !errors.Is(c.err, c.std) || !errors.Is(opError("Op", c.err), c.std) {
			t.Errorf("%v does not match %v", c.err, c.std)
		}
	}
	if _, err := Open(context.Background(), ring.Shm("shmq-no-such-queue"), nil); !errors.Is(err, fsErrNotExist) {
		t.Errorf("Open of a missing queue: %v, want fs.ErrNotExist", err)
	}
}

// TestNilHandles: methods of nil or zero-value handles return errors.
func TestNilHandles(t *testing.T) {
	var q *Queue
	var p *Producer
	var c *Consumer
	ctx := context.Background()
	errs := []error{q.Close(), p.Close(), c.Close(), p.TrySend([]byte{1}), p.Send(ctx, []byte{1}), p.Commit(),
		(&Queue{}).Close(), (&Producer{}).Commit(), (&Consumer{}).Release(), c.Release()}
	_, e1 := q.Producer()
	_, e2 := q.Consumer()
	_, e3 := c.TryRecv(nil)
	_, e4 := c.Recv(ctx, nil)
	_, e5 := q.Stats()
	_, e6 := (&Consumer{}).Peek()
	errs = append(errs, e1, e2, e3, e4, e5, e6, q.Guard(func() error { return nil }))
	for i, err := range errs {
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("call %d: %v, want ErrInvalid", i, err)
		}
	}
	c.Rewind()
}

// TestTryRecvBatchMax: a non-positive max is an error, not a silent 0.
func TestTryRecvBatchMax(t *testing.T) {
	_, c := openPair(t, 4096, Wait{}, Wait{})
	for _, max := range []int{0, -1} {
		if _, err := c.TryRecvBatch(max, func([]byte) error { return nil }); !errors.Is(err, ErrInvalid) {
			t.Errorf("TryRecvBatch(%d): %v, want ErrInvalid", max, err)
		}
	}
}

// TestKilledParkedWaiter: a waiter killed while parked leaves a
// registration that its peer clears, so a stream afterwards makes no wake
// system call per message (before, every commit woke the dead waiter).
func TestKilledParkedWaiter(t *testing.T) {
	for _, side := range []string{"consumer", "producer"} {
		t.Run(side, func(t *testing.T) {
			loc := tempShm(t)
			q, err := Create(loc, Config{Capacity: 1 << 16})
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			mode, set, entry := "recv-park", q.consumerWake.Waiters, layout.SPSCConsumerEntry
			if side == "producer" {
				mode, set, entry = "send-park", q.producerWake.Waiters, layout.SPSCProducerEntry
			}
			h := startHelper(t, mode, queueName(loc), map[string]string{"SHMQ_WAIT": "park"})
			h.expect(t, "attached")
			waitParked(t, func() bool { return set.Has(entry) })
			h.kill()
			if !set.Has(entry) {
				t.Fatal("the registration vanished with the process: nothing to test")
			}
			const n = 20000
			var wakes uint64
			if side == "consumer" {
				p, err := q.Producer()
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i < n; i++ {
					if p.TrySend(make([]byte, 8)) == ErrFull {
						break
					}
				}
				wakes = p.e.Wakes.Load()
			} else {
				c, err := q.Consumer()
				if err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 64)
				for i := 0; i < n; i++ {
					if _, err := c.TryRecv(buf); err != nil {
						break
					}
				}
				wakes = c.e.Wakes.Load()
			}
			if wakes > 1 || set.Has(entry) {
				t.Fatalf("after the parked %s was killed: %d wakes, registration still there: %v; want at most 1 wake",
					side, wakes, set.Has(entry))
			}
		})
	}
}
