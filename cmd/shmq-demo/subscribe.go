package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/shmq/shmq/cmd/shmq-demo/internal/payload"
	"github.com/shmq/shmq/pubsub"
)

// shmq-demo subscribe: receive the sequenced payloads that publish sends
// to a named pub/sub queue, check their sequence numbers, and print what
// arrived: the same lines as consume, plus how many messages a lossy
// queue's publisher overwrote before they were read.

// subscribeFlags is subscribe's command line.
type subscribeFlags struct {
	pubsubFlags
	history bool
}

func runSubscribe(args []string) error {
	f := &subscribeFlags{}
	fs := newFlags("subscribe")
	f.register(fs)
	fs.BoolVar(&f.history, "history", false, "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := f.check(fs); err != nil {
		return err
	}
	ctx, cancel := f.context()
	defer cancel()

	q, err := f.open(ctx)
	if err != nil {
		return err
	}
	defer q.Close()
	from := pubsub.FromLatest
	if f.history {
		from = pubsub.FromOldest
	}
	s, err := q.Subscriber(from)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintf(os.Stderr, "subscribe: receiving %d messages from pubsub queue %s (%s, starting at the %s message)\n",
		f.count, f.queue, policyName(q.Lossy()), from)

	r := &received{}
	buf := make([]byte, q.MaxMessage())
	var start time.Time
	ended := false
	for r.got.Messages+r.lost < f.count {
		n, err := s.Recv(ctx, buf)
		var le *pubsub.LostError
		switch {
		case errors.As(err, &le):
			r.lose(le.Count)
			continue
		case err == io.EOF:
			ended = true
		case err != nil:
			return fmt.Errorf("after %d messages: %w", r.got.Messages, err)
		}
		if ended {
			break
		}
		if r.got.Messages == 0 {
			start = time.Now()
		}
		r.add(buf[:n])
	}
	d := time.Since(start)
	s.Close()
	if !f.keep {
		removePubSubIfLast(q, "subscribe", f.queue)
	}
	q.Close()
	fmt.Fprintf(os.Stderr, "subscribe: received in %v after the first message (%.0f messages/s, %.1f MB/s)\n",
		d.Round(time.Microsecond), rate(r.got.Messages, d), rate(r.got.Bytes, d)/1e6)
	line := r.seqs().String()
	if q.Lossy() {
		line += fmt.Sprintf(" lost=%d", r.lost)
	}
	fmt.Println(line)
	fmt.Println(r.got.String())
	if ended {
		return fmt.Errorf("the stream ended after %d of %d messages", r.got.Messages+r.lost, f.count)
	}
	return r.check()
}

// received is what subscribe got: the payloads, their sequence numbers,
// and the messages lost, in total and before the first one arrived.
type received struct {
	got              payload.Tally
	chk              *payload.SeqChecker // made at the first payload, which it expects first
	first, last      uint64
	lost, lostBefore uint64
}

func (r *received) lose(n uint64) {
	r.lost += n
	if r.got.Messages == 0 {
		r.lostBefore += n
	}
}

func (r *received) add(m []byte) {
	if len(m) >= payload.SeqSize {
		seq := payload.Seq(m)
		if r.chk == nil {
			r.chk, r.first = payload.NewSeqChecker(seq), seq
		}
		r.last = seq
	}
	r.seqs().Add(m)
	r.got.Add(m)
}

func (r *received) seqs() *payload.SeqChecker {
	if r.chk == nil {
		r.chk = payload.NewSeqChecker(0)
	}
	return r.chk
}

// check fails on a repeat, and on a gap that no reported loss explains:
// under back-pressure nothing may be missing; in a lossy queue the numbers
// missing between the first and the last payload must be exactly the
// messages reported lost after the first one arrived.
func (r *received) check() error {
	c := r.seqs()
	if c.Repeats > 0 {
		return fmt.Errorf("sequence check failed: %d repeated or out-of-order message(s)", c.Repeats)
	}
	if c.Short > 0 {
		fmt.Fprintf(os.Stderr, "subscribe: %d payload(s) shorter than %d bytes carried no sequence number\n", c.Short, payload.SeqSize)
	}
	missing := uint64(0)
	if n := r.got.Messages - c.Short; n > 0 {
		missing = r.last - r.first + 1 - n
	}
	if lost := r.lost - r.lostBefore; missing != lost {
		if r.lost == 0 {
			return fmt.Errorf("sequence check failed: %d gap(s), %d message(s) missing", c.Gaps, missing)
		}
		return fmt.Errorf("sequence check failed: %d message(s) missing, %d reported lost", missing, lost)
	}
	return nil
}
