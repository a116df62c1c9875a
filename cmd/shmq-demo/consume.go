package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/shmq/shmq/cmd/shmq-demo/internal/payload"
	"github.com/shmq/shmq/mpmc"
	"github.com/shmq/shmq/ring"
)

// shmq-demo consume: receive from a named queue, check the sequence
// numbers that produce writes, and print what arrived and the summary
// line. On an SPSC queue it follows one stream (consumeStream); on a
// shared (MPMC) queue each message goes to one of the consumers, so it
// sees part of each producer's stream and cannot know in advance how many
// messages it will get (consumeShared).

// defaultDoneWait is consume's -done-wait: how long no producer may be
// attached, with the queue empty, before a consumer of a shared queue
// stops (the grace of mpmc.Consumer.EndOfStream). It covers a producer that
// starts just after another one finished.
const defaultDoneWait = 500 * time.Millisecond

// consumeFlags is consume's command line.
type consumeFlags struct {
	pipeFlags
	kind     queueKind     // the kind -kind names, set by parseConsume
	first    uint64        // -first: the sequence number expected first (spsc)
	idle     time.Duration // -idle-exit: stop after this without a message; 0: never
	doneWait time.Duration // -done-wait: stop once the producers are done for this long (shared); 0: never
}

func runConsume(args []string) error {
	f, err := parseConsume(args)
	if err != nil {
		return err
	}
	ctx, cancel := f.context()
	defer cancel()

	q, err := f.kind.open(ctx, f.queue, f.config(0))
	if err != nil {
		return err
	}
	defer q.Close()
	if f.kind.shared {
		return consumeShared(ctx, f, q.(mpmcQueue).Queue)
	}
	return consumeStream(ctx, f, q)
}

func parseConsume(args []string) (*consumeFlags, error) {
	f := &consumeFlags{}
	fs := newFlags("consume")
	f.register(fs)
	fs.Uint64Var(&f.first, "first", 0, "")
	fs.DurationVar(&f.idle, "idle-exit", 0, "")
	fs.DurationVar(&f.doneWait, "done-wait", defaultDoneWait, "")
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if f.count == 0 && (f.idle > 0 || queueKinds[f.pipeFlags.kind].shared && f.doneWait > 0) {
		f.count = math.MaxUint64 // until idle, or until the producers are done
	}
	kind, err := f.check()
	if err != nil {
		return nil, err
	}
	f.kind = kind
	switch {
	case kind.shared && isSet(fs, "first"):
		return nil, usagef("-first applies to -kind spsc only")
	case !kind.shared && isSet(fs, "done-wait"):
		return nil, usagef("-done-wait applies to -kind mpmc only")
	case f.idle < 0 || f.doneWait < 0:
		return nil, usagef("-idle-exit and -done-wait must not be negative")
	}
	return f, nil
}

// consumeStream is consume on a queue with one consumer: it receives
// -count messages, or until -idle-exit, and fails on a gap or a repeat.
func consumeStream(ctx context.Context, f *consumeFlags, q queue) error {
	c, err := q.Consumer()
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(os.Stderr, "consume: receiving %d messages from %s queue %s\n", f.count, f.pipeFlags.kind, f.queue)

	buf := make([]byte, q.MaxMessage())
	seqs := payload.NewSeqChecker(f.first)
	var got payload.Tally
	var start time.Time
	for got.Messages < f.count {
		rctx, rcancel := ctx, context.CancelFunc(func() {})
		if f.idle > 0 {
			rctx, rcancel = context.WithTimeout(ctx, f.idle)
		}
		n, err := c.Recv(rctx, buf)
		rcancel()
		if err != nil && f.idle > 0 && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			fmt.Fprintf(os.Stderr, "consume: no message for %v; stopping\n", f.idle)
			break
		}
		if err != nil {
			return fmt.Errorf("after %d messages: %w", got.Messages, err)
		}
		if got.Messages == 0 {
			start = time.Now()
		}
		seqs.Add(buf[:n])
		got.Add(buf[:n])
	}
	d := time.Since(start)
	c.Close()
	q.Close()
	if !f.keep && got.Messages == f.count {
		if err := ring.Unlink(ring.Shm(f.queue)); err != nil {
			fmt.Fprintf(os.Stderr, "consume: removing %s: %v\n", f.queue, err)
		}
	}
	if got.Messages == 0 {
		fmt.Fprintln(os.Stderr, "consume: received no message")
	} else {
		fmt.Fprintf(os.Stderr, "consume: received in %v after the first message (%.0f messages/s, %.1f MB/s)\n",
			d.Round(time.Microsecond), rate(got.Messages, d), rate(got.Bytes, d)/1e6)
	}
	fmt.Println(seqs.String())
	fmt.Println(got.String())
	switch {
	case seqs.Gaps > 0 || seqs.Repeats > 0:
		return fmt.Errorf("sequence check failed: %d gap(s), %d repeated or out-of-order message(s)", seqs.Gaps, seqs.Repeats)
	case seqs.Short > 0:
		fmt.Fprintf(os.Stderr, "consume: %d payload(s) shorter than %d bytes carried no sequence number\n", seqs.Short, payload.SeqSize)
	}
	return nil
}

// consumeShared is consume on a shared queue. It stops after -count
// messages, or at the end of the stream (io.EOF: the producers detached and
// none has been attached for -done-wait, with the queue empty; see
// mpmc.Consumer.EndOfStream), or after -idle-exit without a message.
func consumeShared(ctx context.Context, f *consumeFlags, q *mpmc.Queue) error {
	c, err := q.Consumer()
	if err != nil {
		return err
	}
	defer c.Close()
	c.EndOfStream(f.doneWait)
	now := time.Now()
	fmt.Fprintf(os.Stderr, "consume: receiving from mpmc queue %s (%s, %d slots, messages up to %d bytes) until %s\n",
		f.queue, mpmcMode(q.Locked()), q.Slots(), q.MaxMessage(), f.until())
	s := &sharedConsumer{f: f, q: q, c: c, chk: payload.NewProducerChecker(q.MaxMessage(), 0, 0), start: now, lastMsg: now}
	reason, err := s.receive(ctx)
	if err != nil {
		return err
	}
	redelivered, skipped := c.Redelivered(), c.Skipped()
	c.Close()
	if !f.keep {
		removeIfLast(q, "consume", f.queue)
	}
	q.Close()
	fmt.Fprintf(os.Stderr, "consume: stopping: %s\n", reason)
	return s.report(redelivered, skipped)
}

// until says when a consumer of a shared queue stops.
func (f *consumeFlags) until() string {
	var until string
	switch {
	case f.count != math.MaxUint64 && f.doneWait > 0:
		until = fmt.Sprintf("%d messages arrived or the producers are done", f.count)
	case f.count != math.MaxUint64:
		until = fmt.Sprintf("%d messages arrived", f.count)
	case f.doneWait > 0:
		until = "the producers are done"
	default:
		until = "idle"
	}
	if f.idle > 0 {
		until += fmt.Sprintf(" (or idle for %v)", f.idle)
	}
	return until
}

// sharedConsumer is the state of consumeShared's receive loop.
type sharedConsumer struct {
	f   *consumeFlags
	q   *mpmc.Queue
	c   *mpmc.Consumer
	chk *payload.ProducerChecker
	got payload.Tally

	start       time.Time // when the consumer attached
	first, last time.Time // when the first and the last message arrived
	lastMsg     time.Time // when the last message arrived, or start: for -idle-exit
}

// accept takes one message.
func (s *sharedConsumer) accept(m []byte) error {
	if s.got.Messages == 0 {
		s.first = time.Now()
	}
	s.chk.Add(m)
	s.got.Add(m)
	return nil
}

// arrived notes that messages arrived.
func (s *sharedConsumer) arrived() {
	s.last = time.Now()
	s.lastMsg = s.last
}

// receive takes messages, in batches while there are some, until -count
// arrived or stopReason says to stop, and returns why it stopped.
func (s *sharedConsumer) receive(ctx context.Context) (string, error) {
	buf := make([]byte, s.q.MaxMessage())
	for s.got.Messages < s.f.count {
		before := s.got.Messages
		_, err := s.c.TryRecvBatch(int(min(256, s.f.count-s.got.Messages)), s.accept)
		if s.got.Messages > before {
			s.arrived()
		}
		if err == nil {
			continue
		}
		if err != mpmc.ErrEmpty {
			return "", fmt.Errorf("after %d messages: %w", s.got.Messages, err)
		}
		now := time.Now()
		if s.f.idle > 0 && now.Sub(s.lastMsg) >= s.f.idle {
			return fmt.Sprintf("no message for %v", s.f.idle), nil
		}
		if end, err := s.wait(ctx, now, buf); end || err != nil {
			return "the producers are done and the queue is empty", err
		}
	}
	return fmt.Sprintf("received %d messages", s.got.Messages), nil
}

// wait waits for one message, until -idle-exit falls due if it is set,
// and reports the end of the stream.
func (s *sharedConsumer) wait(ctx context.Context, now time.Time, buf []byte) (end bool, err error) {
	rctx, cancel := ctx, context.CancelFunc(func() {})
	if s.f.idle > 0 {
		rctx, cancel = context.WithTimeout(ctx, max(s.f.idle-now.Sub(s.lastMsg), time.Millisecond))
	}
	n, err := s.c.Recv(rctx, buf)
	cancel()
	switch {
	case err == nil:
		s.accept(buf[:n])
		s.arrived()
	case err == io.EOF:
		return true, nil
	case ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
	default:
		return false, fmt.Errorf("after %d messages: %w", s.got.Messages, err)
	}
	return false, nil
}

// report prints the rate, a line per producer, the totals and the summary
// line, and fails on a repeat that redeliveries do not explain or a
// corrupt payload.
func (s *sharedConsumer) report(redelivered, skipped uint64) error {
	if n := s.got.Messages; n > 0 {
		d := s.last.Sub(s.first)
		fmt.Fprintf(os.Stderr, "consume: received in %v from the first message to the last (%.0f messages/s, %.1f MB/s)\n",
			d.Round(time.Microsecond), rate(n, d), rate(s.got.Bytes, d)/1e6)
	}
	if skipped > 0 {
		fmt.Fprintf(os.Stderr, "consume: skipped %d slot(s) that a producer claimed and died before committing\n", skipped)
	}
	for _, st := range s.chk.Streams() {
		fmt.Println(st.String())
	}
	fmt.Println(s.chk.Summary(redelivered))
	fmt.Println(s.got.String())
	// A message requeued after another consumer's crash arrives after
	// messages that overtook it: a step back that many redeliveries
	// explain is not an error.
	_, repeats := s.chk.Totals()
	switch {
	case repeats > redelivered:
		return fmt.Errorf("sequence check failed: %d repeated or out-of-order message(s) within a producer's stream", repeats)
	case s.chk.Corrupt > 0:
		return fmt.Errorf("%d message(s) whose filler is not what produce writes", s.chk.Corrupt)
	case s.chk.Short > 0:
		fmt.Fprintf(os.Stderr, "consume: %d payload(s) shorter than %d bytes carried no sequence number and producer id\n", s.chk.Short, payload.MinProducer)
	}
	return nil
}
