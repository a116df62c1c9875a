package layout

import (
	"fmt"
	"math/bits"
)

// Publish/subscribe queues (KindPubSub). One publisher writes records into
// a power-of-two byte ring; every subscriber reads every record, each at its
// own position. LAYOUT.md section 18 in this directory is the normative description.
//
// A record is 16-byte aligned and starts with a 16-byte header:
//
//	offset 0  u32 length: header + payload bytes, unaligned (as in SPSC)
//	offset 4  u32 type: TypeMessage or TypePadding
//	offset 8  u64 sequence number of the message (padding: of the next message)
//
// Sequence numbers count messages: a queue's first message has the start
// sequence number its creator chose, and each message one more. Padding
// fills the ring from its position to the ring's end, like the SPSC
// padding record. Records never wrap.
//
// The 8 bytes at PubSubRecordSeq of the position just past the committed
// tail always hold the sequence number of the next message: the publisher
// writes them there, before it stores the tail, with every commit (and the
// creator at the start position). A subscriber that starts at the tail
// learns the sequence number it expects there, and a new publisher learns
// the one it continues with, without any other shared word.
const (
	PubSubRecordHeaderSize = 16
	PubSubRecordAlign      = 16
	PubSubRecordLength     = 0 // u32
	PubSubRecordType       = 4 // u32
	PubSubRecordSeq        = 8 // u64
)

// FlagLossy (pub/sub only): the publisher never waits for subscribers and
// overwrites what they have not read; subscribers detect it. Without it
// the queue applies back-pressure: the publisher waits for the slowest live
// subscriber. Chosen at creation.
const FlagLossy uint32 = 2

// PubSub capacity bounds, in data bytes.
const (
	MinPubSubCapacity = 64
	MaxPubSubCapacity = 1 << 40
)

// PubSubWaiterSets is the number of waiter sets of a pub/sub queue: the
// publisher waiting for room (WaiterSetProducers, back-pressure only) and
// the subscribers waiting for messages (WaiterSetConsumers).
const PubSubWaiterSets = 2

// Registry of a pub/sub queue: entry 0 is the publisher's (RoleProducer),
// entries 1 and up are subscribers' (RoleConsumer).
const (
	PubSubPublisherEntry  = 0
	PubSubFirstSubscriber = 1
	// MaxPubSubSubscribers: every entry has a bit in each waiter set.
	MaxPubSubSubscribers = MaxRegistryEntries - 1
)

// Fields of the producer line of a pub/sub queue, all written by the
// publisher only.
const (
	// PubTail: u64 committed position; records before it are published.
	// The release store of the tail publishes them (as in SPSC).
	PubTail = CursorPosition
	// PubIntent (lossy): u64 position up to which the publisher may be
	// writing. It never decreases and is at least the tail plus
	// PubSubRecordHeaderSize. The publisher stores it, with a full fence,
	// before it writes any byte at or beyond its previous value, so a
	// record at position p that a subscriber copied is whole if the intent
	// it loads after the copy is at most p + capacity. The publisher moves
	// it in steps of PubSubSlack bytes, not per message.
	PubIntent = 8
	// PubOldest (lossy): u64 position of the oldest record boundary at or
	// after intent - capacity, at most the tail: where a lapped subscriber
	// resumes, and a subscriber that asks for history starts. Stored
	// before the intent that makes it necessary.
	PubOldest = 16
	// PubLimit (back-pressure): u64 position the publisher may write up to
	// (exclusive) without looking at the subscribers' positions again.
	// Stored before the publisher relies on it and re-checked against the
	// positions after it is stored; limit - capacity is a record boundary
	// that no live subscriber is behind.
	PubLimit = 24
	// PubWaitFor (back-pressure): u64 position that the slowest subscriber
	// must reach for a parked publisher to have room. The publisher stores
	// it before it registers in WaiterSetProducers; a subscriber wakes the
	// publisher only if its release moves it from before this position to
	// at or past it (or when it detaches), so that the parked publisher is
	// woken by the slowest subscriber, not by every release of every one.
	PubWaitFor = 32
)

// Fields of a subscriber's registry entry, past the common fields, written
// only by the entry's holder.
const (
	// EntrySubPosition: u64 the subscriber's position: the start of the
	// first record it has not released. A back-pressure publisher never
	// writes at or beyond position + capacity of a live subscriber.
	EntrySubPosition = 72
	// EntrySubSeq: u64 sequence number of the next message it expects.
	EntrySubSeq = 80
	// EntrySubLost: u64 messages it lost to overwriting (lossy), in total.
	EntrySubLost = 88
)

// PubSubMaxMessage is the largest payload a ring of the given capacity
// accepts: a record of at most capacity/2 bytes, so that one always fits
// once the ring is empty, whatever the wrap position.
func PubSubMaxMessage(capacity uint64) uint32 {
	r := capacity / 2
	if r > maxRecordLength {
		r = maxRecordLength
	}
	return uint32(r - PubSubRecordHeaderSize)
}

// PubSubRecordSize is the number of ring bytes a message of n payload
// bytes takes.
func PubSubRecordSize(n int) uint64 {
	return alignUp(uint64(n)+PubSubRecordHeaderSize, PubSubRecordAlign)
}

// PubSubSlack is the step, in bytes, by which a lossy publisher moves its
// intent ahead of what it writes: an eighth of the ring (at least one
// record header). A subscriber within that distance of being overwritten
// counts as overwritten already; in exchange the publisher makes its
// fenced intent store once per step, not once per message.
func PubSubSlack(capacity uint64) uint64 {
	return max(capacity/8, PubSubRecordAlign)
}

// PlanPubSub lays out a pub/sub segment whose ring holds capacity bytes (a
// power of two), accepting payloads of up to maxMessage bytes (0 means the
// largest the capacity allows), with room for subscribers subscribers.
func PlanPubSub(capacity uint64, maxMessage uint32, subscribers uint32, lossy bool) (Header, error) {
	if capacity < MinPubSubCapacity || capacity > MaxPubSubCapacity || bits.OnesCount64(capacity) != 1 {
		return Header{}, fmt.Errorf("%w: capacity %d is not a power of two in [%d, %d]",
			ErrInvalidConfig, capacity, MinPubSubCapacity, uint64(MaxPubSubCapacity))
	}
	limit := PubSubMaxMessage(capacity)
	if maxMessage == 0 {
		maxMessage = limit
	}
	if maxMessage > limit {
		return Header{}, fmt.Errorf("%w: max message %d exceeds %d for capacity %d",
			ErrInvalidConfig, maxMessage, limit, capacity)
	}
	if subscribers == 0 || subscribers > MaxPubSubSubscribers {
		return Header{}, fmt.Errorf("%w: %d subscribers (limits 1 and %d)", ErrInvalidConfig, subscribers, MaxPubSubSubscribers)
	}
	h := planLines(subscribers+1, PubSubWaiterSets)
	h.Kind = KindPubSub
	if lossy {
		h.Flags |= FlagLossy
	}
	h.Capacity = capacity
	h.MaxMessage = maxMessage
	h.SlotSize = PubSubRecordAlign
	h.DataSize = capacity
	h.TotalSize = alignUp(h.Data+h.DataSize, PageSize)
	return h, nil
}

func validatePubSub(h *Header) error {
	c := h.Capacity
	switch {
	case c < MinPubSubCapacity || c > MaxPubSubCapacity || bits.OnesCount64(c) != 1:
		return fmt.Errorf("%w: pubsub capacity %d", ErrCorrupt, c)
	case h.DataSize != c:
		return fmt.Errorf("%w: pubsub data size %d != capacity %d", ErrCorrupt, h.DataSize, c)
	case h.SlotSize != PubSubRecordAlign:
		return fmt.Errorf("%w: pubsub record alignment %d", ErrCorrupt, h.SlotSize)
	case h.MaxMessage == 0 || h.MaxMessage > PubSubMaxMessage(c):
		return fmt.Errorf("%w: pubsub max message %d for capacity %d", ErrCorrupt, h.MaxMessage, c)
	case h.RegistryCount < 2:
		return fmt.Errorf("%w: pubsub registry has %d entries, want a publisher and a subscriber at least", ErrCorrupt, h.RegistryCount)
	}
	return nil
}

// CheckPubSubRecord validates the header of the record at ring index idx,
// given that avail bytes from idx on are committed, in a ring of the given
// capacity whose payloads are at most maxMessage bytes. length and typ are
// the record's length and type words, already loaded. It returns the ring
// bytes the record takes and whether it is padding. A record that does not
// fit wholly inside both the committed bytes and the ring, or that has an
// unknown type, is corruption (or, in a lossy queue, maybe a torn read,
// which the caller tells apart by checking the intent).
func CheckPubSubRecord(length, typ uint32, idx, avail, capacity uint64, maxMessage uint32) (size uint64, padding bool, err error) {
	size = alignUp(uint64(length), PubSubRecordAlign)
	if length < PubSubRecordHeaderSize || size > avail || size > capacity-idx {
		return 0, false, fmt.Errorf("%w: record at index %d has length %d (%d bytes committed, %d to the end of the ring)",
			ErrCorrupt, idx, length, avail, capacity-idx)
	}
	switch typ {
	case TypeMessage:
		if length-PubSubRecordHeaderSize > maxMessage {
			return 0, false, fmt.Errorf("%w: record at index %d carries %d bytes, more than the maximum %d",
				ErrCorrupt, idx, length-PubSubRecordHeaderSize, maxMessage)
		}
		return size, false, nil
	case TypePadding:
		if idx+size != capacity {
			return 0, false, fmt.Errorf("%w: padding record at index %d ends at %d, not at the end of the ring (%d)",
				ErrCorrupt, idx, idx+size, capacity)
		}
		return size, true, nil
	}
	return 0, false, fmt.Errorf("%w: record at index %d has unknown type %#x", ErrCorrupt, idx, typ)
}
