package layout

import (
	"fmt"
	"math/bits"
)

// MPMC slot format. The data region is an array of Capacity slots of
// SlotSize bytes each (Capacity a power of two, SlotSize a multiple of
// SlotAlign). Position p (a free-running 64-bit counter) maps to slot
// p & (Capacity-1). Each slot starts with a 16-byte header:
//
//	offset 0  u64 sequence word: rank<<SeqRankShift | owner
//	offset 8  u32 payload length; 0 in a full slot marks a tombstone
//	offset 12 u32 registry index of the producer that wrote the slot
//	offset 16 payload, up to SlotSize-16 bytes
//
// The sequence word is Vyukov's per-slot sequence number extended with the
// slot's state and the registry index of the process that holds it, so that
// one compare-and-swap both claims a slot and records who claimed it:
//
//	rank  = position<<2 | state   (low 48 bits kept, so positions mod 2^46)
//	owner = registry index of the claimant (16 bits), or SeqOwnerOrphan
//
// A slot's rank only grows: E(p) < W(p) < F(p) < R(p) < E(p+Capacity).
// layout/LAYOUT.md §14 describes the protocol.
const (
	SlotHeaderSize = 16
	SlotSeq        = 0  // u64 sequence word
	SlotLength     = 8  // u32 payload length
	SlotProducer   = 12 // u32 registry index of the producer that wrote the payload
	SlotAlign      = 64 // slot sizes are multiples of this

	MinSlotSize  = SlotAlign
	MaxSlotSize  = 1 << 20
	MaxMPMCSlots = 1 << 24
	maxMPMCData  = 1 << 40

	// States in the low two bits of a rank.
	SlotEmpty   = 0 // E(p): free for the producer of position p
	SlotWriting = 1 // W(p): claimed by the producer in the owner field, being written
	SlotFull    = 2 // F(p): committed; owner is the producer (informational)
	SlotReading = 3 // R(p): claimed by the consumer in the owner field, being read

	SeqRankShift = 16                  // the owner takes the low 16 bits
	SeqOwnerMask = 1<<SeqRankShift - 1 // MaxRegistryEntries-1
	SeqRankBits  = 64 - SeqRankShift   // 48

	// SeqOwnerOrphan is the owner of a slot word that no registry entry
	// holds: R(p, SeqOwnerOrphan) is a message whose consumer is gone,
	// which the producer of position p+Capacity requeues, and
	// W(p, SeqOwnerOrphan) is such a message being requeued at p, complete,
	// which any process may publish (layout/LAYOUT.md §14.9).
	SeqOwnerOrphan = SeqOwnerMask
	// SeqOwnerTomb is the owner of F(p, SeqOwnerTomb), a tombstone: a
	// position that holds no message. It is made by one compare-and-swap
	// from a claim (a producer's W, a dead consumer's R), with no write to
	// the slot's bytes, so a process that does not own the slot exclusively
	// can still make it; consumers pass it without taking it, and the
	// producer of the next lap claims the slot straight from it
	// (layout/LAYOUT.md §14.6 and §14.7).
	SeqOwnerTomb = SeqOwnerMask - 1
	// MaxMPMCRegistry is the largest MPMC registry: every entry has a bit
	// in each waiter set, and entry indices stay below SeqOwnerTomb.
	MaxMPMCRegistry = WaiterSetBits
	seqRankMask     = 1<<SeqRankBits - 1 // ranks compare modulo 2^48
	seqRankSign     = 1 << (SeqRankBits - 1)
)

// SeqWord encodes a sequence word: the rank of position pos in state st,
// held by registry entry owner.
func SeqWord(pos uint64, st uint32, owner uint32) uint64 {
	return (pos<<2|uint64(st&3))<<SeqRankShift | uint64(owner&SeqOwnerMask)
}

// SeqDiff returns the signed distance, in rank units, from the rank of
// position pos in state SlotEmpty to the rank in sequence word w, computed
// modulo 2^48: 0 for E(pos), 1 for W(pos), 2 for F(pos), 3 for R(pos),
// 4*Capacity for E(pos+Capacity), -4*Capacity+3 for R(pos-Capacity).
func SeqDiff(w, pos uint64) int64 {
	d := (w>>SeqRankShift - pos<<2) & seqRankMask
	if d&seqRankSign != 0 {
		return int64(d) - (1 << SeqRankBits)
	}
	return int64(d)
}

// SeqOwner returns the owner field of sequence word w.
func SeqOwner(w uint64) uint32 { return uint32(w & SeqOwnerMask) }

// SeqState returns the state field of sequence word w.
func SeqState(w uint64) uint32 { return uint32(w>>SeqRankShift) & 3 }

// MPMCMaxMessage is the largest payload a slot of slotSize bytes holds.
func MPMCMaxMessage(slotSize uint32) uint32 { return slotSize - SlotHeaderSize }

// PlanMPMC lays out an MPMC segment of slots slots (a power of two) of
// slotSize bytes (a multiple of SlotAlign; 0 means the smallest that holds
// maxMessage), accepting payloads of up to maxMessage bytes (0 means all the
// slot holds), with a registry of registry entries.
func PlanMPMC(slots uint64, slotSize, maxMessage, registry uint32) (Header, error) {
	if slots == 0 || slots > MaxMPMCSlots || bits.OnesCount64(slots) != 1 {
		return Header{}, fmt.Errorf("%w: %d slots is not a power of two in [1, %d]",
			ErrInvalidConfig, slots, MaxMPMCSlots)
	}
	if slotSize == 0 {
		if maxMessage == 0 || maxMessage > MaxSlotSize-SlotHeaderSize {
			return Header{}, fmt.Errorf("%w: max message %d with no slot size", ErrInvalidConfig, maxMessage)
		}
		slotSize = uint32(alignUp(uint64(maxMessage)+SlotHeaderSize, SlotAlign))
	}
	if slotSize < MinSlotSize || slotSize > MaxSlotSize || slotSize%SlotAlign != 0 {
		return Header{}, fmt.Errorf("%w: slot size %d is not a multiple of %d in [%d, %d]",
			ErrInvalidConfig, slotSize, SlotAlign, MinSlotSize, MaxSlotSize)
	}
	if maxMessage == 0 {
		maxMessage = MPMCMaxMessage(slotSize)
	}
	if maxMessage > MPMCMaxMessage(slotSize) {
		return Header{}, fmt.Errorf("%w: max message %d exceeds %d for %d-byte slots",
			ErrInvalidConfig, maxMessage, MPMCMaxMessage(slotSize), slotSize)
	}
	if registry == 0 || registry > MaxMPMCRegistry {
		return Header{}, fmt.Errorf("%w: registry of %d entries (limits 1 and %d)",
			ErrInvalidConfig, registry, MaxMPMCRegistry)
	}
	if slots*uint64(slotSize) > maxMPMCData {
		return Header{}, fmt.Errorf("%w: %d slots of %d bytes exceed %d bytes",
			ErrInvalidConfig, slots, slotSize, uint64(maxMPMCData))
	}
	h := planLines(registry, MPMCWaiterSets)
	h.Kind = KindMPMC
	h.Capacity = slots
	h.SlotSize = slotSize
	h.MaxMessage = maxMessage
	h.DataSize = slots * uint64(slotSize)
	h.TotalSize = alignUp(h.Data+h.DataSize, PageSize)
	return h, nil
}

// validateMPMC checks the MPMC-specific header fields.
func validateMPMC(h *Header) error {
	c, s := h.Capacity, h.SlotSize
	switch {
	case c == 0 || c > MaxMPMCSlots || bits.OnesCount64(c) != 1:
		return fmt.Errorf("%w: mpmc slot count %d", ErrCorrupt, c)
	case s < MinSlotSize || s > MaxSlotSize || s%SlotAlign != 0:
		return fmt.Errorf("%w: mpmc slot size %d", ErrCorrupt, s)
	case h.DataSize != c*uint64(s):
		return fmt.Errorf("%w: mpmc data size %d != %d slots of %d bytes", ErrCorrupt, h.DataSize, c, s)
	case h.MaxMessage == 0 || h.MaxMessage > MPMCMaxMessage(s):
		return fmt.Errorf("%w: mpmc max message %d for %d-byte slots", ErrCorrupt, h.MaxMessage, s)
	case h.RegistryCount == 0 || h.RegistryCount > MaxMPMCRegistry:
		// Entry indices must stay below SeqOwnerTomb.
		return fmt.Errorf("%w: mpmc registry of %d entries", ErrCorrupt, h.RegistryCount)
	}
	return nil
}
