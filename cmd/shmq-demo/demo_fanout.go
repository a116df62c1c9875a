package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/shmq/shmq/cmd/shmq-demo/internal/payload"
	"github.com/shmq/shmq/pubsub"
	"github.com/shmq/shmq/ring"
)

// The demo's fan-out phase, on a pub/sub queue with back-pressure: the
// parent publishes -fanout-messages checked payloads of -size bytes, in
// place with Reserve and Commit, to -fanout-subscribers subscriber
// processes that attached first; each verifies every message (sequence
// number, size, filler, CRC32-C) and reports its tally when the stream
// ends, which must be the parent's: every subscriber received every
// message, once, in order.

const (
	fanoutSubscriber = "__fanout-subscriber" // the subscribers' hidden command
	fanoutBatch      = 64                    // messages reserved per commit
	maxFanoutSubs    = 16
)

// fanoutPhase holds the phase's flags.
type fanoutPhase struct {
	messages    uint64 // -fanout-messages; 0 skips the phase
	subscribers int    // -fanout-subscribers
}

func (*fanoutPhase) name() string { return "fanout" }

func (f *fanoutPhase) register(fs *flag.FlagSet) {
	fs.Uint64Var(&f.messages, "fanout-messages", 300_000, "")
	fs.IntVar(&f.subscribers, "fanout-subscribers", 3, "")
}

func (f *fanoutPhase) check(d *demoFlags) error {
	switch {
	case f.subscribers < 1 || f.subscribers > maxFanoutSubs:
		return usagef("-fanout-subscribers must be between 1 and %d", maxFanoutSubs)
	case f.messages > 0 && d.size < payload.MinChecked:
		return usagef("-size must be at least %d (sequence number and CRC)", payload.MinChecked)
	}
	return nil
}

func (*fanoutPhase) peers() map[string]peerFunc {
	return map[string]peerFunc{fanoutSubscriber: runFanoutSubscriber}
}

func (f *fanoutPhase) run(ctx context.Context, env *demoEnv) error {
	if f.messages == 0 {
		return nil
	}
	name := env.base + "-fanout"
	q, err := createDemoQueue(name, func(loc ring.Location) (*pubsub.Queue, error) {
		return pubsub.Create(loc, pubsub.Config{Capacity: 1 << 20, Subscribers: maxFanoutSubs})
	})
	if err != nil {
		return err
	}
	defer closeAndRemove(q, name)
	if env.size > q.MaxMessage() {
		return fmt.Errorf("-size %d exceeds the largest message of the pub/sub queue, %d", env.size, q.MaxMessage())
	}
	p, err := q.Publisher()
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Printf("fanout: created %v (back-pressure, ring of %d bytes); starting the subscriber processes (%d)\n",
		ring.Shm(name), q.Capacity(), f.subscribers)
	var subs []*child
	defer func() {
		for _, c := range subs {
			c.stop()
		}
	}()
	for range f.subscribers {
		c, err := startChild(ctx, env.exe, fanoutSubscriber, "-queue", name,
			"-messages", strconv.FormatUint(f.messages, 10), "-size", strconv.Itoa(env.size))
		if err != nil {
			return err
		}
		subs = append(subs, c)
	}
	// A subscriber's entry is attached a moment before it has placed
	// itself at the tail; it counts a stall only once placed, when it
	// finds no message there. So the publisher starts once every one has.
	if err := waitAttached(ctx, func() (bool, error) {
		st, err := q.Stats()
		n := 0
		for _, s := range st.Subscribers {
			if attached(s.EntryInfo) && s.Stalls > 0 {
				n++
			}
		}
		return n >= len(subs), err
	}, subs...); err != nil {
		return err
	}
	fmt.Printf("fanout: subscribers (pids %s) attached; publishing %d messages of %d bytes\n", pids(subs), f.messages, env.size)
	start := time.Now()
	sent, err := publishChecked(ctx, p, f.messages, env.size)
	if err != nil {
		return err
	}
	p.Close() // the end of the stream: the subscribers report
	for _, c := range subs {
		line, err := c.result()
		if err != nil {
			return err
		}
		if want := "ok " + sent.String(); line != want {
			return fmt.Errorf("subscriber pid %d reported %q, the publisher has %q", c.pid(), line, want)
		}
	}
	elapsed := time.Since(start)
	return f.report(q, sent, elapsed)
}

// report checks the registry's counters and prints the results.
func (f *fanoutPhase) report(q *pubsub.Queue, sent payload.Tally, elapsed time.Duration) error {
	st, err := q.Stats()
	if err != nil {
		return err
	}
	if st.Publisher.Messages != f.messages || len(st.Subscribers) != f.subscribers {
		return fmt.Errorf("registry: publisher %d messages, %d subscriber entries; want %d and %d",
			st.Publisher.Messages, len(st.Subscribers), f.messages, f.subscribers)
	}
	for _, s := range st.Subscribers {
		if s.Messages != f.messages || s.Bytes != sent.Bytes || s.LagBytes != 0 {
			return fmt.Errorf("registry: subscriber entry %d released %d messages/%d bytes and lags %d bytes; want %d/%d",
				s.Index, s.Messages, s.Bytes, s.LagBytes, f.messages, sent.Bytes)
		}
	}
	fmt.Printf("fanout: every subscriber received every message once, in order, each checked: %s\n", sent.String())
	fmt.Printf("fanout: %d messages to %d subscribers in %v: %.2f M messages/s per subscriber, %.2f M deliveries/s\n",
		f.messages, f.subscribers, elapsed.Round(time.Microsecond), rate(f.messages, elapsed)/1e6,
		rate(f.messages*uint64(f.subscribers), elapsed)/1e6)
	fmt.Printf("fanout: publisher stalls=%d waits=%d wakes=%d (a wake is one system call for all the parked subscribers)\n",
		st.Publisher.Stalls, st.Publisher.Waits, st.Publisher.Wakes)
	return nil
}

// publishChecked publishes n checked payloads of size bytes, writing them
// in place with Reserve and committing up to fanoutBatch at a time, and
// returns their tally.
func publishChecked(ctx context.Context, p *pubsub.Publisher, n uint64, size int) (payload.Tally, error) {
	var sent payload.Tally
	pending := 0
	for seq := uint64(0); seq < n; {
		b, err := p.Reserve(size)
		if err == pubsub.ErrFull {
			if pending > 0 {
				p.Commit()
				pending = 0
				continue
			}
			b, err = p.ReserveWait(ctx, size) // the slowest subscriber holds the ring
		}
		if err != nil {
			return sent, fmt.Errorf("after %d messages: %w", seq, err)
		}
		payload.PutChecked(b, seq)
		sent.Add(b)
		seq++
		if pending++; pending == fanoutBatch {
			p.Commit()
			pending = 0
		}
	}
	p.Commit()
	return sent, nil
}

// runFanoutSubscriber is a subscriber process: it receives until the
// stream ends, checks every message, its sequence number (each exactly
// once, in order), size, filler and CRC, and reports their tally.
func runFanoutSubscriber(args []string) int {
	var name string
	var count uint64
	var size int
	fs := newFlags(fanoutSubscriber)
	fs.StringVar(&name, "queue", "", "")
	fs.Uint64Var(&count, "messages", 0, "")
	fs.IntVar(&size, "size", 0, "")
	if err := parseFlags(fs, args); err != nil {
		return childReport("", err)
	}
	if size < payload.MinChecked {
		return childReport("", fmt.Errorf("-size %d is below %d", size, payload.MinChecked))
	}
	ctx, cancel := childContext()
	defer cancel()
	q, err := pubsub.Open(ctx, ring.Shm(name), nil)
	if err != nil {
		return childReport("", err)
	}
	defer q.Close()
	s, err := q.Subscriber(pubsub.FromNext)
	if err != nil {
		return childReport("", err)
	}
	defer s.Close()
	scratch := make([]byte, size)
	buf := make([]byte, q.MaxMessage())
	var got payload.Tally
	check := func(m []byte) error {
		if err := payload.VerifyChecked(m, got.Messages, size, scratch); err != nil {
			return err
		}
		got.Add(m)
		return nil
	}
	for {
		_, err := s.TryRecvBatch(256, check)
		if err == pubsub.ErrEmpty {
			var n int
			if n, err = s.Recv(ctx, buf); err == nil {
				err = check(buf[:n])
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return childReport("", fmt.Errorf("after %d messages: %w", got.Messages, err))
		}
	}
	if got.Messages != count {
		return childReport("", fmt.Errorf("the stream ended after %d of %d messages", got.Messages, count))
	}
	return childReport(got.String(), nil)
}
