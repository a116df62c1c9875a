package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"slices"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/mpmc"
	"github.com/shmq/shmq/ring"
)

// Consuming from a shared (MPMC) queue: every message goes to one of the
// consumers, so a consumer sees a subsequence of each producer's stream and
// cannot know in advance how many messages it will get.

// producerStream follows the sequence numbers of one producer as one
// consumer receives them.
type producerStream struct {
	id            uint64
	messages      uint64
	first, last   uint64
	gaps, repeats uint64
	seen          []uint64 // bitmap of the sequence numbers received, if bounded
}

// mpmcChecker follows the messages that one consumer of a shared queue
// receives. Each producer's sequence numbers must only increase: gaps are
// expected (other consumers took those messages), a repeat or a step back
// is an error. Every message's filler is checked.
type mpmcChecker struct {
	streams map[uint64]*producerStream
	cur     *producerStream
	scratch []byte
	short   uint64 // payloads too short to carry a sequence number and producer id
	corrupt uint64 // payloads whose filler (or, if bounded, id or number) is wrong
	// If ids > 0 the checker is bounded, as in the demo: producer ids are
	// below ids and sequence numbers below seqs, and each stream keeps a
	// bitmap of the numbers received.
	ids, seqs uint64
}

// newMPMCChecker returns a checker for messages of up to maxMessage bytes.
func newMPMCChecker(maxMessage int) *mpmcChecker {
	return &mpmcChecker{streams: map[uint64]*producerStream{}, scratch: make([]byte, maxMessage)}
}

func (c *mpmcChecker) add(m []byte) {
	if len(m) < minMPMCMessage {
		c.short++
		return
	}
	seq := binary.LittleEndian.Uint64(m)
	id := binary.LittleEndian.Uint64(m[seqSize:])
	if len(m) > len(c.scratch) || !mpmcFillerOK(m, c.scratch) || c.ids > 0 && (id >= c.ids || seq >= c.seqs) {
		c.corrupt++
		return
	}
	s := c.cur
	if s == nil || s.id != id {
		if s = c.streams[id]; s == nil {
			s = &producerStream{id: id}
			if c.ids > 0 {
				s.seen = make([]uint64, (c.seqs+63)/64)
			}
			c.streams[id] = s
		}
		c.cur = s
	}
	switch {
	case s.messages == 0:
		s.first, s.last = seq, seq
		if seq > 0 {
			s.gaps++
		}
	case seq > s.last:
		if seq > s.last+1 {
			s.gaps++
		}
		s.last = seq
	default:
		s.repeats++ // keep last: a step back does not rewind the stream
	}
	s.messages++
	if s.seen != nil {
		s.seen[seq/64] |= 1 << (seq % 64)
	}
}

// sorted returns the streams in order of producer id.
func (c *mpmcChecker) sorted() []*producerStream {
	ss := make([]*producerStream, 0, len(c.streams))
	for _, s := range c.streams {
		ss = append(ss, s)
	}
	slices.SortFunc(ss, func(a, b *producerStream) int {
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
	return ss
}

func (c *mpmcChecker) totals() (gaps, repeats uint64) {
	for _, s := range c.streams {
		gaps += s.gaps
		repeats += s.repeats
	}
	return gaps, repeats
}

func (s *producerStream) String() string {
	return fmt.Sprintf("producer=%d messages=%d seq_first=%d seq_last=%d gaps=%d repeats=%d",
		s.id, s.messages, s.first, s.last, s.gaps, s.repeats)
}

// summary is the line consume prints after the producer lines.
func (c *mpmcChecker) summary(redelivered uint64) string {
	gaps, repeats := c.totals()
	line := fmt.Sprintf("producers=%d gaps=%d repeats=%d", len(c.streams), gaps, repeats)
	if c.corrupt > 0 {
		line += fmt.Sprintf(" corrupt=%d", c.corrupt)
	}
	if redelivered > 0 {
		line += fmt.Sprintf(" redelivered=%d", redelivered)
	}
	return line
}

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

	chk := newMPMCChecker(q.MaxMessage())
	buf := make([]byte, q.MaxMessage())
	var crc uint32
	var bytes, received uint64
	var first, last time.Time
	accept := func(m []byte) error {
		if received == 0 {
			first = time.Now()
		}
		received++
		chk.add(m)
		crc = crc32.Update(crc, castagnoli, m)
		bytes += uint64(len(m))
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
			d.Round(time.Microsecond), rate(received, d), rate(bytes, d)/1e6)
	}
	if skipped > 0 {
		fmt.Fprintf(os.Stderr, "consume: skipped %d slot(s) that a producer claimed and died before committing\n", skipped)
	}
	for _, s := range chk.sorted() {
		fmt.Println(s.String())
	}
	fmt.Println(chk.summary(redelivered))
	fmt.Println(summary(received, bytes, crc))
	// A message requeued after another consumer's crash arrives after
	// messages that overtook it: a step back that many redeliveries
	// explain is not an error.
	_, repeats := chk.totals()
	switch {
	case repeats > redelivered:
		return fmt.Errorf("sequence check failed: %d repeated or out-of-order message(s) within a producer's stream", repeats)
	case chk.corrupt > 0:
		return fmt.Errorf("%d message(s) whose filler is not what produce writes", chk.corrupt)
	case chk.short > 0:
		fmt.Fprintf(os.Stderr, "consume: %d payload(s) shorter than %d bytes carried no sequence number and producer id\n", chk.short, minMPMCMessage)
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
