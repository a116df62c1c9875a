package mpmc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/shmq/shmq/internal/gate"
	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/notify"
	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/sem"
)

// Locked mode (layout.FlagLocked) is the textbook bounded buffer over the
// same segment: a counting semaphore of free slots and one of filled slots,
// a robust mutex for producers guarding the enqueue cursor and one for
// consumers guarding the dequeue cursor, and the same slot array (slot
// sequence words unused). layout/LAYOUT.md §14.11 describes the words and
// the protocol.
//
// The cursors, read and written under the mutexes, are the truth; the
// semaphore counts are only what the blocking calls park on. A producer
// that takes a free unit re-checks the cursors under its mutex and drops the
// unit if the ring is full after all (likewise a consumer with a filled
// unit and an empty ring). So a unit released twice costs a retry, never a
// lost or duplicated message.
//
// Every unit a process may hold is recorded, before it takes it, in its
// own registry entry (layout.EntryUnits), and cleared once the units are
// accounted for (after its cursor store and its release of the other
// side's units). A process that dies holding units, at any point (waiting
// for a mutex, inside it), leaves that record: whoever finds the entry dead
// (an attach, a waiter between parks, the next owner of a mutex it held)
// releases that many units of both semaphores, since it cannot tell
// whether the dead process got as far as its cursor store, and then, if it
// can take both mutexes and no live process holds units, sets both counts
// to exactly what the cursors imply.

// ErrLockedMode reports a call that a queue in locked mode does not support:
// Reserve and Peek, which would hand out a slot while its mutex is not held.
var ErrLockedMode = errors.New("mpmc: not supported by a queue in locked mode")

// lockedQueue is the locked-mode state of a handle.
type lockedQueue struct {
	free, filled *sem.Semaphore // on the producers' and consumers' wake lines
	pmu, cmu     *sem.Mutex     // producers' and consumers' mutexes
	sets         []notify.WaiterSet
	lastTry      atomic.Int64 // UnixNano of this handle's last tryRecover
}

func newLocked(seg *ring.Segment, h layout.Header, w Wait) (*lockedQueue, error) {
	word := func(line, off uint64) (*atomic.Uint32, error) { return seg.Uint32(line + off) }
	set := func(k int) (notify.WaiterSet, error) {
		words, err := seg.WaiterSet(k)
		return notify.NewWaiterSet(words), err
	}
	l := &lockedQueue{}
	for _, k := range []int{layout.WaiterSetFree, layout.WaiterSetFilled, layout.WaiterSetMutexP, layout.WaiterSetMutexC} {
		s, err := set(k)
		if err != nil {
			return nil, err
		}
		l.sets = append(l.sets, s)
	}
	for i, line := range []uint64{h.ProducerWake, h.ConsumerWake} {
		count, err := word(line, layout.WakeSemCount)
		if err != nil {
			return nil, err
		}
		s, err := sem.New(count, l.sets[i], uint32(h.Capacity), w.Backend)
		if err != nil {
			return nil, err
		}
		state, err := word(line, layout.WakeMutexState)
		if err != nil {
			return nil, err
		}
		owner, err := word(line, layout.WakeMutexOwner)
		if err != nil {
			return nil, err
		}
		m, err := sem.NewMutex(sem.MutexWords{State: state, Owner: owner, Waiters: l.sets[2+i]},
			sem.MutexConfig{Lock: seg.ByteLock(layout.MutexLockByte(h.RegistryCount, i)), Backend: w.Backend})
		if err != nil {
			return nil, err
		}
		if i == 0 {
			l.free, l.pmu = s, m
		} else {
			l.filled, l.cmu = s, m
		}
	}
	return l, nil
}

// release adds n units to s, a semaphore of at most slots units, saturating
// at slots: a count that holds units not owed may be full while units are
// owed, and a full count already lets every owed taker through.
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

// units returns the EntryUnits word of registry entry i.
func (q *Queue) units(i int) (*atomic.Uint32, error) {
	return q.seg.Uint32(q.hdr.Entry(i) + layout.EntryUnits)
}

// releaseBoth releases n recorded units (at most Slots) to both
// semaphores: the recoverer cannot tell which side they are owed to.
func (q *Queue) releaseBoth(n uint32) error {
	k := int(min(uint64(n), q.hdr.Capacity))
	if err := release(q.lk.free, k, q.hdr.Capacity); err != nil {
		return err
	}
	return release(q.lk.filled, k, q.hdr.Capacity)
}

// recoverUnits looks for registry entries whose holder died (or detached)
// with units recorded, releases that many units of both semaphores for
// each, and then reconciles the counts with the cursors if it can. It is
// cheap when nothing is recorded: a load per entry. Any process may call it
// at any time; own is the EntryUnits word of the caller's entry.
//
// A dead entry's units move into own (under the dead entry's lock, added
// to own before they leave the dead entry) for as long as they are being
// released: a recoverer killed in between leaves them recorded in its own
// entry, for the next recoverer, instead of losing them.
func (q *Queue) recoverUnits(own *atomic.Uint32) error {
	found := false
	for i := 0; i < int(q.hdr.RegistryCount); i++ {
		u, err := q.units(i)
		if err != nil {
			return err
		}
		if u == own || u.Load() == 0 {
			continue
		}
		var n uint32
		ok, err := q.seg.WithDeadEntry(i, func() {
			if n = u.Load(); n != 0 {
				own.Add(n)
				u.Store(0)
			}
		})
		if err != nil {
			return err
		}
		if !ok || n == 0 {
			continue // held by a live process, or recovered by another
		}
		found = true
		testHook("locked-recover", uint64(i))
		err = q.releaseBoth(n)
		own.Add(-n)
		if err != nil {
			return err
		}
	}
	if found {
		return q.reconcile()
	}
	return nil
}

// recoverIdle is recoverUnits for a caller that records want units and
// holds none (a blocking call between parks, a try that found no unit):
// its own record is cleared meanwhile, so that its reconcile is not
// stopped by it, and restored before it takes units again.
func (q *Queue) recoverIdle(own *atomic.Uint32, want int) error {
	own.Store(0)
	err := q.recoverUnits(own)
	own.Store(uint32(want))
	return err
}

// recoverOwnUnits is recoverUnits for entry i, just taken by this process:
// what its dead predecessor recorded (released before the record is
// cleared, so that a death in between loses nothing), then the other
// entries, and then, whether or not anything was recovered, it reconciles
// the counts with the cursors if no unit is in flight: an attach at a
// quiescent point finds the counts exact. It also clears the waiter
// registrations of dead processes, so that an attach after a crash leaves
// only live waiters registered even if nobody has operated since.
func (q *Queue) recoverOwnUnits(i int) error {
	q.reapWaiters()
	u, err := q.units(i)
	if err != nil {
		return err
	}
	if n := u.Load(); n != 0 {
		testHook("locked-recover-own", uint64(i))
		if err := q.releaseBoth(n); err != nil {
			return err
		}
		u.Store(0)
	}
	if err := q.recoverUnits(u); err != nil {
		return err
	}
	return q.reconcile()
}

// tryRecover is recoverIdle for a try (TrySend, TryRecv) that found no
// unit while the cursors say there was one to take: units of a dead
// process, which only blocking calls and attaches would otherwise recover.
// It runs at most once per lockedRecheck per handle, since a live process
// taking a unit also makes the count and the cursors disagree for a moment.
func (q *Queue) tryRecover(own *atomic.Uint32, want int) (bool, error) {
	now := time.Now().UnixNano()
	last := q.lk.lastTry.Load()
	if now-last < int64(lockedRecheck) || !q.lk.lastTry.CompareAndSwap(last, now) {
		return false, nil
	}
	return true, q.recoverIdle(own, want)
}

// reconcile sets the semaphore counts to what the cursors imply, if it can
// take both mutexes at once and no process has units recorded: only then is
// no unit in flight. Units released by a recovery that turned out not to
// be owed are dropped here rather than left to whoever takes them.
func (q *Queue) reconcile() error {
	l := q.lk
	ok, err := l.pmu.TryLock()
	if !ok {
		return err
	}
	defer l.pmu.Unlock()
	if ok, err = l.cmu.TryLock(); !ok {
		return err
	}
	defer l.cmu.Unlock()
	free, filled := l.free.Value(), l.filled.Value()
	for i := 0; i < int(q.hdr.RegistryCount); i++ {
		u, err := q.units(i)
		if err != nil {
			return err
		}
		if u.Load() != 0 {
			return nil // a process holds or is taking units
		}
	}
	used, err := q.lockedUsed(q.enq.Load(), q.deq.Load())
	if err != nil {
		return err
	}
	// A unit taken after the scan was recorded before it was taken, and
	// changed the count: the compare-and-swaps then fail and leave it be.
	l.free.Reset(free, uint32(q.hdr.Capacity-used))
	l.filled.Reset(filled, uint32(used))
	return nil
}

// lockedRecheck bounds each park on a semaphore while the other side's
// mutex is held: its owner may die holding it, owing this side the units it
// waits for, and a dead owner wakes no one. While the mutex is free when the
// wait starts, only a process that takes units later and dies can owe
// anything, and lockedIdleRecheck bounds that rare case, so an idle waiter
// wakes once a second.
const (
	lockedRecheck     = 20 * time.Millisecond
	lockedIdleRecheck = time.Second
)

// acquire takes a unit of s (free for producers, filled for consumers),
// waiting until ctx ends, as registry entry me, whose record says 1 unit.
// Between parks it recovers the units of dead processes (see recoverIdle),
// and calls idle, which may
// end the wait with an error (io.EOF for a consumer's end of stream).
// other is the other side's mutex.
func (q *Queue) acquire(ctx context.Context, s *sem.Semaphore, other *sem.Mutex, me int, idle func() (time.Duration, error)) error {
	for {
		bound := lockedIdleRecheck
		if other.Held() {
			bound = lockedRecheck
		}
		if idle != nil {
			limit, err := idle()
			if err != nil {
				return err
			}
			if limit > 0 {
				bound = min(bound, limit)
			}
		}
		actx, cancel := context.WithTimeout(ctx, bound)
		err := s.Acquire(actx, me)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		own, err := q.units(me)
		if err != nil {
			return err
		}
		if err := q.recoverIdle(own, 1); err != nil {
			return err
		}
	}
}

// lock takes mutex m as registry entry me. If the previous owner died
// holding it, its units are recovered (it is one of the dead entries).
func (q *Queue) lock(ctx context.Context, m *sem.Mutex, me int) error {
	err := m.Lock(ctx, me)
	if err != nil && !errors.Is(err, sem.ErrOwnerDead) {
		return err
	}
	if err != nil {
		return q.afterOwnerDeath(m, me)
	}
	return nil
}

// tryLockWait bounds how long a non-blocking call (TrySend, TryRecv, ...)
// waits for a mutex that another process holds: critical sections are a
// few microseconds, so a longer wait means the holder is descheduled or
// stopped, and the call reports that it would block.
const tryLockWait = time.Millisecond

// errWouldBlock: a non-blocking call found the mutex held for longer than
// tryLockWait.
var errWouldBlock = errors.New("mpmc: the mutex is held")

// lockFor takes mutex m for a blocking call (wait: as long as ctx allows)
// or a non-blocking one (at most tryLockWait, then errWouldBlock). Either
// way the wait ends when the handle's gate closes.
func (q *Queue) lockFor(ctx context.Context, wait bool, g *gate.Gate, m *sem.Mutex, me int) error {
	if !wait {
		if ok, err := m.TryLock(); ok {
			if err != nil && errors.Is(err, sem.ErrOwnerDead) {
				return q.afterOwnerDeath(m, me)
			}
			return err
		} else if err != nil {
			return err
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, tryLockWait)
		defer cancel()
	}
	bctx, release := g.Bind(ctx)
	defer release()
	err := q.lock(bctx, m, me)
	switch {
	case err == nil:
		return nil
	case g.Closed():
		return ErrClosed
	case !wait && errors.Is(err, context.DeadlineExceeded):
		return errWouldBlock
	}
	return err
}

// afterOwnerDeath recovers what a mutex owner that died left (its units),
// for registry entry me, which now holds m.
func (q *Queue) afterOwnerDeath(m *sem.Mutex, me int) error {
	own, err := q.units(me)
	if err == nil {
		err = q.recoverUnits(own)
	}
	if err != nil {
		m.Unlock()
		return err
	}
	return nil
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
		// Record the units before taking them: a death from here on leaves
		// a record that covers what this process may hold.
		want := len(msgs)
		if wait {
			want = 1
		}
		p.units.Store(uint32(want))
		units := 0
		if !wait {
			for units < want && l.free.TryAcquire() {
				units++
			}
			if units == 0 && q.enq.Load()-q.deq.Load() < q.hdr.Capacity {
				if ok, err := q.tryRecover(p.units, want); err != nil {
					p.units.Store(0)
					return 0, err
				} else if ok {
					for units < want && l.free.TryAcquire() {
						units++
					}
				}
			}
			if units == 0 {
				p.units.Store(0)
				return 0, ErrFull
			}
		} else {
			if err := q.acquire(ctx, l.free, l.cmu, int(p.me), nil); err != nil {
				p.units.Store(0)
				return 0, fmt.Errorf("mpmc: send: %w", err)
			}
			units = 1
		}
		if err := q.lockFor(ctx, wait, p.g, l.pmu, int(p.me)); err != nil {
			release(l.free, units, q.hdr.Capacity)
			p.units.Store(0)
			if err == errWouldBlock {
				return 0, ErrFull
			}
			return 0, err
		}
		n, err := p.lockedWrite(msgs[:units])
		if err == nil && n > 0 {
			err = release(l.filled, n, q.hdr.Capacity)
		}
		// Units beyond the room found were not owed: dropped.
		p.units.Store(0)
		if uerr := l.pmu.Unlock(); err == nil && uerr != nil {
			err = uerr
		}
		p.sweep()
		if n > 0 {
			p.msgs += uint64(n)
			for _, m := range msgs[:n] {
				p.bytes += uint64(len(m))
			}
			p.ctr.Messages.Set(p.msgs)
			p.ctr.Bytes.Set(p.bytes)
		}
		if err != nil {
			return n, err
		}
		if n == len(msgs) {
			return n, nil
		}
		if !wait {
			p.stalls++
			p.ctr.Stalls.Set(p.stalls)
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
// waiting for a filled unit until ctx ends, or returns io.EOF at the end of
// the stream (EndOfStream).
func (c *Consumer) lockedRecv(ctx context.Context, wait bool, max int, fn func([]byte) error) (int, error) {
	q, l := c.q, c.q.lk
	for {
		want := max
		if wait {
			want = 1
		}
		c.units.Store(uint32(want))
		units := 0
		if !wait {
			for units < want && l.filled.TryAcquire() {
				units++
			}
			if units == 0 && q.enq.Load() != q.deq.Load() {
				if ok, err := q.tryRecover(c.units, want); err != nil {
					c.units.Store(0)
					return 0, err
				} else if ok {
					for units < want && l.filled.TryAcquire() {
						units++
					}
				}
			}
			if units == 0 {
				c.units.Store(0)
				c.stalls++
				c.ctr.Stalls.Set(c.stalls)
				return 0, ErrEmpty
			}
		} else {
			var idle func() (time.Duration, error)
			if c.eofGrace > 0 {
				idle = c.lockedEndOfStream
			}
			if err := q.acquire(ctx, l.filled, l.pmu, int(c.me), idle); err != nil {
				c.units.Store(0)
				if err == io.EOF {
					return 0, err
				}
				return 0, fmt.Errorf("mpmc: recv: %w", err)
			}
			units = 1
		}
		if err := q.lockFor(ctx, wait, c.g, l.cmu, int(c.me)); err != nil {
			release(l.filled, units, q.hdr.Capacity)
			c.units.Store(0)
			if err == errWouldBlock {
				return 0, ErrEmpty
			}
			return 0, err
		}
		n, avail, panicked, err := c.lockedRead(units, fn)
		if n > 0 {
			if rerr := release(l.free, n, q.hdr.Capacity); err == nil {
				err = rerr
			}
		}
		if back := min(units, avail) - n; back > 0 {
			// Messages left at the head (fn refused one): their units go back.
			if rerr := release(l.filled, back, q.hdr.Capacity); err == nil {
				err = rerr
			}
		}
		c.units.Store(0)
		if uerr := l.cmu.Unlock(); err == nil && uerr != nil {
			err = uerr
		}
		c.sweep()
		if n > 0 {
			c.publishCounters()
		}
		if panicked != nil {
			panic(panicked)
		}
		if n > 0 || err != nil {
			return n, err
		}
		// A unit not owed: the ring is empty after all.
		if !wait {
			c.stalls++
			c.ctr.Stalls.Set(c.stalls)
			return 0, ErrEmpty
		}
	}
}

// lockedEndOfStream is endOfStream for a consumer blocked on the filled
// semaphore: io.EOF only if the queue is also empty, which the cursors say
// under no mutex here (a message committed after this look releases a
// filled unit, which the caller's next acquire takes first).
func (c *Consumer) lockedEndOfStream() (time.Duration, error) {
	limit, err := c.endOfStream()
	if err == io.EOF && c.q.enq.Load() != c.q.deq.Load() {
		c.idleSince = time.Time{}
		return 0, nil
	}
	return limit, err
}

// lockedRead reads up to units messages at the dequeue cursor, handing each
// to fn, and advances the cursor past those fn accepted. It returns how
// many fn accepted and how many messages there were (up to units), and a
// panic it caught (of fn, or a fault), for the caller to raise again once
// the read is accounted for. The caller holds the consumers' mutex.
func (c *Consumer) lockedRead(units int, fn func([]byte) error) (n, avail int, panicked any, err error) {
	q := c.q
	head, tail := q.deq.Load(), q.enq.Load()
	used, err := q.lockedUsed(tail, head)
	if err != nil {
		return 0, 0, nil, err
	}
	avail = int(min(uint64(units), used))
	defer func() {
		// A panic (fn's, or a fault in a truncated mapping) must not leave
		// the mutex locked and the units unaccounted for: the caller
		// finishes the call, then panics again.
		panicked = recover()
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
			return n, avail, nil, fmt.Errorf("%w: slot %d at position %d holds a %d-byte message (limits 1 and %d)",
				ErrCorrupt, pos&q.mask, pos, ln, c.maxMsg)
		}
		if err := fn(q.payload(pos, ln)); err != nil {
			return n, avail, nil, err
		}
		c.delivered(ln)
		n++
	}
	return n, avail, nil, nil
}

// lockedTryRecv is TryRecv (!wait) or Recv in locked mode.
func (c *Consumer) lockedTryRecv(ctx context.Context, wait bool, buf []byte) (int, error) {
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

// sweepLocked clears, once per sweepPeriod, the registrations of dead waiters in
// locked mode's waiter sets, which would otherwise make every release and
// unlock a wake system call.
func (w *waker) sweepLocked(q *Queue) {
	if w.SweepDue(sweepPeriod) {
		q.reapWaiters()
	}
}

// reapWaiters clears the registrations of dead processes in locked mode's
// waiter sets: a load per set word, and a lock attempt per registrant.
func (q *Queue) reapWaiters() {
	for _, s := range q.lk.sets {
		s.Members(func(i int) { q.seg.ReapWaiter(i) })
	}
}

// sweep is sweepLocked for a producer whose last operation found waiters.
func (p *Producer) sweep() {
	if p.q.lk.anyWaiters() {
		p.sweepLocked(p.q)
	}
}

// sweep is sweepLocked for a consumer whose last operation found waiters.
func (c *Consumer) sweep() {
	if c.q.lk.anyWaiters() {
		c.sweepLocked(c.q)
	}
}

func (l *lockedQueue) anyWaiters() bool {
	for _, s := range l.sets {
		if s.Any() {
			return true
		}
	}
	return false
}
