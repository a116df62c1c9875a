package spsc

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"runtime/debug"

	"github.com/shmq/shmq/internal/counter"
	"github.com/shmq/shmq/internal/fence"
	"github.com/shmq/shmq/internal/gate"
	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
)

// Consumer is the reading side of a queue. Only one Consumer may be attached
// to a queue at a time, across all processes; it is not safe for concurrent
// use, except that Close may be called from any goroutine.
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
	g      *gate.Gate
	data   []byte
	cap    uint64
	mask   uint64
	maxMsg uint32

	head      uint64 // released position, as last stored
	pos       uint64 // next record to peek; head <= pos <= tailCache
	tailCache uint64 // last tail loaded from shared memory

	peeked              uint64 // messages peeked since the last release
	peekedBytes         uint64
	lastPeek            uint64        // record position of the message Peek or PeekWait returned last (position.go)
	msgs, bytes, stalls uint64        // private copies of the registry counters
	ctr                 counter.Entry // the registry counters, written unfenced
	waker
}

// Consumer attaches q's consumer role. It fails with ErrRoleTaken while
// another live process (or another handle) holds it; a consumer that died
// frees the role and its successor resumes at the released head.
func (q *Queue) Consumer() (*Consumer, error) {
	return attach(q, "Consumer", layout.SPSCConsumerEntry, layout.RoleConsumer, func(e *ring.Entry, tail, head uint64) *Consumer {
		return &Consumer{
			q: q, e: e, g: gate.NewSingle(), data: q.data, cap: q.hdr.Capacity, mask: q.mask, maxMsg: q.hdr.MaxMessage,
			head: head, pos: head, tailCache: tail, ctr: counter.OfEntry(e),
		}
	}, func() **Consumer { return &q.consumer })
}

// enter admits a call of operation op, or says why not.
func (c *Consumer) enter(op string) error {
	if c != nil && c.g != nil && c.g.Enter() { // inlined
		return nil
	}
	return refused(op, c == nil || c.g == nil)
}

// Peek returns the next message not yet peeked, without releasing it. The
// slice aliases the shared ring: it stays valid, and the producer will not
// overwrite it, until Release (or Close). A hostile producer process could
// still write into it; copy it before trusting its contents across a check,
// and on a segment another process could truncate, read it inside
// Queue.Guard. Peek returns ErrEmpty (unwrapped, cheap to test) when no
// committed message is left.
func (c *Consumer) Peek() (_ []byte, err error) {
	if err := c.enter("Peek"); err != nil {
		return nil, err
	}
	defer c.g.Exit()
	if c.q.guarded {
		defer c.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	m, err := c.peek()
	if err == nil {
		c.notePeek(m)
	}
	return m, opError("Peek", err)
}

// PeekWait is Peek that waits, while the queue is empty, until a message is
// committed or ctx ends, like Recv; it returns io.EOF at the end of the
// stream.
func (c *Consumer) PeekWait(ctx context.Context) (_ []byte, err error) {
	if err := c.enter("PeekWait"); err != nil {
		return nil, err
	}
	defer c.g.Exit()
	if c.q.guarded {
		defer c.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	for {
		m, err := c.peek()
		if err == nil {
			c.notePeek(m)
		}
		if err != ErrEmpty {
			return m, opError("PeekWait", err)
		}
		if err := c.waitData(ctx); err != nil {
			return nil, opError("PeekWait", err)
		}
	}
}

func (c *Consumer) peek() ([]byte, error) {
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
				c.ctr.Stalls.Set(c.stalls)
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

// unpeek puts the message m, the last one peeked, back.
func (c *Consumer) unpeek(m []byte) {
	c.pos -= layout.RecordSize(len(m))
	c.peeked--
	c.peekedBytes -= uint64(len(m))
}

// Release frees every message returned by Peek since the last Release with
// one store of the head cursor, and wakes the producer if it is parked. The
// store is a release: the consumer's reads of those messages happen before
// the producer's reuse of their space.
func (c *Consumer) Release() (err error) {
	if err := c.enter("Release"); err != nil {
		return err
	}
	defer c.g.Exit()
	if c.q.guarded {
		defer c.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	c.release()
	return nil
}

func (c *Consumer) release() {
	if c.pos == c.head {
		return
	}
	fence.Store(c.q.head, c.pos)
	c.head = c.pos
	c.msgs += c.peeked
	c.bytes += c.peekedBytes
	c.peeked, c.peekedBytes = 0, 0
	c.ctr.Messages.Set(c.msgs)
	c.ctr.Bytes.Set(c.bytes)
	if c.q.producerWake.Waiters.Any() { // inlined: no call while no one waits
		c.wakeIfWaiting(c.q, c.q.producerWake, c.e)
	}
}

// Rewind forgets the messages peeked since the last Release: the next Peek
// returns them again.
func (c *Consumer) Rewind() {
	if c.enter("Rewind") != nil {
		return
	}
	defer c.g.Exit()
	c.pos, c.peeked, c.peekedBytes = c.head, 0, 0
}

// TryRecv copies the next message into buf and releases it, returning its
// length, or ErrEmpty (unwrapped) without blocking. If buf is too small it
// returns ErrShortBuffer and leaves the message in the queue. Messages
// peeked and not released are released along with it.
func (c *Consumer) TryRecv(buf []byte) (_ int, err error) {
	if err := c.enter("TryRecv"); err != nil {
		return 0, err
	}
	defer c.g.Exit()
	if c.q.guarded {
		defer c.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	if n, ok := c.recvFast(buf); ok {
		return n, nil
	}
	n, err := c.tryRecv(buf)
	return n, opError("TryRecv", err)
}

func (c *Consumer) tryRecv(buf []byte) (int, error) {
	if n, ok := c.recvFast(buf); ok {
		return n, nil
	}
	m, err := c.peek()
	if err != nil {
		return 0, err
	}
	if len(m) > len(buf) {
		c.unpeek(m)
		return 0, fmt.Errorf("%w: message of %d bytes, buffer of %d", ErrShortBuffer, len(m), len(buf))
	}
	n := copy(buf, m)
	c.release()
	return n, nil
}

// recvFast is peek, copy and release in one function for the common case
// of a streaming receive: nothing peeked before, and a message record that
// is valid and fits buf. It loads the tail when the cached one is used up.
// It reports false, having changed nothing the slow path would not redo,
// for anything else: an empty ring, padding, a short buffer, and anything
// that looks corrupt, which the slow path diagnoses.
func (c *Consumer) recvFast(buf []byte) (int, bool) {
	if c.pos != c.head {
		return 0, false
	}
	avail := c.tailCache - c.pos
	if avail == 0 {
		tail := c.q.tail.Load()
		if tail == c.pos || tail-c.head > c.cap || tail-c.tailCache > c.cap || tail%layout.RecordAlign != 0 {
			return 0, false
		}
		c.tailCache = tail
		avail = tail - c.pos
	}
	idx := c.pos & c.mask
	rec := c.data[idx:]
	length := binary.LittleEndian.Uint32(rec[layout.RecordLength:])
	typ := binary.LittleEndian.Uint32(rec[layout.RecordType:])
	n := uint64(length) - layout.RecordHeaderSize // wraps for a length below the header: caught below
	size := (uint64(length) + layout.RecordAlign - 1) &^ (layout.RecordAlign - 1)
	if typ != layout.TypeMessage || n > uint64(c.maxMsg) || n > uint64(len(buf)) || size > avail || size > uint64(len(rec)) {
		return 0, false
	}
	copy(buf, rec[layout.RecordHeaderSize:layout.RecordHeaderSize+n])
	c.pos += size
	c.peeked, c.peekedBytes = 1, n
	c.release()
	return int(n), true
}

// peekFast is peek for the batch loop's common case: a valid message
// record among those already known to be committed (the cached tail). It
// reports false, having changed nothing, for anything else, which peek
// handles: the cached tail used up, padding, and anything that looks
// corrupt, which peek diagnoses.
func (c *Consumer) peekFast() ([]byte, bool) {
	avail := c.tailCache - c.pos
	idx := c.pos & c.mask
	if avail < layout.RecordHeaderSize || idx > c.cap-layout.RecordHeaderSize {
		return nil, false
	}
	rec := c.data[idx:]
	length := binary.LittleEndian.Uint32(rec[layout.RecordLength:])
	typ := binary.LittleEndian.Uint32(rec[layout.RecordType:])
	n := uint64(length) - layout.RecordHeaderSize // wraps for a length below the header: caught below
	size := (uint64(length) + layout.RecordAlign - 1) &^ (layout.RecordAlign - 1)
	if typ != layout.TypeMessage || n > uint64(c.maxMsg) || size > avail || size > uint64(len(rec)) {
		return nil, false
	}
	c.pos += size
	c.peeked++
	c.peekedBytes += n
	return rec[layout.RecordHeaderSize : layout.RecordHeaderSize+n : layout.RecordHeaderSize+n], true
}

// TryRecvBatch calls fn with up to max committed messages, in order, then
// releases them with one store. The slices passed to fn are valid only
// during the call; fn must not call Close on this consumer or its queue.
// It returns how many messages it handed out, and ErrEmpty if there were
// none. If fn returns an error, the messages before that one are released,
// that one and the rest are not, and the error is returned.
func (c *Consumer) TryRecvBatch(max int, fn func(msg []byte) error) (_ int, err error) {
	if err := c.enter("TryRecvBatch"); err != nil {
		return 0, err
	}
	defer c.g.Exit()
	if max <= 0 {
		return 0, opError("TryRecvBatch", fmt.Errorf("%w: max %d", ErrInvalid, max))
	}
	if c.q.guarded {
		defer c.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	n := 0
	for n < max {
		m, ok := c.peekFast()
		if ok {
			if err := fn(m); err != nil {
				c.unpeek(m)
				c.release()
				return n, err
			}
			n++
			continue
		}
		m, err := c.peek()
		if err == ErrEmpty && n > 0 {
			break
		}
		if err != nil {
			c.release()
			return n, opError("TryRecvBatch", err)
		}
		if err := fn(m); err != nil {
			c.unpeek(m)
			c.release()
			return n, err
		}
		n++
	}
	c.release()
	return n, nil
}

// Recv copies the next message into buf and releases it, waiting while the
// queue is empty until ctx ends or the consumer is closed. It returns
// io.EOF once the producer has closed and every message it committed has
// been received (a producer that attaches later starts a new stream, which
// the next Recv returns). It fails with ErrPeerDead if the queue stays
// empty and the producer died without detaching (a new producer may attach;
// Recv may be called again).
func (c *Consumer) Recv(ctx context.Context, buf []byte) (_ int, err error) {
	if err := c.enter("Recv"); err != nil {
		return 0, err
	}
	defer c.g.Exit()
	if c.q.guarded {
		defer c.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	if n, ok := c.recvFast(buf); ok {
		return n, nil
	}
	for {
		n, err := c.tryRecv(buf)
		if err != ErrEmpty {
			return n, opError("Recv", err)
		}
		if err := c.waitData(ctx); err != nil {
			return 0, opError("Recv", err)
		}
	}
}

// waitData waits, after a peek found the ring empty, until the tail moves
// or the stream ends (io.EOF).
//
// The producer's state word shares a cache line with the counters that
// the producer writes at every commit, so a consumer that loaded it at
// every check of its spin would pull that line away from the producer
// once per message: while spinning it looks at the state only every
// stateEvery checks, and at every check once parked.
func (c *Consumer) waitData(ctx context.Context) error {
	checks := 0
	spin := func() bool {
		if c.q.tail.Load() != c.pos {
			return true
		}
		checks++
		return checks%stateEvery == 0 && c.q.prodState.Load() == layout.EntryDetached
	}
	err := c.q.waitFor(ctx, c.g, c.q.consumerWake, c.e, layout.SPSCProducerEntry, func() bool {
		return c.q.tail.Load() != c.pos || c.q.prodState.Load() == layout.EntryDetached
	}, spin)
	if err == nil && c.q.tail.Load() == c.pos && c.ended() {
		return io.EOF
	}
	return err
}

// stateEvery is how many spinning checks of a waiting consumer go by
// between its looks at the producer's state (end of stream): about a
// microsecond.
const stateEvery = 1024

// ended reports the end of the stream: the producer detached cleanly and
// everything it committed has been peeked. The producer stores its last
// tail before its detached state, so the tail loaded after seeing that
// state is final.
func (c *Consumer) ended() bool {
	return c.q.prodState.Load() == layout.EntryDetached && c.q.tail.Load() == c.pos
}

// Close detaches the consumer role. Messages peeked and not released stay
// in the queue for the next consumer. Close may be called from any
// goroutine: a call blocked in Recv or PeekWait returns ErrClosed, and
// Close returns after it.
func (c *Consumer) Close() (err error) {
	if c == nil || c.g == nil {
		return opError("Close", errNilHandle)
	}
	c.g.Close(func() { err = c.teardown() })
	return err
}

// teardown detaches the consumer, once no call is in flight, and forgets
// the handle last (see Producer.teardown).
func (c *Consumer) teardown() (err error) {
	defer detach(c.q, &c.q.consumer, c)
	if c.q.guarded {
		defer c.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	return opError("Close", c.e.Detach())
}
