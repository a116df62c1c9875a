package pubsub_test

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/shmq/shmq/pubsub"
	"github.com/shmq/shmq/ring"
)

// Fan-out: one publisher, every subscriber receives every message.
func Example() {
	ctx := context.Background()
	q, err := pubsub.Create(ring.Memfd("ticks"), pubsub.Config{Capacity: 1 << 12})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()
	a, _ := q.Subscriber(pubsub.FromNext)
	b, _ := q.Subscriber(pubsub.FromNext)
	p, _ := q.Publisher()
	for _, tick := range []string{"101.5", "101.7"} {
		p.Send(ctx, []byte(tick))
	}
	p.Close() // the end of the stream: subscribers get io.EOF once they read everything
	buf := make([]byte, 64)
	for name, s := range map[string]*pubsub.Subscriber{"a": a, "b": b} {
		for {
			n, err := s.Recv(ctx, buf)
			if err == io.EOF {
				break
			}
			fmt.Printf("%s got %s\n", name, buf[:n])
		}
	}
	// Unordered output:
	// a got 101.5
	// a got 101.7
	// b got 101.5
	// b got 101.7
}

// In a lossy queue the publisher never waits; a subscriber that fell a
// ring behind learns exactly how many messages it lost, and continues with
// the oldest message still whole.
func Example_lossy() {
	ctx := context.Background()
	q, _ := pubsub.Create(ring.Memfd("lossy"), pubsub.Config{Capacity: 256, Lossy: true})
	defer q.Close()
	slow, _ := q.Subscriber(pubsub.FromNext)
	p, _ := q.Publisher()
	for i := range 40 {
		p.Send(ctx, []byte{byte(i)}) // 40 records of 32 bytes: the ring holds 8
	}
	buf := make([]byte, 64)
	_, err := slow.Recv(ctx, buf)
	var lost *pubsub.LostError
	fmt.Println(errors.Is(err, pubsub.ErrLost), errors.As(err, &lost) && lost.Count > 0)
	n, err := slow.Recv(ctx, buf)
	fmt.Println(n, err, buf[0] > 0)
	// Output:
	// true true
	// 1 <nil> true
}
