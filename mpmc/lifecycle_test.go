package mpmc

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
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
	shm, _ := tempShm(t)
	return map[string]ring.Location{
		"shm":   shm,
		"file":  ring.File(filepath.Join(t.TempDir(), "q")),
		"memfd": ring.Memfd("lifecycle"),
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCloseUnblocks: every blocking call returns an error matching
// ErrClosed and net.ErrClosed when its queue or handle is closed by another
// goroutine, on every backing and in both modes, and the process survives
// the unmap.
func TestCloseUnblocks(t *testing.T) {
	type op struct {
		name     string
		call     func(p *Producer, c *Consumer) error
		full     bool // blocks on a full queue (else on an empty one)
		lockFree bool // not available in locked mode
	}
	ops := []op{
		{"Recv", func(p *Producer, c *Consumer) error {
			_, err := c.Recv(context.Background(), make([]byte, 64))
			return err
		}, false, false},
		{"PeekWait", func(p *Producer, c *Consumer) error {
			_, err := c.PeekWait(context.Background())
			return err
		}, false, true},
		{"Send", func(p *Producer, c *Consumer) error { return p.Send(context.Background(), []byte("x")) }, true, false},
		{"ReserveWait", func(p *Producer, c *Consumer) error {
			_, err := p.ReserveWait(context.Background(), 8)
			return err
		}, true, true},
		{"SendBatch", func(p *Producer, c *Consumer) error {
			return p.SendBatch(context.Background(), [][]byte{[]byte("x"), []byte("y")})
		}, true, false},
	}
	for _, locked := range []bool{false, true} {
		for lname, loc := range locations(t) {
			for _, o := range ops {
				if locked && o.lockFree {
					continue
				}
				for _, byQueue := range []bool{false, true} {
					name := lname + "/" + o.name
					if locked {
						name = "locked/" + name
					}
					if byQueue {
						name += "/Queue.Close"
					}
					t.Run(name, func(t *testing.T) {
						q, err := Create(loc, Config{Slots: 2, SlotSize: 64, Locked: locked, Wait: Wait{Spin: -1}})
						if err != nil {
							t.Fatal(err)
						}
						defer q.Close()
						defer ring.Unlink(loc)
						p, c := mustProducer(t, q), mustConsumer(t, q)
						if o.full {
							for p.TrySend([]byte("fill")) == nil {
							}
						}
						done := make(chan error, 1)
						go func() { done <- o.call(p, c) }()
						time.Sleep(20 * time.Millisecond) // let it park
						closeIt := c.Close
						if o.full {
							closeIt = p.Close
						}
						if byQueue {
							closeIt = q.Close
						}
						if err := closeIt(); err != nil {
							t.Fatalf("close: %v", err)
						}
						select {
						case err := <-done:
							if !errors.Is(err, ErrClosed) || !errors.Is(err, net.ErrClosed) {
								t.Fatalf("%s after close: %v, want ErrClosed and net.ErrClosed", o.name, err)
							}
							if !strings.HasPrefix(err.Error(), "mpmc: "+o.name+": ") {
								t.Fatalf("error %q does not name the operation", err)
							}
						case <-time.After(5 * time.Second):
							t.Fatalf("%s still blocked 5 s after close", o.name)
						}
					})
				}
			}
		}
	}
}

// TestCloseWhileBusy: Queue.Close while other goroutines run calls in a
// tight loop; nothing faults, and the calls end with ErrClosed.
func TestCloseWhileBusy(t *testing.T) {
	for lname, loc := range locations(t) {
		t.Run(lname, func(t *testing.T) {
			for range 20 {
				q, err := Create(loc, Config{Slots: 8, SlotSize: 64})
				if err != nil {
					t.Fatal(err)
				}
				p, c := mustProducer(t, q), mustConsumer(t, q)
				var wg sync.WaitGroup
				wg.Go(func() {
					for !errors.Is(p.TrySend([]byte("0123456789")), ErrClosed) {
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
				wg.Wait()
				ring.Unlink(loc)
			}
		})
	}
}

// TestEndOfStream: a consumer that opts in receives io.EOF once no
// producer has been attached for the grace and the queue is empty; a
// producer that comes back within the grace continues the stream; without
// opting in, Recv keeps waiting; a producer that died attached is
// ErrPeerDead, not io.EOF.
func TestEndOfStream(t *testing.T) {
	for _, locked := range []bool{false, true} {
		t.Run(map[bool]string{false: "lock-free", true: "locked"}[locked], func(t *testing.T) {
			q := newTestQueue(t, Config{Slots: 8, SlotSize: 64, Locked: locked})
			c := mustConsumer(t, q)
			// A producer comes back 10 ms after the last one left; the
			// grace leaves a loaded machine room to stall this goroutine
			// well past that before the stream would (wrongly) end.
			c.EndOfStream(500 * time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			buf := make([]byte, 64)
			got := make(chan int, 1)
			go func() {
				n := 0
				for {
					if _, err := c.Recv(ctx, buf); err != nil {
						if err != io.EOF {
							t.Errorf("Recv: %v, want io.EOF", err)
						}
						got <- n
						return
					}
					n++
				}
			}()
			for round := range 3 { // producers come and go within the grace
				p := mustProducer(t, q)
				for i := range 5 {
					if err := p.Send(ctx, []byte{byte(round), byte(i)}); err != nil {
						t.Fatal(err)
					}
				}
				p.Close()
				time.Sleep(10 * time.Millisecond)
			}
			if n := <-got; n != 15 {
				t.Fatalf("%d messages before io.EOF, want 15", n)
			}
			c2 := mustConsumer(t, q)
			short, scancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer scancel()
			if _, err := c2.Recv(short, buf); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Recv without EndOfStream: %v, want a deadline", err)
			}
		})
	}
	// A consumer that starts before any producer waits for one, however
	// long the grace has run.
	qf := newTestQueue(t, Config{Slots: 2, SlotSize: 64})
	cf := mustConsumer(t, qf)
	cf.EndOfStream(10 * time.Millisecond)
	early, ecancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer ecancel()
	if _, err := cf.Recv(early, make([]byte, 64)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Recv before any producer: %v, want a deadline (not io.EOF)", err)
	}
	// A producer killed while attached.
	q := newTestQueue(t, Config{Slots: 2, SlotSize: 64})
	c := mustConsumer(t, q)
	c.EndOfStream(20 * time.Millisecond)
	cmd := helper(t, q, "send-park")
	startAndWaitReady(t, cmd)
	cmd.Process.Kill()
	cmd.Wait()
	buf := make([]byte, 64)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, err := c.Recv(ctx, buf)
		if err == nil {
			continue // the dead producer's committed messages
		}
		if !errors.Is(err, ErrPeerDead) {
			t.Fatalf("after the producer was killed: %v, want ErrPeerDead", err)
		}
		break
	}
}

// TestKilledParkedWaiter: a waiter killed while parked leaves a
// registration that the queue's publishers clear, so a stream afterwards
// makes (almost) no wake system call per message; before, every commit and
// every release paid one for the dead waiter.
func TestKilledParkedWaiter(t *testing.T) {
	for _, role := range []string{"recv-park", "send-park"} {
		t.Run(role, func(t *testing.T) {
			q := newTestQueue(t, Config{Slots: 64, SlotSize: 64})
			set := q.consumerWake.Waiters
			if role == "send-park" {
				set = q.producerWake.Waiters
			}
			var cmds []*exec.Cmd
			for range 3 {
				cmd := helper(t, q, role)
				startAndWaitReady(t, cmd)
				cmds = append(cmds, cmd)
			}
			waitFor(t, "the helpers parked", func() bool { return set.Count() == len(cmds) })
			for _, cmd := range cmds {
				cmd.Process.Kill()
				cmd.Wait()
			}
			if !set.Any() {
				t.Fatal("the registrations vanished with the processes: nothing to test")
			}
			p, c := mustProducer(t, q), mustConsumer(t, q)
			buf := make([]byte, 64)
			for i := 0; i < 5000; i++ {
				p.TrySend([]byte("x"))
				c.TryRecv(buf)
			}
			if w := p.e.Wakes.Load() + c.e.Wakes.Load(); w > 4 || set.Any() {
				t.Fatalf("after the parked waiters were killed: %d wakes for 5000 messages, registrations left: %v", w, set.Any())
			}
		})
	}
}

// TestRecoveryNeverTombstonesALaterMessage exercises LAYOUT.md's former
// open point: a consumer judges a dead producer's claim gone and is about to
// skip it, while another process takes over the dead producer's registry
// entry and recovers the same stale claim. The consumer skips first, the
// slot goes round a lap and receives a new message, and only then does the
// recoverer act on the word it loaded. It must leave that message alone.
// The test hooks delay each side at the point where it decided.
func TestRecoveryNeverTombstonesALaterMessage(t *testing.T) {
	q := newTestQueue(t, Config{Slots: 1, SlotSize: 64, Registry: 4})
	c := mustConsumer(t, q)
	q2 := reopen(t, q)
	dead := mustProducer(t, q2)
	if _, err := dead.Reserve(4); err != nil { // W(0, dead), never committed
		t.Fatal(err)
	}
	deadIndex := dead.Index()
	q2.Segment().Close() // dies: its entry's lock goes
	dead.g.Close(nil)
	delete(q2.producers, dead)

	consumerAt, consumerGo := make(chan struct{}), make(chan struct{})
	recovererAt, recovererGo := make(chan struct{}), make(chan struct{})
	testHook = func(point string, pos uint64) {
		switch point {
		case "skip-W":
			close(consumerAt)
			<-consumerGo
		case "recover-W":
			close(recovererAt)
			<-recovererGo
		}
	}
	defer func() { testHook = func(string, uint64) {} }()

	// The consumer finds the claim stuck, checks the registry (dead) and
	// stops just before its skip.
	skipped := make(chan error, 1)
	go func() {
		buf := make([]byte, 64)
		for {
			_, err := c.TryRecv(buf)
			if err != ErrEmpty {
				skipped <- err
				return
			}
			select {
			case <-consumerAt:
				skipped <- nil
				return
			default:
			}
			time.Sleep(time.Millisecond)
		}
	}()
	<-consumerAt
	// Another process takes the dead producer's entry over and stops just
	// before it acts on the stale claim.
	q3 := reopen(t, q)
	var p3 *Producer
	attached := make(chan error, 1)
	go func() {
		var err error
		p3, err = q3.Producer()
		attached <- err
	}()
	<-recovererAt
	// The consumer skips the slot; a live producer fills it again.
	close(consumerGo)
	if err := <-skipped; err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if _, err := c.TryRecv(buf); err != ErrEmpty { // passes the tombstone
		t.Fatalf("after the skip: %v", err)
	}
	live := mustProducer(t, q)
	if err := live.TrySend([]byte("precious")); err != nil {
		t.Fatal(err)
	}
	// Now the recoverer acts on the word it loaded a lap ago.
	close(recovererGo)
	if err := <-attached; err != nil {
		t.Fatal(err)
	}
	if p3.Index() != deadIndex {
		t.Fatalf("the recoverer took entry %d, not the dead producer's %d", p3.Index(), deadIndex)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, err := c.Recv(ctx, buf)
	if err != nil || string(buf[:n]) != "precious" {
		t.Fatalf("the later message: %q, %v; want \"precious\"", buf[:n], err)
	}
}

// TestFailedCommitTombstonesTheRest: when publishing one reservation fails
// (another process rewrote its claim), Commit reports it and turns the
// reservations after it into tombstones, so consumers are not held back
// behind slots a live producer keeps claimed.
func TestFailedCommitTombstonesTheRest(t *testing.T) {
	q := newTestQueue(t, Config{Slots: 8, SlotSize: 64, Registry: 4})
	p, c := mustProducer(t, q), mustConsumer(t, q)
	for i := range 3 {
		b, err := p.Reserve(2)
		if err != nil {
			t.Fatal(err)
		}
		copy(b, []byte{'m', byte('0' + i)})
	}
	// A hostile process rewrites the second claim as entry 3's (never
	// attached, so dead).
	pos := p.pending[1]
	q.seqs[pos&q.mask].Store(layout.SeqWord(pos, layout.SlotWriting, 3))
	if err := p.Commit(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Commit over a rewritten claim: %v, want ErrCorrupt", err)
	}
	if err := p.TrySend([]byte("after")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	buf := make([]byte, 64)
	var got []string
	for len(got) < 2 {
		n, err := c.Recv(ctx, buf)
		if err != nil {
			t.Fatalf("after %q: %v (held back behind a claimed slot)", got, err)
		}
		got = append(got, string(buf[:n]))
	}
	if got[0] != "m0" || got[1] != "after" {
		t.Fatalf("received %q, want [m0 after]", got)
	}
}

// TestGuardZeroCopy: a peeked message and a reservation touched after
// another process truncated the segment give ErrTruncated under Guard, and
// the process lives.
func TestGuardZeroCopy(t *testing.T) {
	loc, path := tempShm(t)
	q, err := Create(loc, Config{Slots: 4, SlotSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	p, c := mustProducer(t, q), mustConsumer(t, q)
	if err := p.TrySend([]byte("zero copy")); err != nil {
		t.Fatal(err)
	}
	m, err := c.Peek()
	if err != nil {
		t.Fatal(err)
	}
	r, err := p.Reserve(8)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	var copied []byte
	if err := q.Guard(func() error { copied = append(copied, m...); return nil }); !errors.Is(err, ErrTruncated) {
		t.Fatalf("reading a peeked message after truncation: %v, want ErrTruncated", err)
	}
	if err := q.Guard(func() error { copy(r, "12345678"); return nil }); !errors.Is(err, ErrTruncated) {
		t.Fatalf("filling a reservation after truncation: %v, want ErrTruncated", err)
	}
}
