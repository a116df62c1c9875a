package pubsub

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shmq/shmq/internal/shmtest"
	"github.com/shmq/shmq/notify"
	"github.com/shmq/shmq/ring"
)

// TestIdleSubscriberCPU: a subscriber blocked on an empty queue parks and
// uses no measurable CPU.
func TestIdleSubscriberCPU(t *testing.T) {
	q := testQueue(t, Config{Capacity: 4096})
	mustPublisher(t, q)
	s := mustSubscriber(t, q, FromNext)
	shmtest.CheckIdleRecv(t, func(ctx context.Context) error {
		_, err := s.Recv(ctx, make([]byte, 64))
		return err
	})
}

// TestIdlePublisherCPU: a back-pressured publisher waiting for a live
// subscriber that does not read parks too.
func TestIdlePublisherCPU(t *testing.T) {
	q := testQueue(t, Config{Capacity: 4096})
	p := mustPublisher(t, q)
	mustSubscriber(t, q, FromNext)
	msg := make([]byte, 100)
	for p.TrySend(msg) == nil {
	}
	shmtest.CheckIdleRecv(t, func(ctx context.Context) error {
		err := p.Send(ctx, msg)
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("blocked Send: %v", err)
		}
		return err
	})
}

// TestStreamWakes: a subscriber that keeps up (it spins, never parks)
// costs the publisher no wake system call per message, in both policies:
// its commits find no registered waiter.
func TestStreamWakes(t *testing.T) {
	for _, lossy := range []bool{false, true} {
		t.Run(policyName(lossy), func(t *testing.T) {
			pf := notify.Default()
			q := testQueue(t, Config{Capacity: 1 << 16, Lossy: lossy, Wait: Wait{Backend: pf}})
			p := mustPublisher(t, q)
			q2, err := Open(context.Background(), ring.FD(q.Segment().Fd()), &Options{Wait: Wait{Spin: time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			defer q2.Close()
			s := mustSubscriber(t, q2, FromNext)
			owed := uint64(0) // lost messages not yet counted as received
			shmtest.CheckStreamWakes(t, 100_000, p.Send, func(ctx context.Context, b []byte) (int, error) {
				for {
					if owed > 0 {
						owed--
						return 0, nil
					}
					n, err := s.Recv(ctx, b)
					var le *LostError
					if !errors.As(err, &le) {
						return n, err
					}
					owed = le.Count
				}
			}, func() uint64 { return pf.Stats().WakeSyscalls })
		})
	}
}

// TestOnlyTheTargetReleaseWakes: a parked back-pressure publisher is woken
// by the release that reaches the position it waits for, not by every
// release of every subscriber.
func TestOnlyTheTargetReleaseWakes(t *testing.T) {
	q := testQueue(t, Config{Capacity: 1024})
	p := mustPublisher(t, q)
	handle := func() (*Subscriber, notify.Backend) {
		b := notify.Default()
		qs, err := Open(context.Background(), ring.FD(q.Segment().Fd()), &Options{Wait: Wait{Backend: b}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { qs.Close() })
		return mustSubscriber(t, qs, FromNext), b
	}
	fast, fastWakes := handle()
	slow, slowWakes := handle()
	msg := make([]byte, 100)
	sent := 0
	for p.TrySend(msg) == nil {
		sent++
	}
	done := make(chan error, 1)
	go func() { done <- p.Send(context.Background(), msg) }()
	// Parked: registered, and past setting the sleeper bit (a release
	// before that wakes no one, and the publisher's re-check sees it).
	asleep := func() {
		deadline := time.Now().Add(5 * time.Second)
		for q.publisherWake.Waiters.Count() == 0 || q.publisherWake.Seq.Load()&1 == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the publisher did not park")
			}
			time.Sleep(time.Millisecond)
		}
	}
	asleep()
	buf := make([]byte, 128)
	for range sent {
		if _, err := fast.TryRecv(buf); err != nil {
			t.Fatal(err)
		}
	}
	if n := fastWakes.Stats().WakeSyscalls; n != 1 {
		t.Fatalf("%d releases of a subscriber that is not the slowest made %d wake calls, want 1 (the one reaching the target)", sent, n)
	}
	select {
	case err := <-done:
		t.Fatalf("Send returned %v while the slow subscriber holds the room", err)
	default:
	}
	asleep() // again, after the fast subscriber's wake
	if _, err := slow.TryRecv(buf); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := slowWakes.Stats().WakeSyscalls; n != 1 {
		t.Fatalf("the slowest subscriber's release made %d wake calls, want 1", n)
	}
}
