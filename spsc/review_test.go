package spsc

// Adversarial review of the core redesign (branch review): each test here
// reproduces one finding of the review report and fails on the code it was
// written against.

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmq/shmq/notify"
	"github.com/shmq/shmq/ring"
)

// stallWake is a futex backend whose next Wake, once armed, stops until
// the test lets it go: a way to hold a goroutine at a chosen point of a
// publishing path (Backend is public configuration, Wait.Backend).
type stallWake struct {
	notify.Backend
	armed   atomic.Bool
	at      chan struct{} // closed when the armed Wake is reached
	release chan struct{} // closed by the test to let it go on
}

func newStallWake() *stallWake {
	return &stallWake{Backend: notify.Default(), at: make(chan struct{}), release: make(chan struct{})}
}

func (s *stallWake) Wake(w *atomic.Uint32, n int) error {
	if s.armed.CompareAndSwap(true, false) {
		close(s.at)
		<-s.release
	}
	return s.Backend.Wake(w, n)
}

// inChild runs body in a child process (the test binary re-run for this
// test alone): the finding it reproduces kills the process that hits it.
// The parent fails with the child's output if the child did not pass.
func inChild(t *testing.T, body func(t *testing.T)) {
	t.Helper()
	const env = "SHMQ_REVIEW_CHILD"
	if os.Getenv(env) == t.Name() {
		body(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), env+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil {
		s := string(out)
		if i := strings.Index(s, "goroutine "); i > 0 {
			s = s[:i] // the signal and the first lines are what matter
		}
		t.Fatalf("child process failed (%v):\n%s", err, s)
	}
}

// TestReviewQueueCloseWaitsForProducerClose: Producer.Close forgets the
// producer in its queue before it detaches, and wakes the consumer line
// after it detached. A Queue.Close on another goroutine then finds no
// producer to close and unmaps the segment, while Producer.Close goes on
// to wake (and sweep) the consumer line in it. Held in that wake, the
// producer reads the waiter set from the unmapped segment: SIGSEGV. (A
// concurrent second Producer.Close returns as early: gate.Close's loser
// waits for the drain, not for the teardown.)
func TestReviewQueueCloseWaitsForProducerClose(t *testing.T) {
	inChild(t, func(t *testing.T) {
		stall := newStallWake()
		loc := ring.Memfd("review")
		q, err := Create(loc, Config{Capacity: 256, Wait: Wait{Backend: stall}})
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		q2, err := Open(context.Background(), ring.FD(q.Segment().Fd()), &Options{Wait: Wait{Spin: -1}})
		if err != nil {
			t.Fatal(err)
		}
		defer q2.Close()
		p, err := q.Producer()
		if err != nil {
			t.Fatal(err)
		}
		c, err := q2.Consumer()
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan error, 1)
		go func() {
			_, err := c.Recv(context.Background(), make([]byte, 64))
			got <- err
		}()
		waitParked(t, q.consumerWake.Waiters.Any)

		stall.armed.Store(true)
		closed := make(chan error, 1)
		go func() { closed <- p.Close() }()
		<-stall.at // detached, waking the consumer

		qClosed := make(chan error, 1)
		go func() { qClosed <- q.Close() }()
		early := false
		select {
		case <-qClosed:
			early = true
		case <-time.After(200 * time.Millisecond):
		}
		close(stall.release)
		if err := <-closed; err != nil {
			t.Errorf("Producer.Close: %v", err)
		}
		if !early {
			<-qClosed
		}
		if early {
			t.Errorf("Queue.Close returned while Producer.Close was still running")
		}
		if err := <-got; err != io.EOF {
			t.Errorf("Recv: %v, want io.EOF", err)
		}
	})
}

// TestReviewSpinHonoursContextAndClose: a blocking call spins for
// Wait.Spin before it binds its context to the handle's gate, and the spin
// loop looks at neither. With a long spin (the documented way to never
// park, used by this package's helper: Wait{Spin: time.Hour}), Recv ignores
// its context's deadline, and Close, documented to make a blocked call
// return, waits for as long as the spin lasts.
func TestReviewSpinHonoursContextAndClose(t *testing.T) {
	q, err := Create(ring.Memfd("review"), Config{Capacity: 256, Wait: Wait{Spin: time.Hour}})
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
	got := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, err := c.Recv(ctx, make([]byte, 64))
		got <- err
	}()
	select {
	case err := <-got:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Recv: %v, want context.DeadlineExceeded", err)
		}
		return
	case <-time.After(time.Second):
		t.Errorf("Recv with a 20ms deadline still spinning after 1s")
	}
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case <-closed:
	case <-time.After(time.Second):
		t.Errorf("Consumer.Close still waiting after 1s for the spinning Recv")
	}
	// Let the spin end: a message makes its condition true.
	if err := p.TrySend([]byte("x")); err != nil {
		t.Fatal(err)
	}
	<-got
	<-closed
}
