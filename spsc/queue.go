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
// Everything read from the segment is validated: a peer that writes garbage
// into cursors or records makes calls fail with an error wrapping
// ErrCorrupt; it cannot make this process panic, access memory outside the
// ring or loop forever.
package spsc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/notify"
	"github.com/shmq/shmq/ring"
)

// Errors returned (wrapped) by this package, besides those of packages ring
// and layout that it passes on. Test for them with errors.Is.
var (
	ErrFull        = errors.New("spsc: queue is full")
	ErrEmpty       = errors.New("spsc: queue is empty")
	ErrMessageSize = errors.New("spsc: message size out of range")
	ErrShortBuffer = errors.New("spsc: buffer too small for the next message")
	ErrPending     = errors.New("spsc: reserved records are not committed")
	ErrPeerDead    = errors.New("spsc: peer process died")
	ErrClosed      = errors.New("spsc: closed")

	// Re-exported from the packages below, so callers need import only this one.
	ErrCorrupt   = layout.ErrCorrupt
	ErrKind      = layout.ErrKind
	ErrRoleTaken = ring.ErrRoleTaken
	ErrExists    = ring.ErrExists
	ErrNotFound  = ring.ErrNotFound
	ErrNoSpace   = ring.ErrNoSpace
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
	// Mode is the new segment's permission; 0 means 0600.
	Mode fs.FileMode
	// StartPosition is the initial value of both cursors, a multiple of 8.
	// Only tests that exercise wrap-around of the 64-bit positions need it.
	StartPosition uint64
	// Wait tunes the blocking calls of this handle.
	Wait Wait
}

// Options tune Open.
type Options struct {
	ring.Options
	// Wait tunes the blocking calls of this handle.
	Wait Wait
}

// Queue is a handle on an SPSC segment: one mapping of it, through which
// this process may attach as the producer, the consumer, or both. Its
// methods are safe for concurrent use; a Producer or Consumer is not.
type Queue struct {
	seg  *ring.Segment
	hdr  layout.Header
	data []byte
	mask uint64

	// Shared words, at offsets validated by layout.Decode. tail is written
	// only by the producer, head only by the consumer.
	tail *atomic.Uint64
	head *atomic.Uint64

	producerWake notify.Line // the producer parks here, waiting for space
	consumerWake notify.Line // the consumer parks here, waiting for data
	wait         Wait
	guarded      bool // the file can be truncated under the mapping: see ring.Segment.CatchFault

	mu       sync.Mutex
	producer *Producer
	consumer *Consumer
	closed   bool
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
// none, so that two processes can start in either order. A segment whose
// creator died before publishing it (ring.ErrAbandoned) is removed and
// created anew.
func OpenOrCreate(ctx context.Context, loc ring.Location, cfg Config) (*Queue, error) {
	for {
		q, err := Create(loc, cfg)
		if !errors.Is(err, ring.ErrExists) {
			return q, err
		}
		q, err = Open(ctx, loc, &Options{Wait: cfg.Wait})
		if errors.Is(err, ring.ErrAbandoned) {
			ring.Unlink(loc)
		} else if !errors.Is(err, ring.ErrNotFound) {
			return q, err
		}
		// Removed between our Create and Open, or abandoned: try again.
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

func newQueue(seg *ring.Segment, h layout.Header, w Wait) (*Queue, error) {
	q := &Queue{seg: seg, hdr: h, data: seg.Data(), mask: h.Capacity - 1, wait: w.WithDefaults(),
		guarded: seg.Shrinkable()}
	var err error
	if q.tail, err = seg.Uint64(h.Producer + layout.CursorPosition); err != nil {
		return nil, err
	}
	if q.head, err = seg.Uint64(h.Consumer + layout.CursorPosition); err != nil {
		return nil, err
	}
	if q.producerWake, err = newWakeLine(seg, h.ProducerWake); err != nil {
		return nil, err
	}
	if q.consumerWake, err = newWakeLine(seg, h.ConsumerWake); err != nil {
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

// Close detaches any producer or consumer attached through q and unmaps the
// segment. It does not remove the segment (see ring.Unlink); messages in
// the ring stay there for the next consumer.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	p, c := q.producer, q.consumer
	q.mu.Unlock()
	if p != nil {
		p.Close()
	}
	if c != nil {
		c.Close()
	}
	return q.seg.Close()
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
	if q.guarded {
		defer q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	p, err := q.seg.Entry(layout.SPSCProducerEntry)
	if err != nil {
		return Stats{}, err
	}
	c, err := q.seg.Entry(layout.SPSCConsumerEntry)
	if err != nil {
		return Stats{}, err
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

// attach takes the registry entry of a role and returns it.
func (q *Queue) attach(entry int, role uint32) (*ring.Entry, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil, ErrClosed
	}
	return q.seg.Attach(entry, role)
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
