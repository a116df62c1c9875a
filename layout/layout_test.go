package layout

import (
	"errors"
	"testing"
)

func encoded(t testing.TB, capacity uint64) ([]byte, Header) {
	t.Helper()
	h, err := PlanSPSC(capacity, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, h.TotalSize)
	Encode(b, &h)
	le.PutUint32(b[OffState:], StateReady)
	return b, h
}

func TestDecodeRoundTrip(t *testing.T) {
	for _, c := range []uint64{MinSPSCCapacity, 4096, 1 << 20} {
		b, h := encoded(t, c)
		got, err := Decode(b, uint64(len(b)))
		if err != nil {
			t.Fatalf("capacity %d: %v", c, err)
		}
		if got != h {
			t.Fatalf("capacity %d: decoded %+v, encoded %+v", c, got, h)
		}
		if got.Data%PageSize != 0 || got.TotalSize != got.Data+alignUp(c, PageSize) {
			t.Fatalf("capacity %d: data at %d, total %d", c, got.Data, got.TotalSize)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	cases := []struct {
		name  string
		off   int
		width int
		value uint64
		want  error
	}{
		{"magic", OffMagic, 8, 0x1234, ErrNotSegment},
		{"state init", OffState, 4, uint64(StateInit), ErrNotReady},
		{"state garbage", OffState, 4, 7, ErrCorrupt},
		{"version", OffVersion, 4, 1, ErrVersion},
		{"kind", OffKind, 4, 9, ErrKind},
		{"flags", OffFlags, 4, 1, ErrVersion},
		{"line size", OffLineSize, 4, 64, ErrCorrupt},
		{"total size", OffTotalSize, 8, 1 << 40, ErrCorrupt},
		{"capacity not power of two", OffCapacity, 8, 4095, ErrCorrupt},
		{"capacity mismatch", OffCapacity, 8, 2048, ErrCorrupt},
		{"max message too large", OffMaxMessage, 4, 4096, ErrCorrupt},
		{"max message zero", OffMaxMessage, 4, 0, ErrCorrupt},
		{"record alignment", OffSlotSize, 4, 16, ErrCorrupt},
		{"header size", OffHeaderSize, 4, 128, ErrCorrupt},
		{"producer misaligned", OffTabProducer, 8, 130, ErrCorrupt},
		{"producer beyond end", OffTabProducer, 8, ^uint64(0) - 127, ErrCorrupt},
		{"consumer overlaps producer", OffTabConsumer, 8, 2 * LineSize, ErrCorrupt},
		{"wake line inside header", OffTabProducerWake, 8, 0, ErrCorrupt},
		{"registry count zero", OffTabRegistryCount, 4, 0, ErrCorrupt},
		{"registry count huge", OffTabRegistryCount, 4, 1 << 31, ErrCorrupt},
		{"registry count three", OffTabRegistryCount, 4, 3, ErrCorrupt},
		{"entry size", OffTabEntrySize, 4, 64, ErrCorrupt},
		{"data overlaps registry", OffTabData, 8, 6 * LineSize, ErrCorrupt},
		{"data size overflows", OffTabDataSize, 8, ^uint64(0), ErrCorrupt},
		{"waiter sets count", OffTabWaiterSets, 4, 3, ErrCorrupt},
		{"waiter sets overlap registry", OffTabWaiters, 8, 7 * LineSize, ErrCorrupt},
		{"waiter sets misaligned", OffTabWaiters, 8, 6*LineSize + 8, ErrCorrupt},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := encoded(t, 4096)
			switch tc.width {
			case 4:
				le.PutUint32(b[tc.off:], uint32(tc.value))
			case 8:
				le.PutUint64(b[tc.off:], tc.value)
			}
			_, err := Decode(b, uint64(len(b)))
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestDecodeShortOrWrongSize(t *testing.T) {
	b, _ := encoded(t, 4096)
	if _, err := Decode(b[:100], 100); !errors.Is(err, ErrNotSegment) {
		t.Fatalf("short buffer: %v", err)
	}
	if _, err := Decode(b, uint64(len(b))+PageSize); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("size mismatch: %v", err)
	}
}

func TestPlanSPSCRejects(t *testing.T) {
	for _, c := range []uint64{0, 16, 100, 3 << 10, MaxSPSCCapacity * 2} {
		if _, err := PlanSPSC(c, 0); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("capacity %d: %v", c, err)
		}
	}
	if _, err := PlanSPSC(64, 25); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("max message above capacity/2-8 accepted: %v", err)
	}
	if h, err := PlanSPSC(64, 0); err != nil || h.MaxMessage != 24 {
		t.Errorf("PlanSPSC(64) max message = %d, %v; want 24", h.MaxMessage, err)
	}
}

func TestCheckRecord(t *testing.T) {
	const capacity, max = 256, 120
	cases := []struct {
		name              string
		length, typ       uint32
		idx, avail        uint64
		wantSize          uint64
		wantPad, wantFail bool
	}{
		{"message", 8 + 5, TypeMessage, 0, 256, 16, false, false},
		{"largest message", 8 + max, TypeMessage, 0, 256, 128, false, false},
		{"message over max", 8 + max + 1, TypeMessage, 0, 256, 0, false, true},
		{"length below header", 7, TypeMessage, 0, 256, 0, false, true},
		{"zero length", 0, TypeMessage, 0, 256, 0, false, true},
		{"beyond committed", 8 + 16, TypeMessage, 0, 16, 0, false, true},
		{"beyond ring end", 8 + 16, TypeMessage, 240, 256, 0, false, true},
		{"huge length", ^uint32(0), TypeMessage, 0, 256, 0, false, true},
		{"padding to end", 16, TypePadding, 240, 16, 16, true, false},
		{"padding short of end", 8, TypePadding, 240, 16, 0, false, true},
		{"unknown type", 16, 7, 0, 256, 0, false, true},
	}
	for _, tc := range cases {
		size, pad, err := CheckRecord(tc.length, tc.typ, tc.idx, tc.avail, capacity, max)
		if tc.wantFail {
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s: err = %v, want ErrCorrupt", tc.name, err)
			}
			continue
		}
		if err != nil || size != tc.wantSize || pad != tc.wantPad {
			t.Errorf("%s: got (%d, %v, %v), want (%d, %v, nil)", tc.name, size, pad, err, tc.wantSize, tc.wantPad)
		}
	}
}
