// Package pubsub is a publish/subscribe queue of variable-length messages in
// shared memory: one publisher process and up to the registry size of
// subscriber processes (64 by default), each subscriber receiving every
// message committed while it is attached.
//
// The ring is SPSC's byte ring (package spsc) with one writer and many
// readers: the publisher appends records and publishes them with one store
// of the tail cursor; each subscriber reads from its own position, which it
// keeps in its registry entry. Records carry a sequence number, so that a
// subscriber knows exactly which message it holds and how many it missed.
//
// Two policies, chosen at creation (Config.Lossy) and recorded in the
// segment:
//
//   - Back-pressure (the default): the publisher never overwrites a record
//     that a live subscriber has not released; it waits for the slowest one.
//     A subscriber that dies is dropped (its registry entry is freed) once
//     the publisher would wait for it, within about 100 ms, so it never
//     wedges the publisher. Peek hands out messages without copying.
//   - Lossy: the publisher never waits. A subscriber that falls a ring
//     behind is overwritten; its next call returns a *LostError (matching
//     ErrLost) that says how many messages it lost, and it resumes at the
//     oldest message still whole. A copy that the publisher overwrote while
//     it was being made (a torn read) is detected and never delivered. Peek
//     hands out views that the following Release validates.
//
// A subscriber starts at the newest message committed before it attached
// (FromLatest, the default), at the oldest one still in the ring
// (FromOldest), or at the first one committed after it attached (FromNext).
//
// Blocking calls spin briefly and then park on a futex (package notify):
// subscribers on one line, so that a publisher wakes all of them with one
// system call, and only when one is parked; the back-pressured publisher
// on another, which subscribers wake when they release.
//
// Lifecycle and errors follow packages spsc and mpmc: Close of a Queue,
// Publisher or Subscriber may be called from any goroutine and makes calls
// blocked on it return ErrClosed; after the publisher closes cleanly and a
// subscriber has read everything, Recv and PeekWait return io.EOF, and a
// publisher that attaches later continues the stream. Everything read from
// the segment is validated: a peer that writes garbage makes calls fail with
// an error wrapping ErrCorrupt, never panic or loop forever.
//
// layout/LAYOUT.md section 18 describes the format and the protocol.
package pubsub

import (
	"context"
	"encoding/binary"
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
	DefaultCapacity    = 1 << 20
	DefaultSubscribers = 64
)

// maxAttempts bounds every retry loop over shared state: each failed
// attempt means the publisher made progress (or a peer writes garbage).
const maxAttempts = 1 << 20

// Config describes a new queue.
type Config struct {
	// Capacity is the ring size in bytes, a power of two of at least 64; 0
	// means DefaultCapacity. Each message takes its length plus a 16-byte
	// header, rounded up to 16 bytes.
	Capacity uint64
	// MaxMessage is the largest payload accepted, at most Capacity/2-16; 0
	// means that limit.
	MaxMessage uint32
	// Subscribers is the most subscribers that can be attached at once; 0
	// means DefaultSubscribers. The registry has one more entry, the
	// publisher's.
	Subscribers uint32
	// Lossy makes the publisher overwrite what slow subscribers have not
	// read instead of waiting for them (see the package documentation).
	// The choice is recorded in the segment; every handle follows it.
	Lossy bool
	// Mode is the new segment's permission; 0 means 0600.
	Mode fs.FileMode
	// StartPosition is the initial byte position, a multiple of 16, and
	// StartSeq the sequence number of the first message. Only tests of the
	// wrap-around of 64-bit positions and sequence numbers need them.
	StartPosition uint64
	StartSeq      uint64
	// Wait tunes the blocking calls of this handle.
	Wait Wait
	// AcceptExisting makes OpenOrCreate use a queue it finds even if its
	// configuration differs from the (non-zero) fields asked for, or its
	// policy from Lossy; without it OpenOrCreate fails with ErrMismatch.
	AcceptExisting bool
}

// Options tune Open.
type Options struct {
	ring.Options
	// Wait tunes the blocking calls of this handle.
	Wait Wait
}

// Queue is a handle on a pub/sub segment: one mapping of it, through which
// this process may attach as the publisher and as any number of
// subscribers. Its methods are safe for concurrent use; a Publisher or
// Subscriber is not, except for Close.
type Queue struct {
	seg    *ring.Segment
	hdr    layout.Header
	data   []byte
	cap    uint64
	mask   uint64
	maxMsg uint32
	lossy  bool

	// Shared words, at offsets validated by layout.Decode, all on the
	// producer line and written by the publisher only.
	tail   *atomic.Uint64
	intent *atomic.Uint64 // lossy
	oldest *atomic.Uint64 // lossy
	limit  *atomic.Uint64 // back-pressure
	target *atomic.Uint64 // back-pressure: PubWaitFor
	// pubState is the publisher's registry entry state (detached: end of
	// stream); subs[i] are the words of registry entry i (0 unused).
	pubState *atomic.Uint32
	subs     []entryWords

	publisherWake  notify.Line // the back-pressured publisher parks here, waiting for room
	subscriberWake notify.Line // subscribers park here, waiting for messages
	wait           Wait
	guarded        bool // the file can be truncated under the mapping: see ring.Segment.CatchFault

	g           *gate.Gate // queue-level calls (attach, Stats, Guard)
	mu          sync.Mutex
	publisher   *Publisher
	subscribers map[*Subscriber]struct{}
}

// entryWords are the shared words of one subscriber's registry entry.
type entryWords struct {
	state *atomic.Uint32
	pos   *atomic.Uint64
	seq   *atomic.Uint64
	lost  *atomic.Uint64
}

// Create makes a new queue at loc. It fails with ErrExists if something is
// already there.
func Create(loc ring.Location, cfg Config) (*Queue, error) {
	if cfg.Capacity == 0 {
		cfg.Capacity = DefaultCapacity
	}
	if cfg.Subscribers == 0 {
		cfg.Subscribers = DefaultSubscribers
	}
	if cfg.StartPosition%layout.PubSubRecordAlign != 0 {
		return nil, fmt.Errorf("%w: start position %d is not a multiple of %d",
			layout.ErrInvalidConfig, cfg.StartPosition, layout.PubSubRecordAlign)
	}
	h, err := layout.PlanPubSub(cfg.Capacity, cfg.MaxMessage, cfg.Subscribers, cfg.Lossy)
	if err != nil {
		return nil, err
	}
	seg, err := ring.Create(loc, h, &ring.Options{Mode: cfg.Mode}, func(s *ring.Segment) error {
		q, err := newQueue(s, h, cfg.Wait)
		if err != nil {
			return err
		}
		start := cfg.StartPosition
		q.putSeq(start, cfg.StartSeq)
		q.tail.Store(start)
		q.oldest.Store(start)
		q.intent.Store(start + layout.PubSubRecordHeaderSize)
		// No publisher has looked at the (absent) subscribers yet: a
		// subscriber may start anywhere from the start position on.
		q.limit.Store(start + q.cap)
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
	seg, err := ring.Open(ctx, loc, layout.KindPubSub, &opts.Options)
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
// none, so that the publisher and the subscribers can start in any order.
// A queue whose configuration differs from non-zero fields of cfg
// (Capacity, MaxMessage, Subscribers) or from cfg.Lossy is refused with
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

// differs names how q's configuration differs from cfg, or returns "".
func (q *Queue) differs(cfg Config) string {
	switch {
	case cfg.Capacity != 0 && cfg.Capacity != q.cap:
		return fmt.Sprintf("capacity %d, asked for %d", q.cap, cfg.Capacity)
	case cfg.MaxMessage != 0 && cfg.MaxMessage != q.maxMsg:
		return fmt.Sprintf("max message %d, asked for %d", q.maxMsg, cfg.MaxMessage)
	case cfg.Subscribers != 0 && cfg.Subscribers != q.hdr.RegistryCount-1:
		return fmt.Sprintf("%d subscribers, asked for %d", q.hdr.RegistryCount-1, cfg.Subscribers)
	case cfg.Lossy != q.lossy:
		return fmt.Sprintf("%s policy, asked for %s", policyName(q.lossy), policyName(cfg.Lossy))
	}
	return ""
}

func policyName(lossy bool) string {
	if lossy {
		return "lossy"
	}
	return "back-pressure"
}

func newQueue(seg *ring.Segment, h layout.Header, w Wait) (*Queue, error) {
	q := &Queue{
		seg: seg, hdr: h, data: seg.Data(), cap: h.Capacity, mask: h.Capacity - 1, maxMsg: h.MaxMessage,
		lossy: h.Flags&layout.FlagLossy != 0, wait: w.WithDefaults(), guarded: seg.Shrinkable(), g: gate.New(),
		subscribers: map[*Subscriber]struct{}{},
	}
	if uint64(len(q.data)) != q.cap {
		return nil, fmt.Errorf("%w: data region of %d bytes for a %d-byte ring", ErrCorrupt, len(q.data), q.cap)
	}
	var err error
	for _, w := range []struct {
		p   **atomic.Uint64
		off uint64
	}{{&q.tail, layout.PubTail}, {&q.intent, layout.PubIntent}, {&q.oldest, layout.PubOldest}, {&q.limit, layout.PubLimit},
		{&q.target, layout.PubWaitFor}} {
		if *w.p, err = seg.Uint64(h.Producer + w.off); err != nil {
			return nil, err
		}
	}
	if q.pubState, err = seg.Uint32(h.Entry(layout.PubSubPublisherEntry) + layout.EntryState); err != nil {
		return nil, err
	}
	q.subs = make([]entryWords, h.RegistryCount)
	for i := layout.PubSubFirstSubscriber; i < int(h.RegistryCount); i++ {
		base := h.Entry(i)
		ew := &q.subs[i]
		if ew.state, err = seg.Uint32(base + layout.EntryState); err != nil {
			return nil, err
		}
		if ew.pos, err = seg.Uint64(base + layout.EntrySubPosition); err != nil {
			return nil, err
		}
		if ew.seq, err = seg.Uint64(base + layout.EntrySubSeq); err != nil {
			return nil, err
		}
		if ew.lost, err = seg.Uint64(base + layout.EntrySubLost); err != nil {
			return nil, err
		}
	}
	if q.publisherWake, err = wakeline.New(seg, h.ProducerWake, layout.WaiterSetProducers); err != nil {
		return nil, err
	}
	if q.subscriberWake, err = wakeline.New(seg, h.ConsumerWake, layout.WaiterSetConsumers); err != nil {
		return nil, err
	}
	return q, nil
}

// Segment returns the underlying segment.
func (q *Queue) Segment() *ring.Segment { return q.seg }

// Capacity returns the ring size in bytes.
func (q *Queue) Capacity() uint64 { return q.cap }

// MaxMessage returns the largest payload the queue accepts.
func (q *Queue) MaxMessage() int { return int(q.maxMsg) }

// MaxSubscribers returns the most subscribers that can be attached at once.
func (q *Queue) MaxSubscribers() int { return int(q.hdr.RegistryCount) - 1 }

// Lossy reports whether the queue is lossy (Config.Lossy), as its creator
// chose for every handle.
func (q *Queue) Lossy() bool { return q.lossy }

// Close closes the subscribers and the publisher attached through q (their
// blocked calls return ErrClosed), waits for calls in flight, and unmaps
// the segment. It does not remove the segment (see ring.Unlink). Slices
// from Peek and Reserve must not be used after Close.
func (q *Queue) Close() error {
	if q == nil || q.g == nil {
		return opError("Close", errNilHandle)
	}
	var err error
	q.g.Close(func() {
		q.mu.Lock()
		p := q.publisher
		var ss []*Subscriber
		for s := range q.subscribers {
			ss = append(ss, s)
		}
		q.mu.Unlock()
		// Subscribers first: closing the publisher first would end the
		// stream, and a Recv blocked on a subscriber would report io.EOF,
		// not ErrClosed. Each Close returns after its handle's teardown,
		// also one that another goroutine started.
		for _, s := range ss {
			s.Close()
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
// into an error wrapping ErrTruncated (see ring.Segment.Guard).
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

// Stats returns a snapshot of the queue; see ReadStats.
func (q *Queue) Stats() (_ Stats, err error) {
	if err := q.enter("Stats"); err != nil {
		return Stats{}, err
	}
	defer q.g.Exit()
	if q.guarded {
		defer q.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	entries, err := q.seg.Entries()
	if err != nil {
		return Stats{}, opError("Stats", err)
	}
	st, err := ReadStats(segmentWords{q.seg}, entries)
	return st, opError("Stats", err)
}

// idx returns the ring index of position pos.
func (q *Queue) idx(pos uint64) uint64 { return pos & q.mask }

// seqAt returns the sequence-number word of the record (or of the next
// record, at the tail) at position pos.
func (q *Queue) seqAt(pos uint64) uint64 {
	i := q.idx(pos) + layout.PubSubRecordSeq
	return binary.LittleEndian.Uint64(q.data[i : i+8])
}

// putSeq writes the sequence-number word at position pos.
func (q *Queue) putSeq(pos, seq uint64) {
	i := q.idx(pos) + layout.PubSubRecordSeq
	binary.LittleEndian.PutUint64(q.data[i:i+8], seq)
}

// header returns the length and type words of the record at position pos.
func (q *Queue) header(pos uint64) (length, typ uint32, seq uint64) {
	i := q.idx(pos)
	h := q.data[i : i+layout.PubSubRecordHeaderSize]
	return binary.LittleEndian.Uint32(h[layout.PubSubRecordLength:]), binary.LittleEndian.Uint32(h[layout.PubSubRecordType:]),
		binary.LittleEndian.Uint64(h[layout.PubSubRecordSeq:])
}

// putHeader writes a record header at position pos.
func (q *Queue) putHeader(pos uint64, length, typ uint32, seq uint64) {
	i := q.idx(pos)
	h := q.data[i : i+layout.PubSubRecordHeaderSize]
	binary.LittleEndian.PutUint32(h[layout.PubSubRecordLength:], length)
	binary.LittleEndian.PutUint32(h[layout.PubSubRecordType:], typ)
	binary.LittleEndian.PutUint64(h[layout.PubSubRecordSeq:], seq)
}

// payload returns the n payload bytes of the record at position pos.
func (q *Queue) payload(pos uint64, n uint64) []byte {
	s := q.idx(pos) + layout.PubSubRecordHeaderSize
	return q.data[s : s+n : s+n]
}

// peerDead reports whether registry entry i belongs to a process that died
// without detaching.
func (q *Queue) peerDead(i int) error {
	info, err := q.seg.Entry(i)
	if err != nil {
		return err
	}
	if info.Dead() {
		return fmt.Errorf("%w: pid %d", ErrPeerDead, info.PID)
	}
	return nil
}
