package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/shmq/shmq/cmd/shmq-demo/internal/payload"
	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/mpmc"
	"github.com/shmq/shmq/ring"
)

// Consuming from a shared (MPMC) queue: every message goes to one of the
// consumers, so a consumer sees a subsequence of each producer's stream and
// cannot know in advance how many messages it will get.

const (
	// sharedPoll is how long one Recv of a consumer waiting on a shared
	// queue waits before the consumer looks at the registry again.
	sharedPoll = 10 * time.Millisecond
	// defaultDoneWait is consume's -done-wait: how long the producers must
	// look done before a consumer of a shared queue stops. It covers a
	// producer that starts just after another one finished.
	defaultDoneWait = 500 * time.Millisecond
)

// sharedConsumeOpts are the consume flags that consumeShared follows.
type sharedConsumeOpts struct {
	idle     time.Duration // -idle-exit: stop after this without a message
	doneWait time.Duration // -done-wait: stop once the producers are done for this long; 0: never
}

// producersDone reports whether the producers of q look done: no live
// process is attached as a producer, one was seen (attached now, attached
// since start, or through its messages, which the caller records in
// *seen), and no slot is claimed but not yet taken.
func producersDone(q *mpmc.Queue, start time.Time, seen *bool) (bool, error) {
	st, err := q.Stats()
	if err != nil {
		return false, err
	}
	live := false
	for _, e := range st.Entries {
		if e.Role != layout.RoleProducer {
			continue
		}
		attachedNow := e.State == layout.EntryAttached && e.Alive
		if attachedNow {
			live = true
		}
		if attachedNow || !e.AttachedAt.Before(start) {
			*seen = true
		}
	}
	return !live && *seen && st.Used == 0, nil
}

// consumeShared is consume on a shared queue. It stops after pf.count
// messages, or once the producers are done (producersDone) and have stayed
// done for o.doneWait, or after o.idle without a message.
func consumeShared(ctx context.Context, pf *pipeFlags, qq queue, o sharedConsumeOpts) error {
	q := qq.(mpmcQueue).Queue
	c, err := q.Consumer()
	if err != nil {
		return err
	}
	defer c.Close()
	start := time.Now()
	var until string
	switch {
	case pf.count != math.MaxUint64 && o.doneWait > 0:
		until = fmt.Sprintf("%d messages arrived or the producers are done", pf.count)
	case pf.count != math.MaxUint64:
		until = fmt.Sprintf("%d messages arrived", pf.count)
	case o.doneWait > 0:
		until = "the producers are done"
	default:
		until = "idle"
	}
	if o.idle > 0 {
		until += fmt.Sprintf(" (or idle for %v)", o.idle)
	}
	fmt.Fprintf(os.Stderr, "consume: receiving from mpmc queue %s (%s, %d slots, messages up to %d bytes) until %s\n",
		pf.queue, mpmcMode(q.Locked()), q.Slots(), q.MaxMessage(), until)

	chk := payload.NewProducerChecker(q.MaxMessage(), 0, 0)
	buf := make([]byte, q.MaxMessage())
	var got payload.Tally
	var received uint64
	var first, last time.Time
	accept := func(m []byte) error {
		if received == 0 {
			first = time.Now()
		}
		received++
		chk.Add(m)
		got.Add(m)
		return nil
	}
	seen := false
	lastMsg := start
	var doneSince time.Time
	var reason string
	for received < pf.count {
		before := received
		_, err := c.TryRecvBatch(int(min(256, pf.count-received)), accept)
		if received > before {
			last = time.Now()
			seen, lastMsg, doneSince = true, last, time.Time{}
		}
		if err == nil {
			continue
		}
		if err != mpmc.ErrEmpty {
			return fmt.Errorf("after %d messages: %w", received, err)
		}
		now := time.Now()
		if o.idle > 0 && now.Sub(lastMsg) >= o.idle {
			reason = fmt.Sprintf("no message for %v", o.idle)
			break
		}
		if o.doneWait > 0 {
			done, err := producersDone(q, start, &seen)
			switch {
			case err != nil:
				return fmt.Errorf("after %d messages: %w", received, err)
			case !done:
				doneSince = time.Time{}
			case doneSince.IsZero():
				doneSince = now
			case now.Sub(doneSince) >= o.doneWait:
				reason = "the producers are done and the queue is empty"
			}
			if reason != "" {
				break
			}
		}
		wait := sharedPoll
		if o.idle > 0 {
			wait = min(wait, max(o.idle-now.Sub(lastMsg), time.Millisecond))
		}
		rctx, cancel := context.WithTimeout(ctx, wait)
		n, err := c.Recv(rctx, buf)
		cancel()
		switch {
		case err == nil:
			accept(buf[:n])
			last = time.Now()
			seen, lastMsg, doneSince = true, last, time.Time{}
		case ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
		default:
			return fmt.Errorf("after %d messages: %w", received, err)
		}
	}
	if reason == "" {
		reason = fmt.Sprintf("received %d messages", received)
	}
	d := last.Sub(first)
	redelivered, skipped := c.Redelivered(), c.Skipped()
	c.Close()
	if !pf.keep {
		removeIfLast(q, "consume", pf.queue)
	}
	q.Close()
	fmt.Fprintf(os.Stderr, "consume: stopping: %s\n", reason)
	if received > 0 {
		fmt.Fprintf(os.Stderr, "consume: received in %v from the first message to the last (%.0f messages/s, %.1f MB/s)\n",
			d.Round(time.Microsecond), rate(received, d), rate(got.Bytes, d)/1e6)
	}
	if skipped > 0 {
		fmt.Fprintf(os.Stderr, "consume: skipped %d slot(s) that a producer claimed and died before committing\n", skipped)
	}
	for _, s := range chk.Streams() {
		fmt.Println(s.String())
	}
	fmt.Println(chk.Summary(redelivered))
	fmt.Println(got.String())
	// A message requeued after another consumer's crash arrives after
	// messages that overtook it: a step back that many redeliveries
	// explain is not an error.
	_, repeats := chk.Totals()
	switch {
	case repeats > redelivered:
		return fmt.Errorf("sequence check failed: %d repeated or out-of-order message(s) within a producer's stream", repeats)
	case chk.Corrupt > 0:
		return fmt.Errorf("%d message(s) whose filler is not what produce writes", chk.Corrupt)
	case chk.Short > 0:
		fmt.Fprintf(os.Stderr, "consume: %d payload(s) shorter than %d bytes carried no sequence number and producer id\n", chk.Short, payload.MinProducer)
	}
	return nil
}

// removeIfLast removes the name of shared queue q if it is empty and no live
// process is attached to it: the last producer or consumer out removes the
// queue it leaves empty. A process still attached (a producer with more to
// send, another consumer) keeps the name for those that have not opened
// the queue yet.
func removeIfLast(q *mpmc.Queue, cmd, name string) {
	st, err := q.Stats()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: reading the registry of %s: %v\n", cmd, name, err)
		return
	}
	if st.Used > 0 {
		return
	}
	for _, e := range st.Entries {
		if e.State == layout.EntryAttached && e.Alive {
			return
		}
	}
	if err := ring.Unlink(ring.Shm(name)); err != nil && !errors.Is(err, ring.ErrNotFound) {
		fmt.Fprintf(os.Stderr, "%s: removing %s: %v\n", cmd, name, err)
	}
}
