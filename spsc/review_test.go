package spsc

// Adversarial review of the core redesign (branch review): each test here
// reproduces one finding of the review report and fails on the code it was
// written against.

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/shmq/shmq/internal/notifytest"
	"github.com/shmq/shmq/internal/shmtest"
	"github.com/shmq/shmq/ring"
)

// TestReviewQueueCloseWaitsForProducerClose: Producer.Close forgets the
// producer in its queue before it detaches, and wakes the consumer line
// after it detached. A Queue.Close on another goroutine then finds no
// producer to close and unmaps the segment, while Producer.Close goes on
// to wake (and sweep) the consumer line in it. Held in that wake, the
// producer reads the waiter set from the unmapped segment: SIGSEGV. (A
// concurrent second Producer.Close returns as early: gate.Close's loser
// waits for the drain, not for the teardown.)
func TestReviewQueueCloseWaitsForProducerClose(t *testing.T) {
	shmtest.InChild(t, func(t *testing.T) {
		stall := notifytest.NewStallWake()
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

		stall.Armed.Store(true)
		closed := make(chan error, 1)
		go func() { closed <- p.Close() }()
		<-stall.At // detached, waking the consumer

		qClosed := make(chan error, 1)
		go func() { qClosed <- q.Close() }()
		early := false
		select {
		case <-qClosed:
			early = true
		case <-time.After(200 * time.Millisecond):
		}
		close(stall.Release)
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
