package layout

import (
	"fmt"
	"math/bits"
)

// SPSC record format. It is Agrona's ring buffer record (a length word and a
// type word, 8-byte alignment, a padding record at the wrap), with one
// difference: a record is published by the release store of the producer
// cursor, not by the sign of its length word. A batch of records is then
// published with a single store, and the consumer never has to zero memory
// behind it to reset commit flags.
const (
	RecordHeaderSize = 8          // u32 length (header + payload, unaligned), u32 type
	RecordAlign      = 8          // records start at multiples of 8 bytes
	RecordLength     = 0          // offset of the length word within a record
	RecordType       = 4          // offset of the type word within a record
	TypeMessage      = 1          // a message; payload follows the header
	TypePadding      = ^uint32(0) // fills the ring from here to its end; skipped by the consumer
)

// SPSC capacity bounds, in data bytes. The smallest ring holds one 8-byte
// message; the largest keeps every record length within the u32 length word.
const (
	MinSPSCCapacity = 32
	MaxSPSCCapacity = 1 << 40
	maxRecordLength = 1 << 30
)

// SPSCMaxMessage is the largest payload a ring of the given capacity accepts.
// A record of at most capacity/2 bytes always fits once the ring is empty,
// whatever the wrap position (it fits either before the end of the ring or,
// after a padding record, at its start), so a blocked producer always makes
// progress eventually.
func SPSCMaxMessage(capacity uint64) uint32 {
	r := capacity / 2
	if r > maxRecordLength {
		r = maxRecordLength
	}
	return uint32(r - RecordHeaderSize)
}

// RecordSize is the number of ring bytes a message of n payload bytes takes.
func RecordSize(n int) uint64 { return alignUp(uint64(n)+RecordHeaderSize, RecordAlign) }

// PlanSPSC lays out an SPSC segment whose ring holds capacity bytes (a power
// of two) and accepts payloads of up to maxMessage bytes (0 means the largest
// the capacity allows).
func PlanSPSC(capacity uint64, maxMessage uint32) (Header, error) {
	if capacity < MinSPSCCapacity || capacity > MaxSPSCCapacity || bits.OnesCount64(capacity) != 1 {
		return Header{}, fmt.Errorf("%w: capacity %d is not a power of two in [%d, %d]",
			ErrInvalidConfig, capacity, MinSPSCCapacity, uint64(MaxSPSCCapacity))
	}
	limit := SPSCMaxMessage(capacity)
	if maxMessage == 0 {
		maxMessage = limit
	}
	if maxMessage > limit {
		return Header{}, fmt.Errorf("%w: max message %d exceeds %d for capacity %d",
			ErrInvalidConfig, maxMessage, limit, capacity)
	}
	h := planLines(2, SPSCWaiterSets)
	h.Kind = KindSPSC
	h.Capacity = capacity
	h.MaxMessage = maxMessage
	h.SlotSize = RecordAlign
	h.DataSize = capacity
	h.TotalSize = alignUp(h.Data+h.DataSize, PageSize)
	return h, nil
}

// planLines places the lines, sets waiter sets, a registry of n entries,
// and the data region on the next page boundary.
func planLines(n uint32, sets uint32) Header {
	h := Header{
		HeaderSize:    headerLines * LineSize,
		Producer:      lineProducer * LineSize,
		Consumer:      lineConsumer * LineSize,
		ProducerWake:  lineProducerWake * LineSize,
		ConsumerWake:  lineConsumerWake * LineSize,
		Waiters:       lineWaiters * LineSize,
		WaiterSets:    sets,
		Registry:      (lineWaiters + uint64(sets)) * LineSize,
		RegistryCount: n,
		EntrySize:     LineSize,
		Flags:         FlagSleeperBit,
	}
	h.Data = alignUp(h.Registry+uint64(n)*LineSize, PageSize)
	return h
}

func validateSPSC(h *Header) error {
	c := h.Capacity
	switch {
	case c < MinSPSCCapacity || c > MaxSPSCCapacity || bits.OnesCount64(c) != 1:
		return fmt.Errorf("%w: spsc capacity %d", ErrCorrupt, c)
	case h.DataSize != c:
		return fmt.Errorf("%w: spsc data size %d != capacity %d", ErrCorrupt, h.DataSize, c)
	case h.SlotSize != RecordAlign:
		return fmt.Errorf("%w: spsc record alignment %d", ErrCorrupt, h.SlotSize)
	case h.MaxMessage == 0 || h.MaxMessage > SPSCMaxMessage(c):
		return fmt.Errorf("%w: spsc max message %d for capacity %d", ErrCorrupt, h.MaxMessage, c)
	case h.RegistryCount != 2:
		return fmt.Errorf("%w: spsc registry has %d entries, want 2", ErrCorrupt, h.RegistryCount)
	}
	return nil
}

// CheckRecord validates the header of the record that starts at ring index
// idx, given that avail bytes from idx on are committed, in a ring of the
// given capacity whose payloads are at most maxMessage bytes. length and typ
// are the record's length and type words, already loaded from shared memory.
// It returns the ring bytes the record takes (its aligned length) and whether
// it is padding. A record that does not fit wholly inside both the committed
// bytes and the ring, or that has an unknown type, is corruption.
func CheckRecord(length, typ uint32, idx, avail, capacity uint64, maxMessage uint32) (size uint64, padding bool, err error) {
	size = alignUp(uint64(length), RecordAlign)
	if length < RecordHeaderSize || size > avail || size > capacity-idx {
		return 0, false, fmt.Errorf("%w: record at index %d has length %d (%d bytes committed, %d to the end of the ring)",
			ErrCorrupt, idx, length, avail, capacity-idx)
	}
	switch typ {
	case TypeMessage:
		if length-RecordHeaderSize > maxMessage {
			return 0, false, fmt.Errorf("%w: record at index %d carries %d bytes, more than the maximum %d",
				ErrCorrupt, idx, length-RecordHeaderSize, maxMessage)
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
