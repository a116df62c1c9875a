package mpmc

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
)

// Consumer is one reading side of a queue. It holds a registry entry of its
// own; any number of consumers, in any processes, may read from a queue at
// once, up to the registry size. Each message goes to exactly one of them.
// A Consumer is not safe for concurrent use: give each goroutine its own.
//
// Taking a message claims its slot for this consumer; releasing it frees
// the slot for producers. TryRecv, Recv and TryRecvBatch take, copy or hand
// out, and release. Peek takes a message and hands out the slot itself;
// Release frees everything peeked. A consumer that dies holding messages
// (between Peek and Release, or inside TryRecv) does not lose them: the
// producer that next reaches one of their slots, a lap of the ring later,
// requeues the message there and another consumer receives it again
// (at-least-once), after messages that overtook it.
type Consumer struct {
	q      *Queue
	e      *ring.Entry
	me     uint32
	maxMsg uint32

	held      []uint64 // positions peeked and not yet released, in order
	heldBytes uint64

	stashed  bool // a taken message not yet handed out (ErrShortBuffer, fn error)
	stashPos uint64
	stashLen uint32

	msgs, bytes, stalls uint64 // private copies of the registry counters
	skipped             uint64 // slots of dead producers skipped
	tombstones          uint64 // slots abandoned by producers, skipped
	redelivered         uint64 // messages taken that had been requeued
	wasRequeued         bool   // the message last taken had been requeued

	stuck    suspect
	lastPos  uint64 // position and word that made the last take fail
	lastWord uint64
	freed    bool // a slot was freed since the last wake of producers

	closed bool
}

// Consumer attaches a new consumer, taking a free registry entry. It fails
// with ErrRegistryFull when every entry is held by a live process. An entry
// whose holder died is reused; messages that holder had taken and not
// released are orphaned, for producers to requeue (see Producer.Requeued).
func (q *Queue) Consumer() (_ *Consumer, err error) {
	if q.guarded {
		defer q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	e, err := q.attach(layout.RoleConsumer)
	if err != nil {
		return nil, err
	}
	c := &Consumer{
		q: q, e: e, me: uint32(e.Index()), maxMsg: q.maxMsg,
		msgs: e.Messages.Load(), bytes: e.Bytes.Load(), stalls: e.Stalls.Load(),
	}
	q.mu.Lock()
	if q.consumers == nil {
		q.consumers = make(map[*Consumer]struct{})
	}
	q.consumers[c] = struct{}{}
	q.mu.Unlock()
	return c, nil
}

// Index returns the consumer's registry entry index.
func (c *Consumer) Index() int { return int(c.me) }

// Skipped returns how many slots this consumer skipped because the
// producer that claimed them died (or closed) before committing.
func (c *Consumer) Skipped() uint64 { return c.skipped + c.tombstones }

// Redelivered returns how many of the messages this consumer took had been
// taken before by a consumer that died without releasing them, and were
// requeued: deliveries that may duplicate one the dead consumer acted on.
func (c *Consumer) Redelivered() uint64 { return c.redelivered }

// claim takes the next message for this consumer and returns its position
// and length, or ErrEmpty (unwrapped). It skips tombstones, and slots whose
// producer died while writing them.
func (c *Consumer) claim() (uint64, uint32, error) {
	q := c.q
	lap := q.lap()
	pos := q.deq.Load()
	for attempt := 0; attempt < maxAttempts; attempt++ {
		seq := q.seqs[pos&q.mask]
		w := seq.Load()
		d, err := q.classify(w, pos)
		if err != nil {
			return 0, 0, err
		}
		switch {
		case d == dFull:
			if seq.CompareAndSwap(w, layout.SeqWord(pos, layout.SlotReading, c.me)) {
				q.deq.CompareAndSwap(pos, pos+1)
				n := le32(q.data[q.slot(pos)+layout.SlotLength:])
				if n != 0 && n <= c.maxMsg {
					// A requeued message is published as F(pos, SeqOwnerOrphan).
					c.wasRequeued = layout.SeqOwner(w) == layout.SeqOwnerOrphan
					if c.wasRequeued {
						c.redelivered++
					}
					return pos, n, nil
				}
				ferr := c.free(pos)
				if n != 0 {
					return 0, 0, fmt.Errorf("%w: slot %d at position %d holds a %d-byte message, more than the maximum %d",
						ErrCorrupt, pos&q.mask, pos, n, c.maxMsg)
				}
				if ferr != nil {
					return 0, 0, ferr
				}
				c.tombstones++
			}
		case d == dReading:
			// Another consumer took pos: help its cursor along.
			q.deq.CompareAndSwap(pos, pos+1)
		case d == dEmpty || d == dReading-lap:
			// Nothing committed at pos yet (its slot may still hold the
			// previous lap, being read).
			c.lastPos, c.lastWord = pos, w
			return 0, 0, ErrEmpty
		case d == dWriting:
			if err := q.checkOwner(w, pos); err != nil {
				return 0, 0, err
			}
			if layout.SeqOwner(w) == layout.SeqOwnerOrphan {
				// A message being requeued, complete: publish it for the
				// producer that requeues it, which may have died.
				q.enq.CompareAndSwap(pos, pos+1)
				seq.CompareAndSwap(w, layout.SeqWord(pos, layout.SlotFull, layout.SeqOwnerOrphan))
				break
			}
			// A producer is writing pos. If it died doing so, skip the slot.
			gone, err := c.stuck.claimantGone(q.seg, w)
			if err != nil {
				return 0, 0, err
			}
			if !gone {
				c.lastPos, c.lastWord = pos, w
				return 0, 0, ErrEmpty
			}
			// Adopt the claim, so that the slot is ours while we make it a
			// tombstone: a taken slot with a half-written message in it
			// would be requeued if we died.
			mine := layout.SeqWord(pos, layout.SlotWriting, c.me)
			if seq.CompareAndSwap(w, mine) {
				q.enq.CompareAndSwap(pos, pos+1)
				le32put(q.data[q.slot(pos)+layout.SlotLength:], 0)
				if !seq.CompareAndSwap(mine, layout.SeqWord(pos, layout.SlotReading, c.me)) {
					return 0, 0, q.corrupt("adopted slot taken from its consumer", seq.Load(), pos)
				}
				q.deq.CompareAndSwap(pos, pos+1)
				c.skipped++
				if err := c.free(pos); err != nil {
					return 0, 0, err
				}
			}
		case d >= lap:
			// The slot is a lap ahead: pos is stale, or the cursor was
			// moved back.
			if n := q.deq.Load(); n != pos {
				pos = n
				continue
			}
			return 0, 0, q.corrupt("dequeue cursor behind its slot", w, pos)
		default:
			return 0, 0, q.corrupt("dequeue cursor ahead of its slot", w, pos)
		}
		pos = q.deq.Load()
	}
	return 0, 0, fmt.Errorf("%w: no progress after %d attempts to take a slot", ErrCorrupt, maxAttempts)
}

// free releases the slot of pos, taken by this consumer, to the producers
// of the next lap. Waking them is left to the caller (wakeProducers).
func (c *Consumer) free(pos uint64) error {
	q := c.q
	seq := q.seqs[pos&q.mask]
	c.freed = true
	if !seq.CompareAndSwap(layout.SeqWord(pos, layout.SlotReading, c.me), layout.SeqWord(pos+q.hdr.Capacity, layout.SlotEmpty, 0)) {
		return q.corrupt("taken slot taken from its consumer", seq.Load(), pos)
	}
	return nil
}

func (c *Consumer) wakeProducers() {
	if c.freed {
		c.freed = false
		c.q.wakeIfWaiting(c.q.producerWake, c.e)
	}
}

// next returns the stashed message, if any, or takes the next one.
func (c *Consumer) next() (uint64, uint32, error) {
	if c.closed {
		return 0, 0, ErrClosed
	}
	if c.stashed {
		c.stashed = false
		return c.stashPos, c.stashLen, nil
	}
	pos, n, err := c.claim()
	if err == ErrEmpty {
		c.stalls++
		c.e.Stalls.Store(c.stalls)
	}
	return pos, n, err
}

func (c *Consumer) stash(pos uint64, n uint32) {
	c.stashed, c.stashPos, c.stashLen = true, pos, n
}

// delivered counts one message handed out and released.
func (c *Consumer) delivered(n uint32) {
	c.msgs++
	c.bytes += uint64(n)
}

func (c *Consumer) publishCounters() {
	c.e.Messages.Store(c.msgs)
	c.e.Bytes.Store(c.bytes)
}

// Peek takes the next message and returns its payload without releasing
// it. The slice aliases the shared slot: it stays valid, and no producer
// overwrites it, until Release (or Close). Every peeked message holds its
// slot, so producers can fill at most Slots minus the number held. A
// hostile process could still write into the slot; copy it before
// trusting its contents across a check. Peek returns ErrEmpty (unwrapped,
// cheap to test) when no committed message is available.
func (c *Consumer) Peek() ([]byte, error) {
	if c.q.guarded {
		return c.peekGuarded()
	}
	return c.peek()
}

func (c *Consumer) peekGuarded() (_ []byte, err error) {
	defer c.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	return c.peek()
}

func (c *Consumer) peek() ([]byte, error) {
	if c.q.lk != nil {
		return nil, ErrLockedMode
	}
	pos, n, err := c.next()
	if err != nil {
		c.wakeProducers()
		return nil, err
	}
	c.held = append(c.held, pos)
	c.heldBytes += uint64(n)
	return c.q.payload(pos, n), nil
}

// Release frees every message returned by Peek since the last Release. The
// release is a store with release semantics: this consumer's reads of the
// messages happen before a producer's reuse of their slots. It fails only
// if another process overwrote a held slot (ErrCorrupt).
func (c *Consumer) Release() error {
	if c.q.guarded {
		return c.releaseGuarded()
	}
	return c.release()
}

func (c *Consumer) releaseGuarded() (err error) {
	defer c.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	return c.release()
}

func (c *Consumer) release() error {
	var err error
	for _, pos := range c.held {
		if ferr := c.free(pos); ferr != nil && err == nil {
			err = ferr
		}
	}
	c.msgs += uint64(len(c.held))
	c.bytes += c.heldBytes
	c.held, c.heldBytes = c.held[:0], 0
	c.publishCounters()
	c.wakeProducers()
	return err
}

// TryRecv takes the next message, copies it into buf and releases it,
// returning its length, or ErrEmpty (unwrapped) without blocking. If buf
// is too small it returns ErrShortBuffer and keeps the message: the next
// TryRecv, Recv, Peek or TryRecvBatch returns it first. Messages peeked
// and not released stay held.
func (c *Consumer) TryRecv(buf []byte) (int, error) {
	if c.q.guarded {
		return c.tryRecvGuarded(buf)
	}
	return c.tryRecv(buf)
}

func (c *Consumer) tryRecvGuarded(buf []byte) (_ int, err error) {
	defer c.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	return c.tryRecv(buf)
}

func (c *Consumer) tryRecv(buf []byte) (int, error) {
	if c.q.lk != nil {
		return c.lockedTryRecv(context.Background(), false, buf)
	}
	pos, n, err := c.next()
	if err != nil {
		c.wakeProducers()
		return 0, err
	}
	if int(n) > len(buf) {
		c.stash(pos, n)
		return 0, fmt.Errorf("%w: message of %d bytes, buffer of %d", ErrShortBuffer, n, len(buf))
	}
	copy(buf, c.q.payload(pos, n))
	err = c.free(pos)
	c.delivered(n)
	c.publishCounters()
	c.wakeProducers()
	return int(n), err
}

// TryRecvBatch takes up to max messages, one at a time, calls fn with each
// and releases it, and wakes producers once. The slice passed to fn is
// valid only during the call. It returns how many messages fn accepted,
// and ErrEmpty if there were none. If fn returns an error, that message is
// kept (the next call returns it first) and the error is returned.
func (c *Consumer) TryRecvBatch(max int, fn func(msg []byte) error) (_ int, err error) {
	if c.q.guarded {
		defer c.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	if c.q.lk != nil {
		if c.closed {
			return 0, ErrClosed
		}
		if max <= 0 {
			return 0, nil
		}
		return c.lockedRecv(context.Background(), false, max, fn)
	}
	n := 0
	defer func() {
		if n > 0 {
			c.publishCounters()
		}
		c.wakeProducers()
	}()
	for n < max {
		pos, ln, err := c.next()
		if err == ErrEmpty && n > 0 {
			break
		}
		if err != nil {
			return n, err
		}
		if err := fn(c.q.payload(pos, ln)); err != nil {
			c.stash(pos, ln)
			return n, err
		}
		if err := c.free(pos); err != nil {
			return n, err
		}
		c.delivered(ln)
		n++
	}
	return n, nil
}

// Recv takes the next message, copies it into buf and releases it, waiting
// while the queue is empty until ctx ends. While it waits it skips slots
// whose producer died before committing them.
func (c *Consumer) Recv(ctx context.Context, buf []byte) (int, error) {
	if c.q.guarded {
		return c.recvGuarded(ctx, buf)
	}
	return c.recv(ctx, buf)
}

func (c *Consumer) recvGuarded(ctx context.Context, buf []byte) (_ int, err error) {
	defer c.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	return c.recv(ctx, buf)
}

func (c *Consumer) recv(ctx context.Context, buf []byte) (int, error) {
	if c.q.lk != nil {
		return c.lockedTryRecv(ctx, true, buf)
	}
	for {
		n, err := c.tryRecv(buf)
		if err != ErrEmpty {
			return n, err
		}
		q := c.q
		pos, w := c.lastPos, c.lastWord
		if err := q.waitFor(ctx, q.consumerWake, c.e, w, func() bool {
			return q.deq.Load() != pos || q.seqs[pos&q.mask].Load() != w
		}); err != nil {
			return 0, err
		}
	}
}

// Close releases held messages (they count as consumed) and detaches the
// consumer.
func (c *Consumer) Close() (err error) {
	if c.closed {
		return nil
	}
	if c.q.guarded {
		defer c.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	c.closed = true
	c.q.mu.Lock()
	delete(c.q.consumers, c)
	c.q.mu.Unlock()
	if c.stashed {
		c.stashed = false
		c.free(c.stashPos)
	}
	c.release()
	return c.e.Detach()
}
