package main

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"strconv"
	"time"

	"github.com/shmq/shmq/cmd/shmq-demo/internal/payload"
	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/spsc"
)

// The demo's stream phase, on an SPSC queue: the parent streams -messages
// checked payloads of -size bytes to a consumer process, writing them in
// place with Reserve and Commit; the consumer verifies every one (sequence
// number, size, filler, CRC32-C) and reports their tally, which must be
// the parent's; the parent prints the throughput.

const (
	streamConsumer = "__stream-consumer" // the consumer's hidden command
	streamBatch    = 128                 // messages reserved per commit
)

// streamPhase holds the phase's flags.
type streamPhase struct {
	messages uint64 // -messages
	capacity uint64 // -capacity: ring bytes
}

func (*streamPhase) name() string { return "stream" }

func (s *streamPhase) register(fs *flag.FlagSet) {
	fs.Uint64Var(&s.messages, "messages", 4_000_000, "")
	fs.Uint64Var(&s.capacity, "capacity", 1<<20, "")
}

func (s *streamPhase) check(f *demoFlags) error {
	switch {
	case s.messages == 0:
		return usagef("-messages must be positive")
	case f.size < payload.MinChecked:
		return usagef("-size must be at least %d (sequence number and CRC)", payload.MinChecked)
	}
	return nil
}

func (*streamPhase) peers() map[string]peerFunc {
	return map[string]peerFunc{streamConsumer: runStreamConsumer}
}

func (s *streamPhase) run(ctx context.Context, env *demoEnv) error {
	name := env.base
	q, err := createDemoQueue(name, func(loc ring.Location) (*spsc.Queue, error) {
		return spsc.Create(loc, spsc.Config{Capacity: s.capacity})
	})
	if err != nil {
		return err
	}
	defer closeAndRemove(q, name)
	if env.size > q.MaxMessage() {
		return fmt.Errorf("-size %d exceeds the largest message of a %d-byte ring, %d", env.size, s.capacity, q.MaxMessage())
	}
	p, err := q.Producer()
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Printf("stream: created %v (ring of %d bytes); starting the consumer process\n", ring.Shm(name), q.Capacity())
	ch, err := startChild(ctx, env.exe, streamConsumer, "-queue", name,
		"-messages", strconv.FormatUint(s.messages, 10), "-size", strconv.Itoa(env.size))
	if err != nil {
		return err
	}
	defer ch.stop()
	if err := waitAttached(ctx, func() (bool, error) {
		st, err := q.Stats()
		return attached(st.Consumer), err
	}, ch); err != nil {
		return err
	}
	fmt.Printf("stream: consumer pid %d attached; sending %d messages of %d bytes\n", ch.pid(), s.messages, env.size)
	return s.stream(ctx, q, p, ch, env.size)
}

// stream sends the messages to the attached consumer ch, waits for it to
// check them and prints the results.
func (s *streamPhase) stream(ctx context.Context, q *spsc.Queue, p *spsc.Producer, ch *child, size int) error {
	cctx, cancel := ch.untilExit(ctx)
	defer cancel()
	start := time.Now()
	var sent payload.Tally
	// The payloads are written into the ring in place: under Guard, so that
	// a process truncating the segment's file makes this an error
	// (ErrTruncated) rather than a SIGBUS.
	err := q.Guard(func() error {
		var err error
		sent, err = sendStream(cctx, p, s.messages, size)
		return err
	})
	if err == nil {
		err = waitDrained(cctx, q)
	}
	elapsed := time.Since(start)
	if err != nil {
		if cerr := ch.failure(); cerr != nil {
			return cerr
		}
		return err
	}
	line, err := ch.result()
	if err != nil {
		return err
	}
	if want := "ok " + sent.String(); line != want {
		return fmt.Errorf("consumer reported %q, producer has %q", line, want)
	}
	st, err := q.Stats()
	if err != nil {
		return err
	}
	total := s.messages * uint64(size)
	if st.Producer.Messages != s.messages || st.Consumer.Messages != s.messages ||
		st.Producer.Bytes != total || st.Consumer.Bytes != total || st.Used != 0 {
		return fmt.Errorf("registry counters disagree: producer %d messages/%d bytes, consumer %d/%d, %d bytes left, want %d/%d",
			st.Producer.Messages, st.Producer.Bytes, st.Consumer.Messages, st.Consumer.Bytes, st.Used, s.messages, total)
	}
	fmt.Printf("stream: consumer checked every message (sequence, size, filler, CRC32-C): %s\n", line[len("ok "):])
	fmt.Printf("stream: %d messages, %d bytes in %v: %.2f M messages/s, %.1f MB/s (%.1f MiB/s)\n",
		s.messages, total, elapsed.Round(time.Microsecond), rate(s.messages, elapsed)/1e6,
		rate(total, elapsed)/1e6, rate(total, elapsed)/(1<<20))
	fmt.Printf("stream: producer stalls=%d waits=%d wakes=%d; consumer stalls=%d waits=%d wakes=%d\n",
		st.Producer.Stalls, st.Producer.Waits, st.Producer.Wakes, st.Consumer.Stalls, st.Consumer.Waits, st.Consumer.Wakes)
	return nil
}

// sendStream sends n checked payloads of size bytes, writing them in place
// with Reserve and committing up to streamBatch at a time. It returns
// their tally.
func sendStream(ctx context.Context, p *spsc.Producer, n uint64, size int) (payload.Tally, error) {
	var sent payload.Tally
	scratch := make([]byte, size)
	pending := 0
	for seq := uint64(0); seq < n; {
		if seq%(1<<14) == 0 {
			if err := ctx.Err(); err != nil {
				return sent, fmt.Errorf("after %d messages: %w", seq, err)
			}
		}
		b, err := p.Reserve(size)
		switch {
		case err == spsc.ErrFull && pending > 0:
			p.Commit()
			pending = 0
			continue
		case err == spsc.ErrFull:
			// Nothing to commit and no room: let Send wait for space.
			payload.PutChecked(scratch, seq)
			if err := p.Send(ctx, scratch); err != nil {
				return sent, fmt.Errorf("after %d messages: %w", seq, err)
			}
			sent.Add(scratch)
			seq++
			continue
		case err != nil:
			return sent, fmt.Errorf("after %d messages: %w", seq, err)
		}
		payload.PutChecked(b, seq)
		sent.Add(b)
		seq++
		if pending++; pending == streamBatch {
			p.Commit()
			pending = 0
		}
	}
	p.Commit()
	return sent, nil
}

// waitDrained waits until the consumer has released everything.
func waitDrained(ctx context.Context, q *spsc.Queue) error {
	for i := 0; ; i++ {
		st, err := q.Stats()
		if err != nil || st.Used == 0 {
			return err
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("waiting for the consumer to drain %d bytes: %w", st.Used, err)
		}
		if i < 100 {
			runtime.Gosched()
		} else {
			time.Sleep(20 * time.Microsecond)
		}
	}
}

// runStreamConsumer is the consumer process: it receives the stream and
// checks every message, its sequence number (each exactly once, in
// order), size, filler and CRC, and reports their tally.
func runStreamConsumer(args []string) int {
	var name string
	var count uint64
	var size int
	fs := newFlags(streamConsumer)
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

	q, err := spsc.Open(ctx, ring.Shm(name), nil)
	if err != nil {
		return childReport("", err)
	}
	defer q.Close()
	c, err := q.Consumer()
	if err != nil {
		return childReport("", err)
	}
	defer c.Close()

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
	for got.Messages < count {
		_, err := c.TryRecvBatch(int(min(256, count-got.Messages)), check)
		if err == spsc.ErrEmpty {
			var n int
			if n, err = c.Recv(ctx, buf); err == nil {
				err = check(buf[:n])
			}
		}
		if err != nil {
			return childReport("", fmt.Errorf("after %d messages: %w", got.Messages, err))
		}
	}
	return childReport(got.String(), nil)
}
