package layout

import (
	"errors"
	"testing"
)

func encodedMPMC(t testing.TB, slots uint64, slotSize, maxMsg, registry uint32) ([]byte, Header) {
	t.Helper()
	h, err := PlanMPMC(slots, slotSize, maxMsg, registry)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, h.TotalSize)
	Encode(b, &h)
	le.PutUint32(b[OffState:], StateReady)
	return b, h
}

func TestPlanMPMC(t *testing.T) {
	for _, tc := range []struct {
		slots                    uint64
		slotSize, maxMsg, reg    uint32
		wantSlotSize, wantMaxMsg uint32
	}{
		{1, 64, 0, 1, 64, 48},
		{2, 0, 64, 2, 128, 64},
		{1024, 256, 100, 64, 256, 100},
		{1 << 16, 64, 48, MaxMPMCRegistry, 64, 48},
	} {
		b, h := encodedMPMC(t, tc.slots, tc.slotSize, tc.maxMsg, tc.reg)
		if h.SlotSize != tc.wantSlotSize || h.MaxMessage != tc.wantMaxMsg {
			t.Errorf("%+v: slot size %d, max %d", tc, h.SlotSize, h.MaxMessage)
		}
		got, err := Decode(b, uint64(len(b)))
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if got != h || got.Data%PageSize != 0 || got.DataSize != tc.slots*uint64(h.SlotSize) {
			t.Fatalf("decoded %+v, encoded %+v", got, h)
		}
	}
	for _, tc := range []struct {
		slots                 uint64
		slotSize, maxMsg, reg uint32
	}{
		{0, 64, 0, 1}, {3, 64, 0, 1}, {MaxMPMCSlots * 2, 64, 0, 1},
		{4, 32, 0, 1}, {4, 100, 0, 1}, {4, MaxSlotSize * 2, 0, 1},
		{4, 64, 49, 1}, {4, 0, 0, 1}, {4, 64, 0, 0}, {4, 64, 0, MaxMPMCRegistry + 1},
		{MaxMPMCSlots, MaxSlotSize, 0, 1},
	} {
		if _, err := PlanMPMC(tc.slots, tc.slotSize, tc.maxMsg, tc.reg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: %v, want ErrInvalidConfig", tc, err)
		}
	}
}

func TestDecodeRejectsMPMC(t *testing.T) {
	for _, tc := range []struct {
		name  string
		off   int
		width int
		value uint64
	}{
		{"slots not power of two", OffCapacity, 8, 3},
		{"slots mismatch", OffCapacity, 8, 8},
		{"slot size unaligned", OffSlotSize, 4, 100},
		{"slot size mismatch", OffSlotSize, 4, 128},
		{"max message too large", OffMaxMessage, 4, 49},
		{"max message zero", OffMaxMessage, 4, 0},
		{"data size", OffTabDataSize, 8, 64 * 3},
	} {
		b, _ := encodedMPMC(t, 4, 64, 0, 4)
		if tc.width == 8 {
			le.PutUint64(b[tc.off:], tc.value)
		} else {
			le.PutUint32(b[tc.off:], uint32(tc.value))
		}
		if _, err := Decode(b, uint64(len(b))); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", tc.name, err)
		}
	}
}

// TestMPMCRegistryBelowOrphan: registry indices stay below the reserved
// owners and within a waiter set, so an MPMC header with MaxMPMCRegistry
// entries decodes and one with a registry entry more is corrupt.
func TestMPMCRegistryBelowOrphan(t *testing.T) {
	if MaxMPMCRegistry >= SeqOwnerTomb || SeqOwnerTomb >= SeqOwnerOrphan || SeqOwnerOrphan != SeqOwnerMask ||
		MaxMPMCRegistry > WaiterSetBits || MaxMPMCRegistry > MaxRegistryEntries {
		t.Fatalf("MaxMPMCRegistry %d, SeqOwnerTomb %#x, SeqOwnerOrphan %#x", MaxMPMCRegistry, SeqOwnerTomb, SeqOwnerOrphan)
	}
	b, _ := encodedMPMC(t, 4, 64, 0, MaxMPMCRegistry)
	if _, err := Decode(b, uint64(len(b))); err != nil {
		t.Fatalf("registry of %d entries: %v", MaxMPMCRegistry, err)
	}
	le.PutUint32(b[OffTabRegistryCount:], MaxMPMCRegistry+1)
	if _, err := Decode(b, uint64(len(b))); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("registry of %d entries: %v, want ErrCorrupt", MaxMPMCRegistry+1, err)
	}
}

func TestSeqWord(t *testing.T) {
	const capacity = 4
	for _, pos := range []uint64{0, 1, 1<<46 - 1, 1 << 46, ^uint64(0), ^uint64(0) - 2} {
		for st := uint32(0); st < 4; st++ {
			w := SeqWord(pos, st, 0xBEEF)
			if SeqOwner(w) != 0xBEEF || SeqState(w) != st {
				t.Fatalf("pos %d state %d: word %#x", pos, st, w)
			}
			if d := SeqDiff(w, pos); d != int64(st) {
				t.Fatalf("pos %d state %d: diff %d", pos, st, d)
			}
			if d := SeqDiff(w, pos+capacity); d != int64(st)-4*capacity {
				t.Fatalf("pos %d state %d: diff to next lap %d", pos, st, d)
			}
			if d := SeqDiff(w, pos-capacity); d != int64(st)+4*capacity {
				t.Fatalf("pos %d state %d: diff to previous lap %d", pos, st, d)
			}
		}
	}
}

// TestMPMCFlags: an MPMC header accepts exactly FlagLocked and
// FlagSleeperBit; any other bit, and FlagLocked on an SPSC header, is an
// unknown flag (ErrVersion).
func TestMPMCFlags(t *testing.T) {
	for _, tc := range []struct {
		flags uint32
		ok    bool
	}{{0, true}, {FlagLocked, true}, {FlagSleeperBit, true}, {FlagLocked | FlagSleeperBit, true}, {2, false}, {FlagLocked | 8, false}, {1 << 31, false}} {
		b, h := encodedMPMC(t, 4, 64, 0, 4)
		le.PutUint32(b[OffFlags:], tc.flags)
		got, err := Decode(b, uint64(len(b)))
		if tc.ok {
			if err != nil || got.Flags != tc.flags {
				t.Errorf("flags %#x: %v, decoded %#x", tc.flags, err, got.Flags)
			}
			h.Flags = tc.flags
			if got != h {
				t.Errorf("flags %#x: decoded %+v, encoded %+v", tc.flags, got, h)
			}
		} else if !errors.Is(err, ErrVersion) {
			t.Errorf("flags %#x: %v, want ErrVersion", tc.flags, err)
		}
	}
	h, err := PlanSPSC(4096, 0)
	if err != nil {
		t.Fatal(err)
	}
	h.Flags = FlagLocked
	b := make([]byte, h.TotalSize)
	Encode(b, &h)
	le.PutUint32(b[OffState:], StateReady)
	if _, err := Decode(b, uint64(len(b))); !errors.Is(err, ErrVersion) {
		t.Errorf("spsc with FlagLocked: %v, want ErrVersion", err)
	}
}

// TestLockedWords: the locked-mode words fit in a wake line after the
// parking words, 4-byte aligned and disjoint, and the mutexes' lock bytes
// follow the registry's.
func TestLockedWords(t *testing.T) {
	offs := []int{WakeSeq, WakeSemCount, WakeMutexState, WakeMutexOwner}
	for i, o := range offs {
		if o%4 != 0 || o+4 > LineSize || (i > 0 && o <= offs[i-1]) {
			t.Fatalf("word %d at %d", i, o)
		}
	}
	if EntryUnits%4 != 0 || EntryUnits <= EntryWakes || EntryUnits+4 > LineSize {
		t.Fatalf("EntryUnits at %d", EntryUnits)
	}
	for _, n := range []uint32{1, 64, MaxRegistryEntries} {
		last := EntryLockByte(int(n) - 1)
		p, c := MutexLockByte(n, MutexProducers), MutexLockByte(n, MutexConsumers)
		if p != last+1 || c != p+1 || p == InitLockByte {
			t.Fatalf("registry %d: last entry byte %d, mutex bytes %d and %d", n, last, p, c)
		}
	}
}
