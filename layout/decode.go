package layout

import (
	"errors"
	"fmt"
	"sort"
)

// Errors returned (wrapped) by Decode, CheckRecord and the packages above
// this one. Test for them with errors.Is.
var (
	// ErrNotSegment: the bytes do not start with Magic.
	ErrNotSegment = errors.New("shmq: not a shmq segment")
	// ErrNotReady: the creator has not yet published the header.
	ErrNotReady = errors.New("shmq: segment not initialized")
	// ErrVersion: a layout version this package does not implement.
	ErrVersion = errors.New("shmq: unsupported layout version")
	// ErrKind: a queue kind this package does not know, or not the kind asked for.
	ErrKind = errors.New("shmq: wrong queue kind")
	// ErrCorrupt: shared memory holds values that no correct peer writes.
	ErrCorrupt = errors.New("shmq: corrupt segment")
	// ErrInvalidConfig: parameters for a new segment are out of range.
	ErrInvalidConfig = errors.New("shmq: invalid queue configuration")
)

// MaxRegistryEntries bounds the registry: every entry has a bit in each
// waiter set (and a corrupt count cannot make a reader walk far).
const MaxRegistryEntries = WaiterSetBits

// Decode validates the header at the start of b, a segment whose mapped (and
// file) size is size bytes, and returns a private copy of it. b is untrusted:
// Decode never panics and never reads outside b, whatever it holds. It checks
// every region against size and against every other region, so that callers
// may index the mapping at the returned offsets without further checks.
//
// b may be live shared memory that a peer changes concurrently; callers that
// need a consistent snapshot copy it first.
func Decode(b []byte, size uint64) (Header, error) {
	var h Header
	if len(b) < headerLines*LineSize {
		return h, fmt.Errorf("%w: %d bytes are too few for a header", ErrNotSegment, len(b))
	}
	if m := le.Uint64(b[OffMagic:]); m != Magic {
		return h, fmt.Errorf("%w: magic %#016x", ErrNotSegment, m)
	}
	if s := le.Uint32(b[OffState:]); s != StateReady {
		if s == StateInit {
			return h, ErrNotReady
		}
		return h, fmt.Errorf("%w: state word %#x", ErrCorrupt, s)
	}
	if v := le.Uint32(b[OffVersion:]); v != Version {
		return h, fmt.Errorf("%w: version %d (this build implements %d)", ErrVersion, v, Version)
	}
	if ls := le.Uint32(b[OffLineSize:]); ls != LineSize {
		return h, fmt.Errorf("%w: line size %d", ErrCorrupt, ls)
	}
	h = Header{
		Kind:          Kind(le.Uint32(b[OffKind:])),
		Flags:         le.Uint32(b[OffFlags:]),
		TotalSize:     le.Uint64(b[OffTotalSize:]),
		Capacity:      le.Uint64(b[OffCapacity:]),
		MaxMessage:    le.Uint32(b[OffMaxMessage:]),
		SlotSize:      le.Uint32(b[OffSlotSize:]),
		CreatorPID:    le.Uint32(b[OffCreatorPID:]),
		CreatedNano:   int64(le.Uint64(b[OffCreatedNano:])),
		HeaderSize:    le.Uint32(b[OffHeaderSize:]),
		Producer:      le.Uint64(b[OffTabProducer:]),
		Consumer:      le.Uint64(b[OffTabConsumer:]),
		ProducerWake:  le.Uint64(b[OffTabProducerWake:]),
		ConsumerWake:  le.Uint64(b[OffTabConsumerWake:]),
		Registry:      le.Uint64(b[OffTabRegistry:]),
		RegistryCount: le.Uint32(b[OffTabRegistryCount:]),
		EntrySize:     le.Uint32(b[OffTabEntrySize:]),
		Data:          le.Uint64(b[OffTabData:]),
		DataSize:      le.Uint64(b[OffTabDataSize:]),
		Waiters:       le.Uint64(b[OffTabWaiters:]),
		WaiterSets:    le.Uint32(b[OffTabWaiterSets:]),
	}
	if err := h.validate(size); err != nil {
		return Header{}, err
	}
	return h, nil
}

func (h *Header) validate(size uint64) error {
	known := FlagSleeperBit
	switch h.Kind {
	case KindMPMC:
		known |= FlagLocked
	case KindPubSub:
		known |= FlagLossy
	}
	if h.Flags&^known != 0 {
		return fmt.Errorf("%w: unknown flags %#x", ErrVersion, h.Flags)
	}
	if h.TotalSize != size || size%PageSize != 0 {
		return fmt.Errorf("%w: header says %d bytes, segment has %d", ErrCorrupt, h.TotalSize, size)
	}
	if h.HeaderSize != headerLines*LineSize {
		return fmt.Errorf("%w: header size %d", ErrCorrupt, h.HeaderSize)
	}
	if h.RegistryCount == 0 || h.RegistryCount > MaxRegistryEntries || h.EntrySize != LineSize {
		return fmt.Errorf("%w: registry of %d entries of %d bytes", ErrCorrupt, h.RegistryCount, h.EntrySize)
	}
	if want := kindWaiterSets(h.Kind); want != 0 && h.WaiterSets != want {
		return fmt.Errorf("%w: %d waiter sets for a %v queue (want %d)", ErrCorrupt, h.WaiterSets, h.Kind, want)
	}
	regions := []region{
		{"header", 0, uint64(h.HeaderSize)},
		{"producer line", h.Producer, LineSize},
		{"consumer line", h.Consumer, LineSize},
		{"producer wake line", h.ProducerWake, LineSize},
		{"consumer wake line", h.ConsumerWake, LineSize},
		{"waiter sets", h.Waiters, uint64(h.WaiterSets) * LineSize},
		{"registry", h.Registry, uint64(h.RegistryCount) * LineSize},
		{"data", h.Data, h.DataSize},
	}
	if err := checkRegions(regions, size); err != nil {
		return err
	}
	switch h.Kind {
	case KindSPSC:
		return validateSPSC(h)
	case KindMPMC:
		return validateMPMC(h)
	case KindPubSub:
		return validatePubSub(h)
	}
	return fmt.Errorf("%w: kind %d", ErrKind, uint32(h.Kind))
}

// kindWaiterSets is the number of waiter sets a queue of kind k has, 0 for
// an unknown kind (rejected after the region checks).
func kindWaiterSets(k Kind) uint32 {
	switch k {
	case KindSPSC:
		return SPSCWaiterSets
	case KindMPMC:
		return MPMCWaiterSets
	case KindPubSub:
		return PubSubWaiterSets
	}
	return 0
}

type region struct {
	name      string
	off, size uint64
}

// checkRegions requires every region to be line-aligned, non-empty, inside
// the segment and disjoint from the others.
func checkRegions(rs []region, size uint64) error {
	for _, r := range rs {
		if r.off%LineSize != 0 || r.size == 0 || r.off > size || r.size > size-r.off {
			return fmt.Errorf("%w: %s at %d+%d outside a %d-byte segment or misaligned",
				ErrCorrupt, r.name, r.off, r.size, size)
		}
	}
	sorted := append([]region(nil), rs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].off < sorted[j].off })
	for i := 1; i < len(sorted); i++ {
		p, r := sorted[i-1], sorted[i]
		if p.off+p.size > r.off {
			return fmt.Errorf("%w: %s overlaps %s", ErrCorrupt, p.name, r.name)
		}
	}
	return nil
}
