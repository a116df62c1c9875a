// Package spsc is a single-producer single-consumer queue of variable-length
// messages in shared memory, for one producer process and one consumer
// process (or goroutines of one process holding separate handles).
//
// The ring is a power-of-two byte array with two free-running 64-bit
// cursors, each on its own cache line and each written by one side only.
// The producer writes records ahead of the tail cursor and publishes them by
// storing the new tail; the consumer reads records between the head and the
// tail and frees them by storing the new head. The record format is Agrona's
// (see package layout), published by the cursor store, so a batch costs one
// store. Each side keeps a private copy of the other side's cursor and reads
// the shared one only when its copy says the ring is full or empty, so a
// streaming pair touches the other side's line once per batch, not per
// message.
//
// Lifecycle: Close of a Queue, Producer or Consumer may be called from any
// goroutine, also while another goroutine is blocked in a call on it: that
// call returns an error matching ErrClosed (and net.ErrClosed), and Close
// returns once no call is touching the mapping any more. After a producer
// closes cleanly and the consumer has drained the ring, Recv and PeekWait
// return io.EOF; a producer that attaches later starts a new stream, and
// the same Consumer receives it (Recv returns io.EOF only while no producer
// is attached and the ring is empty).
//
// Everything read from the segment is validated: a peer that writes garbage
// into cursors or records makes calls fail with an error wrapping
// ErrCorrupt; it cannot make this process panic, access memory outside the
// ring or loop forever.
package spsc

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

// DefaultCapacity is the ring size Create uses when Config.Capacity is 0.
const DefaultCapacity = 1 << 20

// Config describes a new queue.
type Config struct {
	// Capacity is the ring size in bytes, a power of two of at least 32; 0
	// means DefaultCapacity. Each message takes its length plus an 8-byte
	// header, rounded up to 8 bytes.
	Capacity uint64
	// MaxMessage is the largest payload accepted, at most Capacity/2-8;
	// 0 means that limit.
	MaxMessage uint32
	// Mode is the new segment's permission; 0 means 0600. Only permission
	// bits are allowed.
	Mode fs.FileMode
	// StartPosition is the initial value of both cursors, a multiple of 8.
	// Only tests that exercise wrap-around of the 64-bit positions need it.
	StartPosition uint64
	// Wait tunes the blocking calls of this handle.
	Wait Wait
	// AcceptExisting makes OpenOrCreate use a queue it finds even if its
	// Capacity or MaxMessage differ from the (non-zero) ones asked for;
	// without it OpenOrCreate fails with ErrMismatch naming the difference.
	AcceptExisting bool
}

// Options tune Open.
type Options struct {
	ring.Options
	// Wait tunes the blocking calls of this handle.
	Wait Wait
}

// Queue is a handle on an SPSC segment: one mapping of it, through which
// this process may attach as the producer, the consumer, or both. Its
// methods are safe for concurrent use; a Producer or Consumer is not,
// except for Close.
type Queue struct {
	seg  *ring.Segment
	hdr  layout.Header
	data []byte
	mask uint64

	// Shared words, at offsets validated by layout.Decode. tail is written
	// only by the producer, head only by the consumer; prodState is the
	// producer's registry entry state (detached: end of stream).
	tail      *atomic.Uint64
	head      *atomic.Uint64
	prodState *atomic.Uint32

	producerWake notify.Line // the producer parks here, waiting for space
	consumerWake notify.Line // the consumer parks here, waiting for data
	wait         Wait
	guarded      bool // the file can be truncated under the mapping: see ring.Segment.CatchFault

	g        *gate.Gate // queue-level calls (attach, Stats, Guard)
	mu       sync.Mutex
	producer *Producer
	consumer *Consumer
}

// Create makes a new queue at loc. It fails with ErrExists if something is
// already there.
func Create(loc ring.Location, cfg Config) (*Queue, error) {
	if cfg.Capacity == 0 {
		cfg.Capacity = DefaultCapacity
	}
	if cfg.StartPosition%layout.RecordAlign != 0 {
		return nil, fmt.Errorf("%w: start position %d is not a multiple of %d",
			layout.ErrInvalidConfig, cfg.StartPosition, layout.RecordAlign)
	}
	h, err := layout.PlanSPSC(cfg.Capacity, cfg.MaxMessage)
	if err != nil {
		return nil, err
	}
	seg, err := ring.Create(loc, h, &ring.Options{Mode: cfg.Mode}, func(s *ring.Segment) error {
		q, err := newQueue(s, h, cfg.Wait)
		if err != nil {
			return err
		}
		q.tail.Store(cfg.StartPosition)
		q.head.Store(cfg.StartPosition)
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
	seg, err := ring.Open(ctx, loc, layout.KindSPSC, &opts.Options)
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
// none, so that two processes can start in either order. A queue whose
// Capacity or MaxMessage differ from non-zero values in cfg is refused with
// ErrMismatch unless cfg.AcceptExisting is set. A segment that a shmq
// creator left half made (ErrAbandoned) is removed and created anew;
// anything at loc that is not a shmq segment fails with ErrNotSegment and
// is left alone.
func OpenOrCreate(ctx context.Context, loc ring.Location, cfg Config) (*Queue, error) {
	return openorcreate.Do(ctx, loc, cfg.AcceptExisting,
		func() (*Queue, error) { return Create(loc, cfg) },
		func() (*Queue, error) { return Open(ctx, loc, &Options{Wait: cfg.Wait}) },
		func(q *Queue) string { return q.differs(cfg) })
}

// differs names how q's configuration differs from the non-zero fields of
// cfg, or returns "".
func (q *Queue) differs(cfg Config) string {
	switch {
	case cfg.Capacity != 0 && cfg.Capacity != q.hdr.Capacity:
		return fmt.Sprintf("capacity %d, asked for %d", q.hdr.Capacity, cfg.Capacity)
	case cfg.MaxMessage != 0 && cfg.MaxMessage != q.hdr.MaxMessage:
		return fmt.Sprintf("max message %d, asked for %d", q.hdr.MaxMessage, cfg.MaxMessage)
	}
	return ""
}

func newQueue(seg *ring.Segment, h layout.Header, w Wait) (*Queue, error) {
	q := &Queue{seg: seg, hdr: h, data: seg.Data(), mask: h.Capacity - 1, wait: w.WithDefaults(),
		guarded: seg.Shrinkable(), g: gate.New()}
	var err error
	if q.tail, err = seg.Uint64(h.Producer + layout.CursorPosition); err != nil {
		return nil, err
	}
	if q.head, err = seg.Uint64(h.Consumer + layout.CursorPosition); err != nil {
		return nil, err
	}
	if q.prodState, err = seg.Uint32(h.Entry(layout.SPSCProducerEntry) + layout.EntryState); err != nil {
		return nil, err
	}
	if q.producerWake, err = wakeline.New(seg, h.ProducerWake, layout.WaiterSetProducers); err != nil {
		return nil, err
	}
	if q.consumerWake, err = wakeline.New(seg, h.ConsumerWake, layout.WaiterSetConsumers); err != nil {
		return nil, err
	}
	return q, nil
}

// Segment returns the underlying segment.
func (q *Queue) Segment() *ring.Segment { return q.seg }

// Capacity returns the ring size in bytes.
func (q *Queue) Capacity() uint64 { return q.hdr.Capacity }

// MaxMessage returns the largest payload the queue accepts.
func (q *Queue) MaxMessage() int { return int(q.hdr.MaxMessage) }

// Close closes any producer and consumer attached through q (their
// blocked calls return ErrClosed), waits for calls in flight, and unmaps
// the segment. It does not remove the segment (see ring.Unlink); messages
// in the ring stay there for the next consumer. Slices from Peek and
// Reserve must not be used after Close.
func (q *Queue) Close() error {
	if q == nil || q.g == nil {
		return opError("Close", errNilHandle)
	}
	var err error
	q.g.Close(func() {
		q.mu.Lock()
		p, c := q.producer, q.consumer
		q.mu.Unlock()
		// The consumer first: closing the producer first would end the
		// stream, and a Recv blocked on the consumer would report io.EOF,
		// not ErrClosed. Each Close returns after its handle's teardown,
		// also one that another goroutine started.
		if c != nil {
			c.Close()
		}
		if p != nil {
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
	if q == nil || q.g == nil {
		return opError("Guard", errNilHandle)
	}
	if !q.g.Enter() {
		return opError("Guard", ErrClosed)
	}
	defer q.g.Exit()
	return q.seg.Guard(fn)
}

// Stats is a snapshot of a queue's cursors and registry.
type Stats struct {
	Capacity uint64
	Head     uint64 // consumer cursor: bytes released since creation (plus the start position)
	Tail     uint64 // producer cursor: bytes committed
	Used     uint64 // Tail-Head: ring bytes committed and not yet released
	Producer ring.EntryInfo
	Consumer ring.EntryInfo
}

// Stats returns a snapshot of the queue. The cursors and counters are read
// one at a time, so under traffic they are mutually inconsistent by the
// messages that moved in between.
func (q *Queue) Stats() (_ Stats, err error) {
	if q == nil || q.g == nil {
		return Stats{}, opError("Stats", errNilHandle)
	}
	if !q.g.Enter() {
		return Stats{}, opError("Stats", ErrClosed)
	}
	defer q.g.Exit()
	if q.guarded {
		defer q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	p, err := q.seg.Entry(layout.SPSCProducerEntry)
	if err != nil {
		return Stats{}, opError("Stats", err)
	}
	c, err := q.seg.Entry(layout.SPSCConsumerEntry)
	if err != nil {
		return Stats{}, opError("Stats", err)
	}
	head, tail := q.head.Load(), q.tail.Load()
	return Stats{Capacity: q.hdr.Capacity, Head: head, Tail: tail, Used: tail - head, Producer: p, Consumer: c}, nil
}

// checkUsed validates a tail-head distance read from shared memory.
func (q *Queue) checkUsed(tail, head uint64) error {
	if tail-head > q.hdr.Capacity || (tail|head)%layout.RecordAlign != 0 {
		return fmt.Errorf("%w: cursors tail=%d head=%d in a %d-byte ring", ErrCorrupt, tail, head, q.hdr.Capacity)
	}
	return nil
}

// attach takes the registry entry of a role, validates the cursors, and
// registers the handle that newHandle makes, all inside the queue's gate.
func attach[H any](q *Queue, op string, entry int, role uint32, newHandle func(e *ring.Entry, tail, head uint64) *H, slot func() **H) (_ *H, err error) {
	if q == nil || q.g == nil {
		return nil, opError(op, errNilHandle)
	}
	if !q.g.Enter() {
		return nil, opError(op, ErrClosed)
	}
	defer q.g.Exit()
	if q.guarded {
		defer q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	e, err := q.seg.Attach(entry, role)
	if err != nil {
		return nil, opError(op, err)
	}
	tail, head := q.tail.Load(), q.head.Load()
	if err := q.checkUsed(tail, head); err != nil {
		e.Detach()
		return nil, opError(op, err)
	}
	h := newHandle(e, tail, head)
	q.mu.Lock()
	*slot() = h
	q.mu.Unlock()
	return h, nil
}

// detach forgets a closed handle.
func detach[H comparable](q *Queue, slot *H, h H) {
	var zero H
	q.mu.Lock()
	if *slot == h {
		*slot = zero
	}
	q.mu.Unlock()
}

// peerDead reports whether the other side's registry entry belongs to a
// process that died without detaching.
func (q *Queue) peerDead(entry int) error {
	info, err := q.seg.Entry(entry)
	if err != nil {
		return err
	}
	if info.Dead() {
		return fmt.Errorf("%w: pid %d", ErrPeerDead, info.PID)
	}
	return nil
}
