package pubsub

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/shmq/shmq/ring"
)

// BenchmarkFanOut: one publisher sends 64-byte messages to n subscribers,
// each on its own goroutine and queue handle (its own mapping); ns/op is
// per message published, which every subscriber receives.
func BenchmarkFanOut(b *testing.B) {
	for _, lossy := range []bool{false, true} {
		for _, n := range []int{1, 2, 4} {
			b.Run(fmt.Sprintf("%s/subscribers=%d", policyName(lossy), n), func(b *testing.B) {
				benchFanOut(b, n, lossy)
			})
		}
	}
}

func benchFanOut(b *testing.B, n int, lossy bool) {
	q, err := Create(ring.Memfd("bench"), Config{Capacity: 1 << 20, Lossy: lossy})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	p, err := q.Publisher()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	done := make(chan uint64, n)
	for range n {
		qs, err := Open(ctx, ring.FD(q.Segment().Fd()), nil)
		if err != nil {
			b.Fatal(err)
		}
		defer qs.Close()
		s, err := qs.Subscriber(FromNext)
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			buf := make([]byte, 64)
			lost := uint64(0)
			for {
				_, err := s.Recv(ctx, buf)
				if errors.Is(err, ErrLost) {
					lost = s.Lost()
					continue
				}
				if err != nil {
					done <- lost
					return
				}
			}
		}()
	}
	msg := make([]byte, 64)
	b.SetBytes(64)
	b.ResetTimer()
	for range b.N {
		if err := p.Send(ctx, msg); err != nil {
			b.Fatal(err)
		}
	}
	p.Close()
	var lost uint64
	for range n {
		lost += <-done
	}
	b.StopTimer()
	if lossy {
		b.ReportMetric(float64(lost)/float64(n)/float64(b.N), "lost/msg")
	}
}
