package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/shmq/shmq/cmd/shmq-demo/internal/payload"
	"github.com/shmq/shmq/pubsub"
)

// shmq-demo publish: publish -count sequenced payloads of -size bytes to a
// named pub/sub queue, close (the end of the stream), and print the
// summary line, which every subscriber that received them all prints too.

// publishFlags is publish's command line.
type publishFlags struct {
	pubsubFlags
	size int
}

func runPublish(args []string) error {
	f := &publishFlags{}
	fs := newFlags("publish")
	f.register(fs)
	fs.IntVar(&f.size, "size", 0, "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := f.check(fs); err != nil {
		return err
	}
	if f.size <= 0 {
		return usagef("-size BYTES is required and must be positive")
	}
	ctx, cancel := f.context()
	defer cancel()

	q, err := f.open(ctx)
	if err != nil {
		return err
	}
	defer q.Close()
	if f.size > q.MaxMessage() {
		return fmt.Errorf("-size %d exceeds the queue's largest message, %d bytes", f.size, q.MaxMessage())
	}
	p, err := q.Publisher()
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Fprintf(os.Stderr, "publish: sending %d messages of %d bytes to pubsub queue %s (%s, %d subscribers attached)\n",
		f.count, f.size, f.queue, policyName(q.Lossy()), subscribers(q))
	sent, d, err := publish(ctx, p, f.count, f.size)
	if err != nil {
		return err
	}
	p.Close() // the end of the stream
	if !f.keep {
		removePubSubIfLast(q, "publish", f.queue)
	}
	fmt.Fprintf(os.Stderr, "publish: sent in %v (%.0f messages/s, %.1f MB/s)\n",
		d.Round(time.Microsecond), rate(sent.Messages, d), rate(sent.Bytes, d)/1e6)
	fmt.Println(sent.String())
	return nil
}

// publish sends count sequenced payloads of size bytes, numbered 0, 1, 2,
// ..., and returns their tally and how long it took.
func publish(ctx context.Context, p *pubsub.Publisher, count uint64, size int) (payload.Tally, time.Duration, error) {
	buf := make([]byte, size)
	var sent payload.Tally
	start := time.Now()
	for seq := uint64(0); seq < count; seq++ {
		payload.Put(buf, seq)
		if err := p.Send(ctx, buf); err != nil {
			return sent, 0, fmt.Errorf("after %d messages: %w", seq, err)
		}
		sent.Add(buf)
	}
	return sent, time.Since(start), nil
}

// subscribers counts the live subscribers of q.
func subscribers(q *pubsub.Queue) int {
	st, err := q.Stats()
	if err != nil {
		return 0
	}
	n := 0
	for _, s := range st.Subscribers {
		if attached(s.EntryInfo) {
			n++
		}
	}
	return n
}
