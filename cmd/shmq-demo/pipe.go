package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/shmq/shmq/cmd/shmq-demo/internal/payload"
	"github.com/shmq/shmq/mpmc"
	"github.com/shmq/shmq/ring"
)

// pipeFlags are the flags produce and consume share.
type pipeFlags struct {
	queue      string
	count      uint64
	capacity   uint64
	kind       string
	maxMessage int
	locked     bool
	keep       bool
	timeout    time.Duration
}

func (pf *pipeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&pf.queue, "queue", "", "")
	fs.Uint64Var(&pf.count, "count", 0, "")
	fs.Uint64Var(&pf.capacity, "capacity", 0, "")
	fs.StringVar(&pf.kind, "kind", "spsc", "")
	fs.IntVar(&pf.maxMessage, "max-message", 0, "")
	fs.BoolVar(&pf.locked, "locked", false, "")
	fs.BoolVar(&pf.keep, "keep", false, "")
	fs.DurationVar(&pf.timeout, "timeout", 0, "")
}

func (pf *pipeFlags) check() (queueKind, error) {
	if pf.queue == "" {
		return queueKind{}, usagef("-queue NAME is required")
	}
	if pf.count == 0 {
		return queueKind{}, usagef("-count N is required and must be positive")
	}
	kind, ok := queueKinds[pf.kind]
	if !ok {
		return queueKind{}, usagef("unknown -kind %q (known: %s)", pf.kind, kindNames())
	}
	switch {
	case pf.maxMessage < 0:
		return queueKind{}, usagef("-max-message must be positive")
	case !kind.slotted && (pf.maxMessage != 0 || pf.locked):
		return queueKind{}, usagef("-max-message and -locked apply to -kind mpmc only")
	}
	return kind, nil
}

// config returns the configuration of a queue that the command creates,
// sending messages of up to size bytes (0: unknown).
func (pf *pipeFlags) config(size int) queueConfig {
	return queueConfig{Capacity: pf.capacity, MaxMessage: size, SlotMessage: pf.maxMessage, Locked: pf.locked}
}

// context returns the command's context: ended by a signal or -timeout.
func (pf *pipeFlags) context() (context.Context, context.CancelFunc) {
	ctx, stop := signalContext()
	if pf.timeout <= 0 {
		return ctx, stop
	}
	ctx, cancel := context.WithTimeout(ctx, pf.timeout)
	return ctx, func() { cancel(); stop() }
}

func runProduce(args []string) error {
	var pf pipeFlags
	var size int
	var id uint64
	skip := int64(-1)
	fs := newFlags("produce")
	pf.register(fs)
	fs.IntVar(&size, "size", 0, "")
	fs.Uint64Var(&id, "producer-id", uint64(os.Getpid()), "")
	// Hidden, for tests: leave out this sequence number, sending count
	// messages numbered 0..count with a hole.
	fs.Int64Var(&skip, "test-skip-seq", -1, "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	kind, err := pf.check()
	if err != nil {
		return err
	}
	switch {
	case size <= 0:
		return usagef("-size BYTES is required and must be positive")
	case kind.shared && size < payload.MinProducer:
		return usagef("-size %d is too small for -kind %s: a payload carries an 8-byte sequence number and an 8-byte producer id, so at least %d bytes",
			size, pf.kind, payload.MinProducer)
	case !kind.shared && isSet(fs, "producer-id"):
		return usagef("-producer-id applies to -kind mpmc only")
	case !kind.shared && pf.keep:
		return usagef("-keep applies to consume, and to produce -kind mpmc")
	case pf.maxMessage != 0 && size > pf.maxMessage:
		return usagef("-size %d exceeds -max-message %d", size, pf.maxMessage)
	}
	ctx, cancel := pf.context()
	defer cancel()

	q, err := kind.open(ctx, pf.queue, pf.config(size))
	if err != nil {
		return err
	}
	defer q.Close()
	if size > q.MaxMessage() {
		return fmt.Errorf("-size %d exceeds the queue's largest message, %d bytes", size, q.MaxMessage())
	}
	p, err := q.Producer()
	if err != nil {
		return err
	}
	defer p.Close()
	put := payload.Put
	if kind.shared {
		mq := q.(mpmcQueue).Queue
		fmt.Fprintf(os.Stderr, "produce: sending %d messages of %d bytes as producer %d to %s queue %s (%s, %d slots)\n",
			pf.count, size, id, pf.kind, pf.queue, mpmcMode(mq.Locked()), mq.Slots())
		put = func(b []byte, seq uint64) { payload.PutProducer(b, id, seq) }
	} else {
		fmt.Fprintf(os.Stderr, "produce: sending %d messages of %d bytes to %s queue %s\n", pf.count, size, pf.kind, pf.queue)
	}

	buf := make([]byte, size)
	var sent payload.Tally
	start := time.Now()
	for i := uint64(0); i < pf.count; i++ {
		seq := i
		if skip >= 0 && i >= uint64(skip) {
			seq++
		}
		put(buf, seq)
		if err := p.Send(ctx, buf); err != nil {
			return fmt.Errorf("after %d messages: %w", i, err)
		}
		sent.Add(buf)
	}
	d := time.Since(start)
	if kind.shared {
		mp := p.(*mpmc.Producer)
		if n := mp.Requeued(); n > 0 {
			fmt.Fprintf(os.Stderr, "produce: requeued %d message(s) that a consumer died holding\n", n)
		}
		p.Close()
		if !pf.keep {
			removeIfLast(q.(mpmcQueue).Queue, "produce", pf.queue)
		}
	}
	fmt.Fprintf(os.Stderr, "produce: sent in %v (%.0f messages/s, %.1f MB/s)\n",
		d.Round(time.Microsecond), rate(sent.Messages, d), rate(sent.Bytes, d)/1e6)
	fmt.Println(sent.String())
	return nil
}

func runConsume(args []string) error {
	var pf pipeFlags
	var first uint64
	var idle, doneWait time.Duration
	fs := newFlags("consume")
	pf.register(fs)
	fs.Uint64Var(&first, "first", 0, "")
	fs.DurationVar(&idle, "idle-exit", 0, "")
	fs.DurationVar(&doneWait, "done-wait", defaultDoneWait, "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	kind := queueKinds[pf.kind]
	if pf.count == 0 && (idle > 0 || kind.shared && doneWait > 0) {
		pf.count = math.MaxUint64 // until idle, or until the producers are done
	}
	kind, err := pf.check()
	if err != nil {
		return err
	}
	switch {
	case kind.shared && isSet(fs, "first"):
		return usagef("-first applies to -kind spsc only")
	case !kind.shared && isSet(fs, "done-wait"):
		return usagef("-done-wait applies to -kind mpmc only")
	case idle < 0 || doneWait < 0:
		return usagef("-idle-exit and -done-wait must not be negative")
	}
	ctx, cancel := pf.context()
	defer cancel()

	q, err := kind.open(ctx, pf.queue, pf.config(0))
	if err != nil {
		return err
	}
	defer q.Close()
	if kind.shared {
		return consumeShared(ctx, &pf, q, sharedConsumeOpts{idle: idle, doneWait: doneWait})
	}
	c, err := q.Consumer()
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(os.Stderr, "consume: receiving %d messages from %s queue %s\n", pf.count, pf.kind, pf.queue)

	buf := make([]byte, q.MaxMessage())
	seqs := payload.NewSeqChecker(first)
	var got payload.Tally
	var start time.Time
	received := uint64(0)
	for ; received < pf.count; received++ {
		rctx, rcancel := ctx, context.CancelFunc(func() {})
		if idle > 0 {
			rctx, rcancel = context.WithTimeout(ctx, idle)
		}
		n, err := c.Recv(rctx, buf)
		rcancel()
		if err != nil && idle > 0 && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			fmt.Fprintf(os.Stderr, "consume: no message for %v; stopping\n", idle)
			break
		}
		if err != nil {
			return fmt.Errorf("after %d messages: %w", received, err)
		}
		if received == 0 {
			start = time.Now()
		}
		m := buf[:n]
		seqs.Add(m)
		got.Add(m)
	}
	d := time.Since(start)
	c.Close()
	q.Close()
	if !pf.keep && received == pf.count {
		if err := ring.Unlink(ring.Shm(pf.queue)); err != nil {
			fmt.Fprintf(os.Stderr, "consume: removing %s: %v\n", pf.queue, err)
		}
	}
	fmt.Fprintf(os.Stderr, "consume: received in %v after the first message (%.0f messages/s, %.1f MB/s)\n",
		d.Round(time.Microsecond), rate(received, d), rate(got.Bytes, d)/1e6)
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
