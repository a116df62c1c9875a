package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/shmq/shmq/cmd/shmq-demo/internal/payload"
	"github.com/shmq/shmq/mpmc"
)

// shmq-demo produce: send -count payloads of -size bytes to a named queue,
// then print the summary line.

// produceFlags is produce's command line.
type produceFlags struct {
	pipeFlags
	kind queueKind // the kind -kind names, set by parseProduce
	size int
	id   uint64 // -producer-id: the id in every payload of a shared kind
	skip int64  // hidden -test-skip-seq: leave out this number; -1: none
}

func runProduce(args []string) error {
	f, err := parseProduce(args)
	if err != nil {
		return err
	}
	ctx, cancel := f.context()
	defer cancel()

	q, err := f.kind.open(ctx, f.queue, f.config(f.size))
	if err != nil {
		return err
	}
	defer q.Close()
	if f.size > q.MaxMessage() {
		return fmt.Errorf("-size %d exceeds the queue's largest message, %d bytes", f.size, q.MaxMessage())
	}
	p, err := q.Producer()
	if err != nil {
		return err
	}
	defer p.Close()
	put := f.announce(q)
	sent, d, err := f.send(ctx, p, put)
	if err != nil {
		return err
	}
	if f.kind.shared {
		f.leaveShared(q.(mpmcQueue).Queue, p.(*mpmc.Producer))
	}
	fmt.Fprintf(os.Stderr, "produce: sent in %v (%.0f messages/s, %.1f MB/s)\n",
		d.Round(time.Microsecond), rate(sent.Messages, d), rate(sent.Bytes, d)/1e6)
	fmt.Println(sent.String())
	return nil
}

func parseProduce(args []string) (*produceFlags, error) {
	f := &produceFlags{}
	fs := newFlags("produce")
	f.register(fs)
	fs.IntVar(&f.size, "size", 0, "")
	fs.Uint64Var(&f.id, "producer-id", uint64(os.Getpid()), "")
	// Hidden, for tests: leave out this sequence number, sending count
	// messages numbered 0..count with a hole.
	fs.Int64Var(&f.skip, "test-skip-seq", -1, "")
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	kind, err := f.check()
	if err != nil {
		return nil, err
	}
	f.kind = kind
	switch {
	case f.size <= 0:
		return nil, usagef("-size BYTES is required and must be positive")
	case kind.shared && f.size < payload.MinProducer:
		return nil, usagef("-size %d is too small for -kind %s: a payload carries an 8-byte sequence number and an 8-byte producer id, so at least %d bytes",
			f.size, f.pipeFlags.kind, payload.MinProducer)
	case !kind.shared && isSet(fs, "producer-id"):
		return nil, usagef("-producer-id applies to -kind mpmc only")
	case !kind.shared && f.keep:
		return nil, usagef("-keep applies to consume, and to produce -kind mpmc")
	case f.maxMessage != 0 && f.size > f.maxMessage:
		return nil, usagef("-size %d exceeds -max-message %d", f.size, f.maxMessage)
	}
	return f, nil
}

// announce prints what produce is about to send and returns the function
// that writes payload seq: a sequenced payload, or for a shared kind a
// producer payload with -producer-id.
func (f *produceFlags) announce(q queue) func(b []byte, seq uint64) {
	if !f.kind.shared {
		fmt.Fprintf(os.Stderr, "produce: sending %d messages of %d bytes to %s queue %s\n", f.count, f.size, f.pipeFlags.kind, f.queue)
		return payload.Put
	}
	mq := q.(mpmcQueue).Queue
	fmt.Fprintf(os.Stderr, "produce: sending %d messages of %d bytes as producer %d to %s queue %s (%s, %d slots)\n",
		f.count, f.size, f.id, f.pipeFlags.kind, f.queue, mpmcMode(mq.Locked()), mq.Slots())
	return func(b []byte, seq uint64) { payload.PutProducer(b, f.id, seq) }
}

// send sends -count payloads numbered 0, 1, 2, ... (with the hole of
// -test-skip-seq) and returns their tally and how long it took.
func (f *produceFlags) send(ctx context.Context, p producer, put func(b []byte, seq uint64)) (payload.Tally, time.Duration, error) {
	buf := make([]byte, f.size)
	var sent payload.Tally
	start := time.Now()
	for i := uint64(0); i < f.count; i++ {
		seq := i
		if f.skip >= 0 && i >= uint64(f.skip) {
			seq++
		}
		put(buf, seq)
		if err := p.Send(ctx, buf); err != nil {
			return sent, 0, fmt.Errorf("after %d messages: %w", i, err)
		}
		sent.Add(buf)
	}
	return sent, time.Since(start), nil
}

// leaveShared detaches producer p from shared queue q, reporting the
// messages it put back for consumers that died, and removes the queue's
// name if it was the last one out (unless -keep).
func (f *produceFlags) leaveShared(q *mpmc.Queue, p *mpmc.Producer) {
	if n := p.Requeued(); n > 0 {
		fmt.Fprintf(os.Stderr, "produce: requeued %d message(s) that a consumer died holding\n", n)
	}
	p.Close()
	if !f.keep {
		removeIfLast(q, "produce", f.queue)
	}
}
