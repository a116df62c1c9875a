package spsc

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime/debug"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
)

// Consumer is the reading side of a queue. Only one Consumer may be attached
// to a queue at a time, across all processes; it is not safe for concurrent
// use.
//
// Peek returns messages in commit order without freeing them; Release frees
// everything peeked so far with one store of the head cursor. TryRecv, Recv
// and TryRecvBatch copy or hand out messages and release them. A consumer
// that dies between Peek and Release leaves those messages in the ring, and
// the next consumer receives them again: delivery is at-least-once across a
// consumer crash, exactly-once otherwise.
type Consumer struct {
	q      *Queue
	e      *ring.Entry
	data   []byte
	cap    uint64
	mask   uint64
	maxMsg uint32

	head      uint64 // released position, as last stored
	pos       uint64 // next record to peek; head <= pos <= tailCache
	tailCache uint64 // last tail loaded from shared memory

	peeked              uint64 // messages peeked since the last release
	peekedBytes         uint64
	msgs, bytes, stalls uint64 // private copies of the registry counters

	closed bool
}

// Consumer attaches q's consumer role. It fails with ErrRoleTaken while
// another live process (or another handle) holds it; a consumer that died
// frees the role and its successor resumes at the released head.
func (q *Queue) Consumer() (*Consumer, error) {
	e, err := q.attach(layout.SPSCConsumerEntry, layout.RoleConsumer)
	if err != nil {
		return nil, err
	}
	tail, head := q.tail.Load(), q.head.Load()
	if err := q.checkUsed(tail, head); err != nil {
		e.Detach()
		return nil, err
	}
	c := &Consumer{
		q: q, e: e, data: q.data, cap: q.hdr.Capacity, mask: q.mask, maxMsg: q.hdr.MaxMessage,
		head: head, pos: head, tailCache: tail,
		msgs: e.Messages.Load(), bytes: e.Bytes.Load(), stalls: e.Stalls.Load(),
	}
	q.mu.Lock()
	q.consumer = c
	q.mu.Unlock()
	return c, nil
}

// Peek returns the next message not yet peeked, without releasing it. The
// slice aliases the shared ring: it stays valid, and the producer will not
// overwrite it, until Release. A hostile producer process could still write
// into it; copy it before trusting its contents across a check. Peek
// returns ErrEmpty (unwrapped, cheap to test) when no committed message is
// left.
func (c *Consumer) Peek() (_ []byte, err error) {
	if c.q.guarded {
		defer c.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	if c.closed {
		return nil, ErrClosed
	}
	for {
		avail := c.tailCache - c.pos
		if avail == 0 {
			tail := c.q.tail.Load()
			// The tail never moves back and never runs more than a ring ahead
			// of the head; anything else is corruption.
			if err := c.q.checkUsed(tail, c.head); err != nil {
				return nil, err
			}
			if tail-c.tailCache > c.cap {
				return nil, fmt.Errorf("%w: tail moved from %d back to %d", ErrCorrupt, c.tailCache, tail)
			}
			c.tailCache = tail
			if avail = tail - c.pos; avail == 0 {
				c.stalls++
				c.e.Stalls.Store(c.stalls)
				return nil, ErrEmpty
			}
		}
		idx := c.pos & c.mask
		rec := c.data[idx : idx+layout.RecordHeaderSize]
		length := binary.LittleEndian.Uint32(rec[layout.RecordLength:])
		typ := binary.LittleEndian.Uint32(rec[layout.RecordType:])
		size, padding, err := layout.CheckRecord(length, typ, idx, avail, c.cap, c.maxMsg)
		if err != nil {
			return nil, err
		}
		c.pos += size
		if padding {
			continue
		}
		c.peeked++
		n := uint64(length - layout.RecordHeaderSize)
		c.peekedBytes += n
		start := idx + layout.RecordHeaderSize
		return c.data[start : start+n : start+n], nil
	}
}

// Release frees every message returned by Peek since the last Release with
// one store of the head cursor, and wakes the producer if it is parked. The
// store is a release: the consumer's reads of those messages happen before
// the producer's reuse of their space.
func (c *Consumer) Release() (err error) {
	if c.q.guarded {
		defer c.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	if c.pos == c.head {
		return nil
	}
	c.q.head.Store(c.pos)
	c.head = c.pos
	c.msgs += c.peeked
	c.bytes += c.peekedBytes
	c.peeked, c.peekedBytes = 0, 0
	c.e.Messages.Store(c.msgs)
	c.e.Bytes.Store(c.bytes)
	c.q.wakeIfWaiting(c.q.producerWake, c.e)
	return nil
}

// Rewind forgets the messages peeked since the last Release: the next Peek
// returns them again.
func (c *Consumer) Rewind() {
	c.pos, c.peeked, c.peekedBytes = c.head, 0, 0
}

// TryRecv copies the next message into buf and releases it, returning its
// length, or ErrEmpty (unwrapped) without blocking. If buf is too small it
// returns ErrShortBuffer and leaves the message in the queue. Messages
// peeked and not released are released along with it.
func (c *Consumer) TryRecv(buf []byte) (_ int, err error) {
	if c.q.guarded {
		defer c.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	m, err := c.Peek()
	if err != nil {
		return 0, err
	}
	if len(m) > len(buf) {
		c.pos -= layout.RecordSize(len(m))
		c.peeked--
		c.peekedBytes -= uint64(len(m))
		return 0, fmt.Errorf("%w: message of %d bytes, buffer of %d", ErrShortBuffer, len(m), len(buf))
	}
	n := copy(buf, m)
	return n, c.Release()
}

// TryRecvBatch calls fn with up to max committed messages, in order, then
// releases them with one store. The slices passed to fn are valid only
// during the call. It returns how many messages it handed out, and ErrEmpty
// if there were none. If fn returns an error, the messages before that one
// are released, that one and the rest are not, and the error is returned.
func (c *Consumer) TryRecvBatch(max int, fn func(msg []byte) error) (_ int, err error) {
	if c.q.guarded {
		defer c.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	n := 0
	for n < max {
		m, err := c.Peek()
		if err == ErrEmpty && n > 0 {
			break
		}
		if err != nil {
			c.Release()
			return n, err
		}
		if err := fn(m); err != nil {
			c.pos -= layout.RecordSize(len(m))
			c.peeked--
			c.peekedBytes -= uint64(len(m))
			c.Release()
			return n, err
		}
		n++
	}
	return n, c.Release()
}

// Recv copies the next message into buf and releases it, waiting while the
// queue is empty until ctx ends. It fails with ErrPeerDead if the queue
// stays empty and the producer died without detaching (a new producer may
// attach; Recv may be called again).
func (c *Consumer) Recv(ctx context.Context, buf []byte) (_ int, err error) {
	if c.q.guarded {
		defer c.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	for {
		n, err := c.TryRecv(buf)
		if err != ErrEmpty {
			return n, err
		}
		if err := c.q.waitFor(ctx, c.q.consumerWake, c.e, layout.SPSCProducerEntry, func() bool {
			return c.q.tail.Load() != c.pos
		}); err != nil {
			return 0, err
		}
	}
}

// Close detaches the consumer role. Messages peeked and not released stay
// in the queue for the next consumer.
func (c *Consumer) Close() (err error) {
	if c.q.guarded {
		defer c.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	if c.closed {
		return nil
	}
	c.closed = true
	c.q.mu.Lock()
	if c.q.consumer == c {
		c.q.consumer = nil
	}
	c.q.mu.Unlock()
	return c.e.Detach()
}
