// Package mpmc is a bounded multi-producer multi-consumer queue of messages
// in shared memory, for any number of producer and consumer processes (or
// goroutines, each with its own Producer or Consumer).
//
// The ring is Dmitry Vyukov's bounded MPMC queue: a power-of-two array of
// fixed-size slots, an enqueue cursor on the producer line and a dequeue
// cursor on the consumer line, and a sequence word per slot that tells
// which lap of the ring the slot is on and whether it is free, being
// written, full or being read. The sequence word also names the registry
// entry of the process that holds the slot, and a slot is claimed by a
// compare-and-swap of that word (before the cursor moves), so a slot held
// by a process that died is always traceable to it: consumers skip a slot
// that a dead producer claimed, and producers requeue the message in a slot
// that a dead consumer had taken, instead of the queue stalling behind it
// forever. layout/LAYOUT.md §14 describes the protocol.
//
// Guarantees, when no process dies: every committed message is delivered
// exactly once, to one consumer; a consumer receives the messages of any one
// producer in the order that producer committed them. When a producer dies,
// the messages it committed are delivered and the one it was writing is
// dropped. When a consumer dies, the messages it had taken and not released
// are requeued by the producer that next reaches their slot (a lap of the
// ring later) and delivered again, to some consumer: delivery across a
// consumer crash is at-least-once, and a redelivered message arrives after
// messages that overtook it, so per-producer order does not hold for it.
//
// Blocked calls spin briefly and then park on a futex (package notify,
// tuned by Config.Wait and Options.Wait); a publisher makes a wake system
// call only when a waiter is registered. A parked waiter stopped by a slot
// that another process claimed returns every 5 ms to look for a dead
// claimant, since a dead process wakes no one; one waiting on a plainly
// empty or full queue returns once a second.
//
// Lifecycle: Close of a Queue, Producer or Consumer may be called from any
// goroutine, also while another goroutine is blocked in a call on it: that
// call returns an error matching ErrClosed (and net.ErrClosed), and Close
// returns once no call is touching the mapping any more. A consumer may opt
// in to an end of stream (Consumer.EndOfStream): io.EOF once no producer
// has been attached for a grace period and the queue is empty.
//
// Locked mode (Config.Locked, recorded in the segment as layout.FlagLocked
// and followed by every opener) replaces the lock-free ring with the
// textbook bounded buffer over the same slots: a semaphore of free slots
// and one of filled slots, and a robust mutex (package sem) for producers
// guarding the enqueue cursor and one for consumers guarding the dequeue
// cursor. Every operation then makes system calls (the mutexes are OFD
// locks), but the protocol relies only on semaphores and file locks. A
// process that dies holding a mutex wedges no one: the next locker takes
// over and repairs the counts; the messages a dead producer had not
// published are lost, and those a dead consumer had not taken are
// delivered again. Reserve and Peek are not supported (ErrLockedMode).
// layout/LAYOUT.md §14.11 describes the words and the protocol.
//
// Everything read from the segment is validated: a peer that writes garbage
// into cursors or slots makes calls fail with an error wrapping ErrCorrupt;
// it cannot make this process panic, access memory outside the ring or
// loop forever. A segment with a name (ring.Shm, ring.File) can be truncated
// under the mapping by any process that can open it; calls on such a queue
// then fail with an error wrapping ring.ErrTruncated instead of the process
// dying of SIGBUS (see ring.Segment.CatchFault; memfd segments are sealed
// and need no guard).
package mpmc

import (
	"context"
	"fmt"
	"io/fs"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/shmq/shmq/internal/gate"
	"github.com/shmq/shmq/internal/openorcreate"
	"github.com/shmq/shmq/internal/wakeline"
	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/notify"
	"github.com/shmq/shmq/ring"
)

// Defaults for the zero Config.
const (
	DefaultSlots    = 1024
	DefaultSlotSize = 256 // holds 240-byte messages
	DefaultRegistry = 64
)

// maxAttempts bounds every retry loop over shared state. Each failed
// attempt means another process made progress (or a peer is writing
// garbage), so an honest queue never gets near it.
const maxAttempts = 1 << 20

// Config describes a new queue.
type Config struct {
	// Slots is the number of slots, a power of two (1 is allowed); 0 means
	// DefaultSlots.
	Slots uint64
	// SlotSize is the size of a slot in bytes, a multiple of 64 including a
	// 16-byte header. 0 means the smallest that holds MaxMessage, or
	// DefaultSlotSize if MaxMessage is 0 too.
	SlotSize uint32
	// MaxMessage is the largest payload accepted, at most SlotSize-16; 0
	// means SlotSize-16.
	MaxMessage uint32
	// Registry is the number of registry entries: the most producers and
	// consumers that can be attached at once. 0 means DefaultRegistry.
	Registry uint32
	// Mode is the new segment's permission; 0 means 0600.
	Mode fs.FileMode
	// StartPosition is the initial value of both cursors. Only tests that
	// exercise wrap-around of the 64-bit positions need it.
	StartPosition uint64
	// Wait tunes the blocking calls of this handle.
	Wait Wait
	// Locked makes the queue run in locked mode: a bounded buffer guarded
	// by semaphores and robust mutexes instead of the lock-free ring (see
	// layout/LAYOUT.md §14.11). The choice is recorded in the segment, and every handle
	// that opens it follows it.
	Locked bool
	// AcceptExisting makes OpenOrCreate use a queue it finds even if its
	// configuration differs from the (non-zero) fields asked for; without
	// it OpenOrCreate fails with ErrMismatch naming the difference.
	AcceptExisting bool
}

// Options tune Open.
type Options struct {
	ring.Options
	// Wait tunes the blocking calls of this handle.
	Wait Wait
}

// Queue is a handle on an MPMC segment: one mapping of it, through which
// this process may attach any number of producers and consumers (each
// takes a registry entry). Its methods are safe for concurrent use; a
// Producer or Consumer is not, except for Close.
type Queue struct {
	seg      *ring.Segment
	hdr      layout.Header
	data     []byte
	mask     uint64
	slotSize uint64
	maxMsg   uint32

	// Shared words, at offsets validated by layout.Decode.
	enq  *atomic.Uint64   // enqueue cursor, on the producer line
	deq  *atomic.Uint64   // dequeue cursor, on the consumer line
	seqs []*atomic.Uint64 // sequence word of each slot

	producerWake notify.Line // producers park here, waiting for space
	consumerWake notify.Line // consumers park here, waiting for data
	wait         Wait
	lk           *lockedQueue // non-nil in locked mode (layout.FlagLocked)

	// guarded: the file can be truncated under the mapping, so every
	// exported call that touches it turns a fault into ring.ErrTruncated
	// (ring.Segment.CatchFault). Calls made per message dispatch on it to
	// an unguarded body, or to a variant that defers CatchFault and runs
	// the body (TrySend: trySendGuarded, trySend), so that a queue that
	// cannot shrink (a sealed memfd) pays a branch and no defer, and calls
	// nest through the bodies, guarded once. Batch calls and rarer ones
	// (attaching, Close, Stats) defer CatchFault themselves when it is set.
	guarded bool

	g         *gate.Gate // queue-level calls (attach, Stats, Entries, Guard)
	mu        sync.Mutex
	producers map[*Producer]struct{}
	consumers map[*Consumer]struct{}
}

// Create makes a new queue at loc. It fails with ErrExists if something is
// already there.
func Create(loc ring.Location, cfg Config) (*Queue, error) {
	if cfg.Slots == 0 {
		cfg.Slots = DefaultSlots
	}
	if cfg.SlotSize == 0 && cfg.MaxMessage == 0 {
		cfg.SlotSize = DefaultSlotSize
	}
	if cfg.Registry == 0 {
		cfg.Registry = DefaultRegistry
	}
	h, err := layout.PlanMPMC(cfg.Slots, cfg.SlotSize, cfg.MaxMessage, cfg.Registry)
	if err != nil {
		return nil, err
	}
	if cfg.Locked {
		h.Flags |= layout.FlagLocked
	}
	seg, err := ring.Create(loc, h, &ring.Options{Mode: cfg.Mode}, func(s *ring.Segment) error {
		q, err := newQueue(s, h, cfg.Wait)
		if err != nil {
			return err
		}
		q.enq.Store(cfg.StartPosition)
		q.deq.Store(cfg.StartPosition)
		for k := uint64(0); k < h.Capacity; k++ {
			p := cfg.StartPosition + k
			q.seqs[p&q.mask].Store(layout.SeqWord(p, layout.SlotEmpty, 0))
		}
		if q.lk != nil {
			// Every slot free; the filled count and the mutex words stay 0.
			c, err := s.Uint32(h.ProducerWake + layout.WakeSemCount)
			if err != nil {
				return err
			}
			c.Store(uint32(h.Capacity))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	q, err := newQueue(seg, seg.Header(), cfg.Wait)
	if err != nil {
		seg.Close()
		return nil, err
	}
	return q, nil
}

// Open maps the existing queue at loc, waiting for its creator to finish
// (bounded by ctx and opts.ReadyTimeout). opts may be nil.
func Open(ctx context.Context, loc ring.Location, opts *Options) (*Queue, error) {
	if opts == nil {
		opts = &Options{}
	}
	seg, err := ring.Open(ctx, loc, layout.KindMPMC, &opts.Options)
	if err != nil {
		return nil, err
	}
	q, err := newQueue(seg, seg.Header(), opts.Wait)
	if err != nil {
		seg.Close()
		return nil, err
	}
	return q, nil
}

// OpenOrCreate opens the queue at loc, or creates it with cfg if there is
// none, so that processes can start in any order. A queue whose
// configuration differs from non-zero fields of cfg (Slots, SlotSize,
// MaxMessage, Registry, Locked) is refused with ErrMismatch unless
// cfg.AcceptExisting is set. A segment that a shmq creator left half made
// (ErrAbandoned) is removed and created anew; anything at loc that is not
// a shmq segment fails with ErrNotSegment and is left alone.
func OpenOrCreate(ctx context.Context, loc ring.Location, cfg Config) (*Queue, error) {
	return openorcreate.Do(ctx, loc, cfg.AcceptExisting,
		func() (*Queue, error) { return Create(loc, cfg) },
		func() (*Queue, error) { return Open(ctx, loc, &Options{Wait: cfg.Wait}) },
		func(q *Queue) string { return q.differs(cfg) })
}

// differs names how q's configuration differs from the non-zero fields of
// cfg, or returns "".
func (q *Queue) differs(cfg Config) string {
	h := q.hdr
	switch {
	case cfg.Slots != 0 && cfg.Slots != h.Capacity:
		return fmt.Sprintf("%d slots, asked for %d", h.Capacity, cfg.Slots)
	case cfg.SlotSize != 0 && cfg.SlotSize != h.SlotSize:
		return fmt.Sprintf("slot size %d, asked for %d", h.SlotSize, cfg.SlotSize)
	case cfg.MaxMessage != 0 && cfg.MaxMessage != h.MaxMessage:
		return fmt.Sprintf("max message %d, asked for %d", h.MaxMessage, cfg.MaxMessage)
	case cfg.Registry != 0 && cfg.Registry != h.RegistryCount:
		return fmt.Sprintf("registry of %d entries, asked for %d", h.RegistryCount, cfg.Registry)
	case cfg.Locked && q.lk == nil:
		return "lock-free mode, asked for locked mode"
	}
	return ""
}

// newQueue takes typed pointers to every shared word. The slot sequence
// words are fetched once, through ring.Segment.Uint64, into a private slice
// (8 bytes of private memory per slot).
func newQueue(seg *ring.Segment, h layout.Header, w Wait) (*Queue, error) {
	q := &Queue{
		seg: seg, hdr: h, data: seg.Data(), mask: h.Capacity - 1,
		slotSize: uint64(h.SlotSize), maxMsg: h.MaxMessage, wait: w.WithDefaults(),
		guarded: seg.Shrinkable(), g: gate.New(),
	}
	var err error
	if q.enq, err = seg.Uint64(h.Producer + layout.CursorPosition); err != nil {
		return nil, err
	}
	if q.deq, err = seg.Uint64(h.Consumer + layout.CursorPosition); err != nil {
		return nil, err
	}
	if uint64(len(q.data)) != h.Capacity*q.slotSize {
		return nil, fmt.Errorf("%w: data region of %d bytes for %d slots of %d", ErrCorrupt, len(q.data), h.Capacity, h.SlotSize)
	}
	q.seqs = make([]*atomic.Uint64, h.Capacity)
	for i := range q.seqs {
		if q.seqs[i], err = seg.Uint64(h.Data + uint64(i)*q.slotSize + layout.SlotSeq); err != nil {
			return nil, err
		}
	}
	if q.producerWake, err = wakeline.New(seg, h.ProducerWake, layout.WaiterSetProducers); err != nil {
		return nil, err
	}
	if q.consumerWake, err = wakeline.New(seg, h.ConsumerWake, layout.WaiterSetConsumers); err != nil {
		return nil, err
	}
	if h.Flags&layout.FlagLocked != 0 {
		if q.lk, err = newLocked(seg, h, q.wait); err != nil {
			return nil, err
		}
	}
	return q, nil
}

// Locked reports whether the queue runs in locked mode (Config.Locked; see
// layout/LAYOUT.md §14.11), which its creator chose for every handle.
func (q *Queue) Locked() bool { return q.lk != nil }

// Segment returns the underlying segment.
func (q *Queue) Segment() *ring.Segment { return q.seg }

// Slots returns the number of slots.
func (q *Queue) Slots() uint64 { return q.hdr.Capacity }

// SlotSize returns the size of a slot in bytes, header included.
func (q *Queue) SlotSize() int { return int(q.hdr.SlotSize) }

// MaxMessage returns the largest payload the queue accepts.
func (q *Queue) MaxMessage() int { return int(q.maxMsg) }

// Close closes every producer and consumer attached through q (their
// blocked calls return ErrClosed; uncommitted reservations become
// tombstones and peeked messages are released), waits for calls in flight,
// and unmaps the segment. It does not remove the segment (see
// ring.Unlink); messages in the ring stay there for other consumers. Slices
// from Peek and Reserve must not be used after Close.
func (q *Queue) Close() error {
	if q == nil || q.g == nil {
		return opError("Close", errNilHandle)
	}
	var err error
	q.g.Close(func() {
		q.mu.Lock()
		var ps []*Producer
		var cs []*Consumer
		for p := range q.producers {
			ps = append(ps, p)
		}
		for c := range q.consumers {
			cs = append(cs, c)
		}
		q.mu.Unlock()
		// Each Close returns after its handle's teardown, also one that
		// another goroutine started (handles leave the maps last).
		for _, c := range cs {
			c.Close()
		}
		for _, p := range ps {
			p.Close()
		}
		err = q.seg.Close()
	})
	return err
}

// Guard runs fn, which may touch slices that Peek or Reserve returned, and
// turns a fault caused by another process truncating the segment's file
// into an error wrapping ErrTruncated (see ring.Segment.Guard). Use it to
// read or fill zero-copy slices of a queue in a shm or file segment that
// another process could truncate; a memfd segment is sealed and runs fn
// directly.
// fn must not Close the queue: Close waits for fn to return.
func (q *Queue) Guard(fn func() error) error {
	if err := q.enter("Guard"); err != nil {
		return err
	}
	defer q.g.Exit()
	return q.seg.Guard(fn)
}

// enter admits a queue-level call of operation op, or says why not.
func (q *Queue) enter(op string) error {
	if q == nil || q.g == nil {
		return opError(op, errNilHandle)
	}
	if !q.g.Enter() {
		return opError(op, ErrClosed)
	}
	return nil
}

// Stats is a snapshot of a queue's cursors and registry.
type Stats struct {
	Slots      uint64
	SlotSize   uint32
	MaxMessage uint32
	Head       uint64 // dequeue cursor: positions taken by consumers (plus the start position)
	Tail       uint64 // enqueue cursor: positions claimed by producers
	Used       uint64 // Tail-Head clamped to [0, Slots]: slots claimed and not yet taken
	// Entries lists the registry entries that are or were in use (state not
	// layout.EntryFree), producers and consumers, live and dead.
	Entries []ring.EntryInfo
}

// Stats returns a snapshot of the queue. The cursors and counters are read
// one at a time, so under traffic they are mutually inconsistent by the
// messages that moved in between.
func (q *Queue) Stats() (_ Stats, err error) {
	if err := q.enter("Stats"); err != nil {
		return Stats{}, err
	}
	defer q.g.Exit()
	if q.guarded {
		defer q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	all, err := q.seg.Entries()
	if err != nil {
		return Stats{}, opError("Stats", err)
	}
	var es []ring.EntryInfo
	for _, e := range all {
		if e.State != layout.EntryFree {
			es = append(es, e)
		}
	}
	head, tail := q.deq.Load(), q.enq.Load()
	used := tail - head
	if int64(used) < 0 {
		used = 0
	} else if used > q.hdr.Capacity {
		used = q.hdr.Capacity
	}
	return Stats{
		Slots: q.hdr.Capacity, SlotSize: q.hdr.SlotSize, MaxMessage: q.maxMsg,
		Head: head, Tail: tail, Used: used, Entries: es,
	}, nil
}

// Entries returns a snapshot of every registry entry.
func (q *Queue) Entries() (_ []ring.EntryInfo, err error) {
	if err := q.enter("Entries"); err != nil {
		return nil, err
	}
	defer q.g.Exit()
	if q.guarded {
		defer q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	es, err := q.seg.Entries()
	return es, opError("Entries", err)
}

// attach takes a free registry entry for role and recovers any slot that a
// dead former holder of the same entry left claimed. Its callers hold the
// queue's gate and guard it.
func (q *Queue) attach(role uint32) (*ring.Entry, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e, err := q.seg.AttachAny(0, role)
	if err != nil {
		return nil, err
	}
	if q.lk != nil {
		// Slot sequence words are unused; a dead predecessor may have left
		// semaphore units recorded in the entry, and others may have too.
		if err := q.recoverOwnUnits(e.Index()); err != nil {
			e.Detach()
			return nil, err
		}
		return e, nil
	}
	if err := q.recoverEntry(uint32(e.Index())); err != nil {
		e.Detach()
		return nil, err
	}
	return e, nil
}

// slot returns the byte offset of the slot of position pos in q.data.
func (q *Queue) slot(pos uint64) uint64 { return (pos & q.mask) * q.slotSize }

// payload returns n bytes of payload of the slot of position pos.
func (q *Queue) payload(pos uint64, n uint32) []byte {
	s := q.slot(pos) + layout.SlotHeaderSize
	e := s + uint64(n)
	return q.data[s:e:e]
}

func (q *Queue) corrupt(what string, w, pos uint64) error {
	return fmt.Errorf("%w: %s: slot %d holds sequence word %#x (state %d, owner %d) at position %d",
		ErrCorrupt, what, pos&q.mask, w, layout.SeqState(w), layout.SeqOwner(w), pos)
}

// Slot-word distances relative to E(pos), see layout.SeqDiff.
const (
	dEmpty   = layout.SlotEmpty
	dWriting = layout.SlotWriting
	dFull    = layout.SlotFull
	dReading = layout.SlotReading
)

// lap returns the rank distance of one lap of the ring.
func (q *Queue) lap() int64 { return 4 * int64(q.hdr.Capacity) }

// classify validates the sequence word w read for position pos: the
// position it names must map to the same slot.
func (q *Queue) classify(w, pos uint64) (int64, error) {
	d := layout.SeqDiff(w, pos)
	if uint64(d>>2)&q.mask != 0 {
		return 0, q.corrupt("position does not map to the slot", w, pos)
	}
	return d, nil
}

const pos46Mask = 1<<(layout.SeqRankBits-2) - 1

// fullPosition reconstructs the 64-bit position named by word w from a
// cursor value cur that is at or after it.
func fullPosition(w, cur uint64) uint64 {
	p46 := w >> layout.SeqRankShift >> 2
	return cur - (cur-p46)&pos46Mask
}

// recoverEntry is run when this process takes registry entry me: the former
// holder of me, if any, is gone (its lock is free), so any slot still
// claimed in its name is stale. A slot it was writing becomes a tombstone
// F(p, SeqOwnerTomb) (consumers pass it); a message it was reading is
// orphaned, for the producer that next reaches its slot to requeue
// (LAYOUT.md §14.9).
func (q *Queue) recoverEntry(me uint32) error {
	for i, seq := range q.seqs {
		w := seq.Load()
		if layout.SeqOwner(w) != me {
			continue
		}
		switch layout.SeqState(w) {
		case layout.SlotWriting:
			cur := q.enq.Load()
			pos := fullPosition(w, cur)
			if pos&q.mask != uint64(i) || cur-pos > q.hdr.Capacity+1 {
				return q.corrupt("stale claim out of range", w, pos)
			}
			q.enq.CompareAndSwap(pos, pos+1)
			// One CAS on the exact word seen, writing nothing into the slot:
			// if a consumer skipped it meanwhile and the slot moved on, the
			// CAS fails and a later message there is left alone.
			testHook("recover-W", pos)
			if seq.CompareAndSwap(w, layout.SeqWord(pos, layout.SlotFull, layout.SeqOwnerTomb)) {
				q.wake(q.consumerWake)
			}
		case layout.SlotReading:
			cur := q.deq.Load()
			pos := fullPosition(w, cur)
			if pos&q.mask != uint64(i) || cur-pos > q.hdr.Capacity+1 {
				return q.corrupt("stale claim out of range", w, pos)
			}
			q.deq.CompareAndSwap(pos, pos+1)
			if seq.CompareAndSwap(w, layout.SeqWord(pos, layout.SlotReading, layout.SeqOwnerOrphan)) {
				// A producer may be waiting for this very slot.
				q.wake(q.producerWake)
			}
		}
	}
	return nil
}
