package mpmc

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/sem"
)

// Locked mode (layout.FlagLocked) is the textbook bounded buffer over the
// same segment: a counting semaphore of free slots and one of filled slots,
// a robust mutex for producers guarding the enqueue cursor and one for
// consumers guarding the dequeue cursor, and the same slot array (slot
// sequence words unused). layout/LAYOUT.md §14.11 describes the words and the protocol.
//
// The cursors, read and written under the mutexes, are the truth; the
// semaphore counts are only what the blocking calls park on. A producer
// that takes a free unit re-checks the cursors under its mutex and drops the
// unit if the ring is full after all (likewise a consumer with a filled
// unit and an empty ring). So a unit released twice costs a retry, never a
// lost or duplicated message, and recovery from a dead mutex owner, which
// cannot tell how far the dead owner got, releases both units it might have
// owed.

// ErrLockedMode reports a call that a queue in locked mode does not support:
// Reserve and Peek, which would hand out a slot while its mutex is not held.
var ErrLockedMode = errors.New("mpmc: not supported by a queue in locked mode")

// lockedQueue is the locked-mode state of a handle.
type lockedQueue struct {
	free, filled *sem.Semaphore // on the producers' and consumers' wake lines
	pmu, cmu     *sem.Mutex     // producers' and consumers' mutexes
	punits       *atomic.Uint32 // free units the producers' mutex owner holds
	cunits       *atomic.Uint32 // filled units the consumers' mutex owner holds
}

func newLocked(seg *ring.Segment, h layout.Header, w Wait) (*lockedQueue, error) {
	word := func(line, off uint64) (*atomic.Uint32, error) { return seg.Uint32(line + off) }
	var ws [2][6]*atomic.Uint32
	for i, line := range []uint64{h.ProducerWake, h.ConsumerWake} {
		for j, off := range []uint64{layout.WakeSemCount, layout.WakeSemWaiters,
			layout.WakeMutexState, layout.WakeMutexOwner, layout.WakeMutexWaiters, layout.WakeMutexUnits} {
			p, err := word(line, off)
			if err != nil {
				return nil, err
			}
			ws[i][j] = p
		}
	}
	l := &lockedQueue{punits: ws[0][5], cunits: ws[1][5]}
	var err error
	if l.free, err = sem.New(ws[0][0], ws[0][1], uint32(h.Capacity), w.Backend); err != nil {
		return nil, err
	}
	if l.filled, err = sem.New(ws[1][0], ws[1][1], uint32(h.Capacity), w.Backend); err != nil {
		return nil, err
	}
	mutex := func(k int, ws [6]*atomic.Uint32) (*sem.Mutex, error) {
		return sem.NewMutex(sem.MutexWords{State: ws[2], Owner: ws[3], Waiters: ws[4]},
			sem.MutexConfig{FD: seg.Fd(), Byte: layout.MutexLockByte(h.RegistryCount, k), Backend: w.Backend})
	}
	if l.pmu, err = mutex(layout.MutexProducers, ws[0]); err != nil {
		return nil, err
	}
	if l.cmu, err = mutex(layout.MutexConsumers, ws[1]); err != nil {
		return nil, err
	}
	return l, nil
}

// release adds n units to s, a semaphore of at most slots units, saturating
// at slots: a count that holds units not owed (see lock) may be full while
// units are owed, and a full count already lets every owed taker through.
func release(s *sem.Semaphore, n int, slots uint64) error {
	for n > 0 {
		err := s.Release(n)
		if err == nil || !errors.Is(err, sem.ErrOverflow) {
			return err
		}
		room := int64(slots) - int64(s.Value())
		if room <= 0 {
			return nil
		}
		n = int(min(int64(n), room))
	}
	return nil
}

// lock takes mutex m of a side whose operations take units of own before
// locking and give units of other before unlocking, and records in the
// shared word units how many units of own the caller holds. If the previous
// owner died holding m, it had taken the units it recorded (or one, if it
// died before recording them) and may or may not have advanced the cursor
// and given the units of other: the cursor store is the last write to the
// ring it makes, so the ring is consistent either way (slots it was writing
// and had not published are overwritten later; messages it was reading and
// had not released are read again by the next consumer). lock releases
// that many units of each semaphore to cover both cases: those not owed
// are dropped later by whoever takes them and finds the cursors disagree.
func lock(ctx context.Context, m *sem.Mutex, units *atomic.Uint32, held int, own, other *sem.Semaphore, slots uint64) error {
	err := m.Lock(ctx)
	if err != nil && !errors.Is(err, sem.ErrOwnerDead) {
		return err
	}
	if err != nil {
		if err := repairDead(units, own, other, slots); err != nil {
			m.Unlock()
			return err
		}
	}
	units.Store(uint32(held))
	return nil
}

// repairDead releases, for a mutex owner that died, the units it recorded
// in units (at least one) of both semaphores. See lock.
func repairDead(units *atomic.Uint32, own, other *sem.Semaphore, slots uint64) error {
	dead := max(1, int(min(uint64(units.Load()), slots)))
	units.Store(0)
	if err := release(own, dead, slots); err != nil {
		return err
	}
	return release(other, dead, slots)
}

// lockedRecheck bounds each park on a semaphore while the other side's
// mutex is held: its owner may die holding it, owing this side the units it
// waits for, and a dead owner wakes no one. While the mutex is free when the
// wait starts, only an owner that takes it later and dies can owe anything,
// and lockedIdleRecheck bounds that rare case, so an idle waiter wakes once
// a second.
const (
	lockedRecheck     = 20 * time.Millisecond
	lockedIdleRecheck = time.Second
)

// acquire takes a unit of s (free for producers, filled for consumers),
// waiting until ctx ends. Between parks it looks whether the owner of m,
// the other side's mutex, died holding it, and if so repairs as lock would
// (own and other are from m's side's point of view).
func acquire(ctx context.Context, s *sem.Semaphore, m *sem.Mutex, units *atomic.Uint32, own, other *sem.Semaphore, slots uint64) error {
	for {
		bound := lockedIdleRecheck
		if m.Held() {
			bound = lockedRecheck
		}
		actx, cancel := context.WithTimeout(ctx, bound)
		err := s.Acquire(actx)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		ok, err := m.TryLock()
		if !ok {
			if err != nil {
				return err
			}
			continue // held by a live owner, or by this handle
		}
		if err != nil {
			err = repairDead(units, own, other, slots)
		}
		if uerr := m.Unlock(); err == nil {
			err = uerr
		}
		if err != nil {
			return err
		}
	}
}

// unlock clears the units word and releases m.
func unlock(m *sem.Mutex, units *atomic.Uint32) error {
	units.Store(0)
	return m.Unlock()
}

// lockedUsed validates the cursors, read under a mutex, and returns how
// many slots hold messages.
func (q *Queue) lockedUsed(tail, head uint64) (uint64, error) {
	if tail-head > q.hdr.Capacity {
		return 0, fmt.Errorf("%w: locked-mode cursors tail=%d head=%d for %d slots", ErrCorrupt, tail, head, q.hdr.Capacity)
	}
	return tail - head, nil
}

// lockedSend sends msgs (already checked for size) and returns how many it
// sent. Unless wait, it does not wait: it takes the free units there are
// and returns ErrFull (unwrapped) if they are fewer than len(msgs). With wait
// it sends one message, waiting for a free unit until ctx ends.
func (p *Producer) lockedSend(ctx context.Context, wait bool, msgs [][]byte) (int, error) {
	q, l := p.q, p.q.lk
	for {
		units := 0
		if !wait {
			for units < len(msgs) && l.free.TryAcquire() {
				units++
			}
			if units == 0 {
				return 0, ErrFull
			}
		} else {
			if err := acquire(ctx, l.free, l.cmu, l.cunits, l.filled, l.free, q.hdr.Capacity); err != nil {
				return 0, fmt.Errorf("mpmc: send: %w", err)
			}
			units = 1
		}
		if err := lock(ctx, l.pmu, l.punits, units, l.free, l.filled, q.hdr.Capacity); err != nil {
			release(l.free, units, q.hdr.Capacity)
			return 0, err
		}
		n, err := p.lockedWrite(msgs[:units])
		if err == nil && n > 0 {
			err = release(l.filled, n, q.hdr.Capacity) // inside the mutex: see lock
		}
		if uerr := unlock(l.pmu, l.punits); err == nil && uerr != nil {
			err = uerr
		}
		// Units beyond the room found were not owed (see lock): drop them.
		if n > 0 {
			p.msgs += uint64(n)
			for _, m := range msgs[:n] {
				p.bytes += uint64(len(m))
			}
			p.e.Messages.Store(p.msgs)
			p.e.Bytes.Store(p.bytes)
		}
		if err != nil {
			return n, err
		}
		if n == len(msgs) {
			return n, nil
		}
		if !wait {
			p.stalls++
			p.e.Stalls.Store(p.stalls)
			return n, ErrFull
		}
		if n > 0 {
			return n, nil
		}
		// A unit not owed: the ring is full after all; wait again.
	}
}

// lockedWrite writes as many of msgs as there is room for at the enqueue
// cursor and then advances it. The caller holds the producers' mutex.
func (p *Producer) lockedWrite(msgs [][]byte) (int, error) {
	q := p.q
	tail, head := q.enq.Load(), q.deq.Load()
	used, err := q.lockedUsed(tail, head)
	if err != nil {
		return 0, err
	}
	n := min(uint64(len(msgs)), q.hdr.Capacity-used)
	for k := uint64(0); k < n; k++ {
		pos := tail + k
		off := q.slot(pos)
		m := msgs[k]
		le32put(q.data[off+layout.SlotLength:], uint32(len(m)))
		le32put(q.data[off+layout.SlotProducer:], p.me)
		copy(q.payload(pos, uint32(len(m))), m)
	}
	if n > 0 {
		q.enq.Store(tail + n) // publishes the slots: the last write to the ring
	}
	return int(n), nil
}

// lockedRecv takes up to max messages, calling fn with each under the
// consumers' mutex; a message fn refuses stays at the head of the queue,
// for the next consumer. Unless wait, it does not wait and returns ErrEmpty
// (unwrapped) if there is no message; with wait it takes one message,
// waiting for a filled unit until ctx ends.
func (c *Consumer) lockedRecv(ctx context.Context, wait bool, max int, fn func([]byte) error) (int, error) {
	q, l := c.q, c.q.lk
	for {
		units := 0
		if !wait {
			for units < max && l.filled.TryAcquire() {
				units++
			}
			if units == 0 {
				c.stalls++
				c.e.Stalls.Store(c.stalls)
				return 0, ErrEmpty
			}
		} else {
			if err := acquire(ctx, l.filled, l.pmu, l.punits, l.free, l.filled, q.hdr.Capacity); err != nil {
				return 0, fmt.Errorf("mpmc: recv: %w", err)
			}
			units = 1
		}
		if err := lock(ctx, l.cmu, l.cunits, units, l.filled, l.free, q.hdr.Capacity); err != nil {
			release(l.filled, units, q.hdr.Capacity)
			return 0, err
		}
		n, avail, err := c.lockedRead(units, fn)
		if n > 0 {
			if rerr := release(l.free, n, q.hdr.Capacity); err == nil { // inside the mutex: see lock
				err = rerr
			}
		}
		if back := min(units, avail) - n; back > 0 {
			// Messages left at the head (fn refused one): their units go back.
			if rerr := release(l.filled, back, q.hdr.Capacity); err == nil {
				err = rerr
			}
		}
		if uerr := unlock(l.cmu, l.cunits); err == nil && uerr != nil {
			err = uerr
		}
		if n > 0 {
			c.publishCounters()
		}
		if n > 0 || err != nil {
			return n, err
		}
		// A unit not owed: the ring is empty after all.
		if !wait {
			c.stalls++
			c.e.Stalls.Store(c.stalls)
			return 0, ErrEmpty
		}
	}
}

// lockedRead reads up to units messages at the dequeue cursor, handing each
// to fn, and advances the cursor past those fn accepted. It returns how
// many fn accepted and how many messages there were (up to units). The
// caller holds the consumers' mutex.
func (c *Consumer) lockedRead(units int, fn func([]byte) error) (n, avail int, err error) {
	q := c.q
	head, tail := q.deq.Load(), q.enq.Load()
	used, err := q.lockedUsed(tail, head)
	if err != nil {
		return 0, 0, err
	}
	avail = int(min(uint64(units), used))
	defer func() {
		if n > 0 {
			q.deq.Store(head + uint64(n)) // frees the slots: the last read of the ring
		}
	}()
	for n < avail {
		pos := head + uint64(n)
		ln := le32(q.data[q.slot(pos)+layout.SlotLength:])
		if ln == 0 || ln > c.maxMsg {
			// Skip the garbage, so that the queue moves on.
			n++
			return n, avail, fmt.Errorf("%w: slot %d at position %d holds a %d-byte message (limits 1 and %d)",
				ErrCorrupt, pos&q.mask, pos, ln, c.maxMsg)
		}
		if err := fn(q.payload(pos, ln)); err != nil {
			return n, avail, err
		}
		c.delivered(ln)
		n++
	}
	return n, avail, nil
}

// lockedTryRecv is TryRecv (!wait) or Recv in locked mode.
func (c *Consumer) lockedTryRecv(ctx context.Context, wait bool, buf []byte) (int, error) {
	if c.closed {
		return 0, ErrClosed
	}
	got := 0
	_, err := c.lockedRecv(ctx, wait, 1, func(m []byte) error {
		if len(m) > len(buf) {
			return fmt.Errorf("%w: message of %d bytes, buffer of %d", ErrShortBuffer, len(m), len(buf))
		}
		got = copy(buf, m)
		return nil
	})
	return got, err
}

// lockedBatch is TrySend and TrySendBatch (!wait) or Send (one message)
// in locked mode. Messages are sent up to the first of invalid size, whose
// ErrMessageSize it then returns.
func (p *Producer) lockedBatch(ctx context.Context, wait bool, msgs [][]byte) (int, error) {
	if p.closed {
		return 0, ErrClosed
	}
	k := len(msgs)
	var serr error
	for i, m := range msgs {
		if len(m) == 0 || len(m) > int(p.maxMsg) {
			k, serr = i, fmt.Errorf("%w: %d bytes (limits 1 and %d)", ErrMessageSize, len(m), p.maxMsg)
			break
		}
	}
	if k == 0 {
		return 0, serr
	}
	n, err := p.lockedSend(ctx, wait, msgs[:k])
	if err == nil {
		err = serr
	}
	return n, err
}
