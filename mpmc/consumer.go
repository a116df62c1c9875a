package mpmc

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/shmq/shmq/internal/counter"
	"github.com/shmq/shmq/internal/gate"
	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
)

// Consumer is one reading side of a queue. It holds a registry entry of its
// own; any number of consumers, in any processes, may read from a queue at
// once, up to the registry size. Each message goes to exactly one of them.
// A Consumer is not safe for concurrent use (give each goroutine its own),
// except that Close may be called from any goroutine.
//
// Taking a message claims its slot for this consumer; releasing it frees
// the slot for producers. TryRecv, Recv and TryRecvBatch take, copy or hand
// out, and release. Peek takes a message and hands out the slot itself;
// Release frees everything peeked (as do TryRecv and Recv, like in package
// spsc). A consumer that dies holding messages (between Peek and Release,
// or inside TryRecv) does not lose them: the producer that next reaches
// one of their slots, a lap of the ring later, requeues the message there
// and another consumer receives it again (at-least-once), after messages
// that overtook it.
type Consumer struct {
	q      *Queue
	e      *ring.Entry
	g      *gate.Gate
	me     uint32
	maxMsg uint32

	held      []uint64 // positions peeked and not yet released, in order
	heldBytes uint64

	stashed  bool // a taken message not yet handed out (ErrShortBuffer, fn error)
	stashPos uint64
	stashLen uint32

	msgs, bytes, stalls uint64        // private copies of the registry counters
	ctr                 counter.Entry // the registry counters, written unfenced
	tombstones          uint64        // tombstones passed: slots of producers that closed or died before committing
	redelivered         uint64        // messages taken that had been requeued
	wasRequeued         bool          // the message last taken had been requeued
	lastRequeued        bool          // the message Peek or PeekWait returned last had been requeued (position.go)

	units *atomic.Uint32 // locked mode: semaphore units this handle may hold (layout.EntryUnits)

	stuck    suspect
	lastPos  uint64 // position and word that made the last take fail
	lastWord uint64
	freed    bool // a slot was freed since the last wake of producers
	waker

	// End of stream (EndOfStream): eofGrace > 0 enables it; eofFrom is
	// when it was enabled; seen is set once a producer was attached since
	// then (or a message arrived); idleSince is when this consumer first
	// found no producer attached, zero while one is.
	eofGrace  time.Duration
	eofFrom   time.Time
	eofMsgs   uint64
	eofEnq    uint64 // the enqueue cursor at EndOfStream: if it moved, a producer was here
	seen      bool
	idleSince time.Time
}

// Consumer attaches a new consumer, taking a free registry entry. It fails
// with ErrRegistryFull when every entry is held by a live process. An entry
// whose holder died is reused; messages that holder had taken and not
// released are orphaned, for producers to requeue (see Producer.Requeued).
func (q *Queue) Consumer() (_ *Consumer, err error) {
	if err := q.enter("Consumer"); err != nil {
		return nil, err
	}
	defer q.g.Exit()
	if q.guarded {
		defer q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	e, err := q.attach(layout.RoleConsumer)
	if err != nil {
		return nil, opError("Consumer", err)
	}
	units, err := q.units(e.Index())
	if err != nil {
		e.Detach()
		return nil, opError("Consumer", err)
	}
	c := &Consumer{q: q, e: e, g: gate.NewSingle(), me: uint32(e.Index()), maxMsg: q.maxMsg, units: units,
		ctr: counter.OfEntry(e)}
	q.mu.Lock()
	if q.consumers == nil {
		q.consumers = make(map[*Consumer]struct{})
	}
	q.consumers[c] = struct{}{}
	q.mu.Unlock()
	return c, nil
}

// enter admits a call of operation op, or says why not.
func (c *Consumer) enter(op string) error {
	if c != nil && c.g != nil && c.g.Enter() { // inlined
		return nil
	}
	return refused(op, c == nil || c.g == nil)
}

// Index returns the consumer's registry entry index.
func (c *Consumer) Index() int { return int(c.me) }

// Skipped returns how many slots this consumer skipped because the
// producer that claimed them died (or closed) before committing.
func (c *Consumer) Skipped() uint64 { return c.tombstones }

// Redelivered returns how many of the messages this consumer took had been
// taken before by a consumer that died without releasing them, and were
// requeued: deliveries that may duplicate one the dead consumer acted on.
func (c *Consumer) Redelivered() uint64 { return c.redelivered }

// EndOfStream opts this consumer in to an end of stream: once a producer
// has been attached (in any process) or a message has arrived since this
// call, and then the queue is empty and no producer has been attached for
// grace, Recv and PeekWait return io.EOF. So consumers may start before
// the producers, and the grace lets producers come and go: one that
// detaches while another is about to attach does not end the stream. If a
// producer died without detaching (and its entry has not been taken over
// or reaped), they return ErrPeerDead instead: a crash is not an end. A
// grace of 0 turns the end of stream off again (the default: an MPMC queue
// has no natural end, producers may attach at any time).
func (c *Consumer) EndOfStream(grace time.Duration) {
	if c.enter("EndOfStream") != nil {
		return
	}
	defer c.g.Exit()
	c.eofGrace, c.idleSince = max(grace, 0), time.Time{}
	c.eofFrom, c.eofMsgs, c.eofEnq, c.seen = time.Now(), c.msgs, c.q.enq.Load(), false
}

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
		case d == dFull && layout.SeqOwner(w) == layout.SeqOwnerTomb:
			// A tombstone: pass it. The producer of the next lap claims the
			// slot straight from it.
			if q.deq.CompareAndSwap(pos, pos+1) {
				c.tombstones++
			}
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
				c.tombstones++ // a length-0 tombstone (foreign producers)
			}
		case d == dReading:
			// Another consumer took pos: help its cursor along.
			q.deq.CompareAndSwap(pos, pos+1)
		case d == dEmpty || d == dReading-lap ||
			d == dFull-lap && layout.SeqOwner(w) == layout.SeqOwnerTomb:
			// Nothing committed at pos yet (its slot may still hold the
			// previous lap, being read, or its tombstone).
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
			// Turn the dead claim into a tombstone with one CAS on the word
			// seen, writing nothing into the slot; the next round passes it.
			q.enq.CompareAndSwap(pos, pos+1)
			testHook("skip-W", pos)
			seq.CompareAndSwap(w, layout.SeqWord(pos, layout.SlotFull, layout.SeqOwnerTomb))
			continue
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
		if c.q.producerWake.Waiters.Any() { // inlined: no call while no one waits
			c.wakeIfWaiting(c.q, c.q.producerWake, c.e)
		}
	}
}

// next returns the stashed message, if any, or takes the next one.
func (c *Consumer) next() (uint64, uint32, error) {
	if c.stashed {
		c.stashed = false
		return c.stashPos, c.stashLen, nil
	}
	pos, n, err := c.claim()
	if err == ErrEmpty {
		c.stalls++
		c.ctr.Stalls.Set(c.stalls)
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
	c.ctr.Messages.Set(c.msgs)
	c.ctr.Bytes.Set(c.bytes)
}

// Peek takes the next message and returns its payload without releasing
// it. The slice aliases the shared slot: it stays valid, and no producer
// overwrites it, until Release (or Close). Every peeked message holds its
// slot, so producers can fill at most Slots minus the number held. A
// hostile process could still write into the slot; copy it before
// trusting its contents across a check, and on a segment another process
// could truncate, read it inside Queue.Guard. Peek returns ErrEmpty
// (unwrapped, cheap to test) when no committed message is available.
func (c *Consumer) Peek() (_ []byte, err error) {
	if err := c.enter("Peek"); err != nil {
		return nil, err
	}
	defer c.g.Exit()
	if c.q.guarded {
		defer c.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	m, err := c.peek()
	return m, opError("Peek", err)
}

// PeekWait is Peek that waits, while no message is available, until one is
// committed or ctx ends, like Recv; with EndOfStream it returns io.EOF at
// the end of the stream.
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
		if err != ErrEmpty {
			return m, opError("PeekWait", err)
		}
		if err := c.waitData(ctx); err == io.EOF {
			// No producer for the grace: one more look, then the end.
			if m, err := c.peek(); err != ErrEmpty {
				return m, opError("PeekWait", err)
			}
			return nil, io.EOF
		} else if err != nil {
			return nil, opError("PeekWait", err)
		}
	}
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
	c.lastRequeued = c.wasRequeued
	return c.q.payload(pos, n), nil
}

// Release frees every message returned by Peek since the last Release. The
// release is a store with release semantics: this consumer's reads of the
// messages happen before a producer's reuse of their slots. It fails only
// if another process overwrote a held slot (ErrCorrupt).
func (c *Consumer) Release() (err error) {
	if err := c.enter("Release"); err != nil {
		return err
	}
	defer c.g.Exit()
	if c.q.guarded {
		defer c.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	return opError("Release", c.release())
}

func (c *Consumer) release() error {
	if len(c.held) == 0 {
		c.wakeProducers()
		return nil
	}
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
// TryRecv, Recv, Peek or TryRecvBatch returns it first. Messages peeked and
// not released are released along with it, as Release would.
func (c *Consumer) TryRecv(buf []byte) (_ int, err error) {
	if err := c.enter("TryRecv"); err != nil {
		return 0, err
	}
	defer c.g.Exit()
	if c.q.guarded {
		defer c.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	n, err := c.tryRecv(buf)
	return n, opError("TryRecv", err)
}

func (c *Consumer) tryRecv(buf []byte) (int, error) {
	if c.q.lk != nil {
		return c.lockedTryRecv(context.Background(), false, buf)
	}
	if len(c.held) != 0 {
		if err := c.release(); err != nil {
			return 0, err
		}
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
// valid only during the call; fn must not call Close on this consumer or
// its queue. It returns how many messages fn accepted, and ErrEmpty if
// there were none. If fn returns an error, that message is kept (the next
// call returns it first) and the error is returned.
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
	if c.q.lk != nil {
		var fnErr error
		n, err := c.lockedRecv(context.Background(), false, max, func(m []byte) error {
			fnErr = fn(m)
			return fnErr
		})
		if err != nil && err == fnErr {
			return n, err // the callback's own error, as it returned it
		}
		return n, opError("TryRecvBatch", err)
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
			return n, opError("TryRecvBatch", err)
		}
		if err := fn(c.q.payload(pos, ln)); err != nil {
			c.stash(pos, ln)
			return n, err
		}
		if err := c.free(pos); err != nil {
			return n, opError("TryRecvBatch", err)
		}
		c.delivered(ln)
		n++
	}
	return n, nil
}

// Recv takes the next message, copies it into buf and releases it, waiting
// while the queue is empty until ctx ends or the consumer is closed. While
// it waits it skips slots whose producer died before committing them. With
// EndOfStream it returns io.EOF at the end of the stream.
func (c *Consumer) Recv(ctx context.Context, buf []byte) (_ int, err error) {
	if err := c.enter("Recv"); err != nil {
		return 0, err
	}
	defer c.g.Exit()
	if c.q.guarded {
		defer c.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	if c.q.lk != nil {
		bctx, release := c.g.Bind(ctx)
		defer release()
		n, err := c.lockedTryRecv(bctx, true, buf) // end of stream: see lockedRecv
		return n, opError("Recv", closedOr(c.g.Closed(), err))
	}
	for {
		n, err := c.tryRecv(buf)
		if err != ErrEmpty {
			return n, opError("Recv", err)
		}
		if err := c.waitData(ctx); err == io.EOF {
			// No producer for the grace: one more look, then the end.
			if n, err := c.tryRecv(buf); err != ErrEmpty {
				return n, opError("Recv", err)
			}
			return 0, io.EOF
		} else if err != nil {
			return 0, opError("Recv", err)
		}
	}
}

// waitData waits, after a take found nothing, until the slot word or the
// dequeue cursor that stopped it changes. With EndOfStream it returns
// io.EOF (or ErrPeerDead) once no producer has been attached for the grace;
// the caller then takes once more, since a producer that came and went
// since its last take may have committed messages (its commits happen
// before its detach, which the registry scan saw).
func (c *Consumer) waitData(ctx context.Context) error {
	limit, err := c.endOfStream()
	if err != nil {
		return err
	}
	q := c.q
	pos, w := c.lastPos, c.lastWord
	return q.waitFor(ctx, c.g, q.consumerWake, c.e, w, limit, func() bool {
		return q.deq.Load() != pos || q.seqs[pos&q.mask].Load() != w
	})
}

// endOfStream, for a consumer that opted in and found the queue empty,
// returns io.EOF once no producer has been attached for the grace period,
// ErrPeerDead if one died attached, and otherwise how long the caller may
// park before looking again (0: no limit).
func (c *Consumer) endOfStream() (time.Duration, error) {
	if c.eofGrace <= 0 {
		return 0, nil
	}
	live, dead, latest, err := c.q.producersAttached()
	if err != nil {
		return 0, err
	}
	if live > 0 || latest.After(c.eofFrom) || c.msgs != c.eofMsgs || c.q.enq.Load() != c.eofEnq {
		c.seen = true
	}
	if live > 0 || !c.seen {
		c.idleSince = time.Time{}
		return 0, nil
	}
	now := time.Now()
	if c.idleSince.IsZero() {
		c.idleSince = now
	}
	if idle := now.Sub(c.idleSince); idle < c.eofGrace {
		return c.eofGrace - idle, nil
	}
	if dead > 0 {
		return 0, fmt.Errorf("%w: %d producer(s) died attached", ErrPeerDead, dead)
	}
	// Messages of consumers that died holding them are not past: deliver
	// them again before the end.
	if moved, err := c.rescue(); moved > 0 || err != nil {
		c.idleSince = time.Time{}
		return 0, err
	}
	return 0, io.EOF
}

// producersAttached counts the registry entries of producers held by a live
// process, and those of producers that died attached, and returns the
// latest time a producer attached.
func (q *Queue) producersAttached() (live, dead int, latest time.Time, err error) {
	es, err := q.seg.Entries()
	if err != nil {
		return 0, 0, time.Time{}, err
	}
	for _, e := range es {
		if e.Role != layout.RoleProducer || e.State == layout.EntryFree {
			continue
		}
		if e.AttachedAt.After(latest) {
			latest = e.AttachedAt
		}
		switch {
		case e.Alive:
			live++
		case e.Dead():
			dead++
		}
	}
	return live, dead, latest, nil
}

// Close releases held messages (they count as consumed) and detaches the
// consumer. A message it took and had not handed out (kept after
// ErrShortBuffer or a refusing TryRecvBatch callback) is not lost: it is
// orphaned, for a producer (or a consumer at that position) to requeue.
// Close may be called from any goroutine: a call blocked in Recv or
// PeekWait returns ErrClosed, and Close returns after it.
func (c *Consumer) Close() (err error) {
	if c == nil || c.g == nil {
		return opError("Close", errNilHandle)
	}
	c.g.Close(func() { err = c.teardown() })
	return err
}

// teardown releases and detaches, once no call is in flight, and forgets
// the handle last (see Producer.teardown).
func (c *Consumer) teardown() (err error) {
	defer func() {
		c.q.mu.Lock()
		delete(c.q.consumers, c)
		c.q.mu.Unlock()
	}()
	if c.q.guarded {
		defer c.q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	if c.stashed {
		c.stashed = false
		pos := c.stashPos
		seq := c.q.seqs[pos&c.q.mask]
		if seq.CompareAndSwap(layout.SeqWord(pos, layout.SlotReading, c.me), layout.SeqWord(pos, layout.SlotReading, layout.SeqOwnerOrphan)) {
			c.q.wake(c.q.producerWake)
		}
	}
	c.release()
	return opError("Close", c.e.Detach())
}
