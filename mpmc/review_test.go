package mpmc

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
)

// TestReviewQueueCloseWaitsForConsumerClose: Consumer.Close removes the
// consumer from its queue's set before it frees the slots it holds and
// wakes producers, so a Queue.Close on another goroutine finds nothing to
// wait for and unmaps the segment while Consumer.Close still writes to it.
// Here Consumer.Close is held inside its wake of a parked producer, after
// freeing its stashed message; Queue.Close returns at once (it should wait),
// and Consumer.Close then stores the wake counter into the unmapped
// segment: SIGSEGV, the process dies.
func TestReviewQueueCloseWaitsForConsumerClose(t *testing.T) {
	shmtest.InChild(t, func(t *testing.T) {
		stall := notifytest.NewStallWake()
		q := newTestQueue(t, Config{Slots: 1, SlotSize: 64, Wait: Wait{Backend: stall}})
		p := mustProducer(t, q)
		c := mustConsumer(t, q)
		if err := p.TrySend([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		// A short buffer: the message stays taken (stashed) by c.
		if _, err := c.TryRecv(make([]byte, 1)); !errors.Is(err, ErrShortBuffer) {
			t.Fatalf("TryRecv into 1 byte: %v", err)
		}
		// A producer of another handle parks for the slot c holds.
		q2 := openHandle(t, q, Wait{Spin: -1})
		p2 := mustProducer(t, q2)
		sent := make(chan error, 1)
		go func() { sent <- p2.Send(context.Background(), []byte("next")) }()
		waitFor(t, "the producer parks", q.producerWake.Waiters.Any)

		stall.Armed.Store(true)
		closed := make(chan error, 1)
		go func() { closed <- c.Close() }()
		<-stall.At // c.Close has freed the slot and is waking p2

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
			t.Errorf("Consumer.Close: %v", err)
		}
		if !early {
			<-qClosed
		}
		if early {
			t.Errorf("Queue.Close returned while Consumer.Close was still running")
		}
		// The stashed message was orphaned (not freed): p2 requeues it and
		// may stay blocked behind it in a one-slot queue nobody consumes.
		q2.Close()
		if err := <-sent; err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Send: %v", err)
		}
	})
}

// TestReviewQueueCloseWaitsForProducerClose is the same race on the
// producer side: Producer.Close drops out of its queue's set before it
// tombstones its reservations and wakes consumers after its detach. Held in
// that wake, it lets Queue.Close unmap the segment under it.
func TestReviewQueueCloseWaitsForProducerClose(t *testing.T) {
	shmtest.InChild(t, func(t *testing.T) {
		stall := notifytest.NewStallWake()
		q := newTestQueue(t, Config{Slots: 4, SlotSize: 64, Wait: Wait{Backend: stall}})
		p := mustProducer(t, q)
		if _, err := p.Reserve(4); err != nil { // becomes a tombstone at Close
			t.Fatal(err)
		}
		q2 := openHandle(t, q, Wait{Spin: -1})
		c2 := mustConsumer(t, q2)
		got := make(chan error, 1)
		go func() {
			_, err := c2.Recv(context.Background(), make([]byte, 64))
			got <- err
		}()
		waitFor(t, "the consumer parks", q.consumerWake.Waiters.Any)

		stall.Armed.Store(true)
		closed := make(chan error, 1)
		go func() { closed <- p.Close() }()
		<-stall.At

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
		q2.Close()
		<-got
	})
}

// TestReviewSpinHonoursContextAndClose: a blocking call spins for
// Wait.Spin before it binds its context to the handle's gate, and the spin
// loop looks at neither. With a long spin (the documented way to never
// park, used by this repository's own helpers: Wait{Spin: time.Hour}), Recv
// ignores its context's deadline and Close, documented to make a blocked
// call return, waits for as long as the spin lasts.
func TestReviewSpinHonoursContextAndClose(t *testing.T) {
	q := newTestQueue(t, Config{Slots: 4, SlotSize: 64, Wait: Wait{Spin: time.Hour}})
	p := mustProducer(t, q)
	c := mustConsumer(t, q)
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

// TestReviewStashedMessageSurvivesClose: a message that TryRecv could not
// copy (ErrShortBuffer) or that TryRecvBatch's callback refused stays taken
// by the consumer, "kept" for its next call. Consumer.Close frees that slot
// as if the message had been consumed, so it is never delivered to anyone;
// Close documents only that peeked messages count as consumed.
func TestReviewStashedMessageSurvivesClose(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stash func(c *Consumer) error
	}{
		{"ShortBuffer", func(c *Consumer) error {
			_, err := c.TryRecv(make([]byte, 1))
			if !errors.Is(err, ErrShortBuffer) {
				return err
			}
			return nil
		}},
		{"BatchCallbackError", func(c *Consumer) error {
			refuse := errors.New("not now")
			_, err := c.TryRecvBatch(1, func([]byte) error { return refuse })
			if err != refuse {
				return err
			}
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newTestQueue(t, Config{Slots: 4, SlotSize: 64})
			p := mustProducer(t, q)
			if err := p.TrySend([]byte("precious")); err != nil {
				t.Fatal(err)
			}
			c := mustConsumer(t, q)
			if err := tc.stash(c); err != nil {
				t.Fatal(err)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			c2 := mustConsumer(t, q)
			// A requeue (at-least-once) would also do; give producers a lap.
			for i := 0; i < 4; i++ {
				p.TrySend([]byte("filler"))
			}
			buf := make([]byte, 64)
			for {
				n, err := c2.TryRecv(buf)
				if err == ErrEmpty {
					t.Fatal("the message the closed consumer never handed out is lost")
				}
				if err != nil {
					t.Fatal(err)
				}
				if string(buf[:n]) == "precious" {
					return
				}
			}
		})
	}
}

// TestReviewLockedTrySendDoesNotBlock: in locked mode TrySend (and TryRecv,
// TryRecvBatch) take the robust mutex with a context that never ends and
// is not bound to the handle's gate. While another process holds the mutex
// (stopped, traced, or just slow), the "non-blocking" call blocks, and
// Close, which must make blocked calls return, waits for it as long.
func TestReviewLockedTrySendDoesNotBlock(t *testing.T) {
	q := newTestQueue(t, Config{Slots: 4, SlotSize: 64, Locked: true})
	p := mustProducer(t, q)
	other := reopen(t, q) // another process, alive, holding the producers' mutex
	if ok, err := other.lk.pmu.TryLock(); !ok {
		t.Fatalf("TryLock: %v", err)
	}
	unlocked := false
	unlock := func() {
		if !unlocked {
			unlocked = true
			other.lk.pmu.Unlock()
		}
	}
	defer unlock()

	sent := make(chan error, 1)
	go func() { sent <- p.TrySend([]byte("x")) }()
	select {
	case err := <-sent:
		t.Logf("TrySend: %v", err)
		return
	case <-time.After(time.Second):
		t.Errorf("TrySend blocked for 1s on a mutex another process holds")
	}
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	select {
	case <-closed:
	case <-time.After(time.Second):
		t.Errorf("Producer.Close blocked for 1s behind the TrySend")
	}
	unlock()
	<-sent
	<-closed
}

// TestReviewEndOfStreamStrandsTakenMessage: a consumer that dies holding a
// message leaves it taken; only a producer reaching its slot a lap later
// requeues it. A consumer with EndOfStream gets io.EOF once producers are
// gone, while that message, which the at-least-once guarantee promises to
// deliver again, sits in the queue: the stream ends without it. The
// consumer at the dequeue cursor sees the dead consumer's R(p-C, o) there
// and could requeue it itself (the enqueue cursor is at p), or at least not
// report the end.
func TestReviewEndOfStreamStrandsTakenMessage(t *testing.T) {
	q := newTestQueue(t, Config{Slots: 4, SlotSize: 64})
	c := mustConsumer(t, q)
	c.EndOfStream(10 * time.Millisecond)
	p := mustProducer(t, q)
	// Another process attaches a consumer, takes the message and dies
	// before releasing it.
	q2 := reopen(t, q)
	dead := mustConsumer(t, q2)
	if err := p.TrySend([]byte("precious")); err != nil {
		t.Fatal(err)
	}
	if m, err := dead.Peek(); err != nil || string(m) != "precious" {
		t.Fatalf("Peek: %q, %v", m, err)
	}
	q2.Segment().Close()
	dead.g.Close(nil)
	delete(q2.consumers, dead)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	buf := make([]byte, 64)
	n, err := c.Recv(ctx, buf)
	if err != nil || string(buf[:n]) != "precious" {
		t.Fatalf("Recv: %q, %v; want the dead consumer's message redelivered before the end of the stream", buf[:n], err)
	}
}

// TestReviewEndOfStreamMissedAfterEntryReuse: EndOfStream decides that a
// producer was "seen" from the registry (a producer entry attached, or
// attached after the call) or from this consumer's own message count. A
// producer that attaches, sends and detaches while this consumer is busy
// elsewhere, and whose entry another consumer then takes (AttachAny takes
// the first free entry), leaves no trace of itself: the message went to the
// other consumer, the entry now says consumer. This consumer then never
// reports the end of the stream; Recv blocks until its context ends. A
// trace that reuse does not erase (the enqueue cursor moved since
// EndOfStream) would see it.
func TestReviewEndOfStreamMissedAfterEntryReuse(t *testing.T) {
	q := newTestQueue(t, Config{Slots: 4, SlotSize: 64})
	c := mustConsumer(t, q)
	c.EndOfStream(10 * time.Millisecond)
	other := mustConsumer(t, q)
	p := mustProducer(t, q)
	if err := p.TrySend([]byte("work")); err != nil {
		t.Fatal(err)
	}
	if _, err := other.TryRecv(make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	late := mustConsumer(t, q) // takes the producer's entry
	if late.Index() != p.Index() {
		t.Fatalf("the late consumer took entry %d, not the producer's %d", late.Index(), p.Index())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := c.Recv(ctx, make([]byte, 64)); err != io.EOF {
		t.Fatalf("Recv: %v, want io.EOF (a producer came and went)", err)
	}
}
