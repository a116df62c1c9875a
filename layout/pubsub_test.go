package layout

import (
	"errors"
	"testing"
)

func encodedPubSub(t testing.TB, capacity uint64, subs uint32, lossy bool) ([]byte, Header) {
	t.Helper()
	h, err := PlanPubSub(capacity, 0, subs, lossy)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, h.TotalSize)
	Encode(b, &h)
	le.PutUint32(b[OffState:], StateReady)
	return b, h
}

func TestPubSubRoundTrip(t *testing.T) {
	for _, c := range []struct {
		capacity uint64
		subs     uint32
		lossy    bool
	}{{MinPubSubCapacity, 1, false}, {4096, 64, true}, {1 << 20, MaxPubSubSubscribers, false}} {
		b, h := encodedPubSub(t, c.capacity, c.subs, c.lossy)
		got, err := Decode(b, uint64(len(b)))
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		if got != h {
			t.Fatalf("%+v: decoded %+v, encoded %+v", c, got, h)
		}
		if got.Kind != KindPubSub || got.RegistryCount != c.subs+1 || got.WaiterSets != PubSubWaiterSets ||
			(got.Flags&FlagLossy != 0) != c.lossy || got.Data%PageSize != 0 {
			t.Fatalf("%+v: %+v", c, got)
		}
		if got.MaxMessage != PubSubMaxMessage(c.capacity) || PubSubRecordSize(int(got.MaxMessage)) > c.capacity/2 {
			t.Fatalf("%+v: max message %d", c, got.MaxMessage)
		}
	}
}

func TestPlanPubSubRejects(t *testing.T) {
	for _, c := range []struct {
		capacity uint64
		max      uint32
		subs     uint32
	}{
		{32, 0, 1}, {100, 0, 1}, {MaxPubSubCapacity * 2, 0, 1},
		{1024, 1024/2 - PubSubRecordHeaderSize + 1, 1},
		{1024, 0, 0}, {1024, 0, MaxPubSubSubscribers + 1},
	} {
		if _, err := PlanPubSub(c.capacity, c.max, c.subs, false); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: %v, want ErrInvalidConfig", c, err)
		}
	}
}

func TestPubSubDecodeRejects(t *testing.T) {
	cases := []struct {
		name  string
		off   int
		width int
		value uint64
		want  error
	}{
		{"flags: locked is MPMC's", OffFlags, 4, uint64(FlagLocked), ErrVersion},
		{"capacity", OffCapacity, 8, 2048, ErrCorrupt},
		{"record alignment", OffSlotSize, 4, 8, ErrCorrupt},
		{"max message", OffMaxMessage, 4, 4096, ErrCorrupt},
		{"one waiter set", OffTabWaiterSets, 4, 1, ErrCorrupt},
		{"registry of one", OffTabRegistryCount, 4, 1, ErrCorrupt},
	}
	for _, c := range cases {
		b, _ := encodedPubSub(t, 4096, 8, false)
		switch c.width {
		case 4:
			le.PutUint32(b[c.off:], uint32(c.value))
		case 8:
			le.PutUint64(b[c.off:], c.value)
		}
		if _, err := Decode(b, uint64(len(b))); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestCheckPubSubRecord(t *testing.T) {
	const capacity, max = 1024, 200
	cases := []struct {
		name        string
		length, typ uint32
		idx, avail  uint64
		size        uint64
		padding     bool
		ok          bool
	}{
		{"message", 16 + 5, TypeMessage, 0, 64, 32, false, true},
		{"empty message", 16, TypeMessage, 0, 16, 16, false, true},
		{"padding to the end", 64, TypePadding, capacity - 64, 64, 64, true, true},
		{"padding short of the end", 32, TypePadding, capacity - 64, 64, 0, false, false},
		{"beyond committed", 16 + 40, TypeMessage, 0, 32, 0, false, false},
		{"beyond the ring", 16 + 40, TypeMessage, capacity - 32, 64, 0, false, false},
		{"shorter than a header", 8, TypeMessage, 0, 64, 0, false, false},
		{"over the maximum", 16 + max + 1, TypeMessage, 0, 512, 0, false, false},
		{"unknown type", 32, 7, 0, 64, 0, false, false},
	}
	for _, c := range cases {
		size, pad, err := CheckPubSubRecord(c.length, c.typ, c.idx, c.avail, capacity, max)
		if c.ok != (err == nil) || (err != nil && !errors.Is(err, ErrCorrupt)) {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if c.ok && (size != c.size || pad != c.padding) {
			t.Errorf("%s: size %d padding %v, want %d %v", c.name, size, pad, c.size, c.padding)
		}
	}
}

func TestPubSubSlack(t *testing.T) {
	if PubSubSlack(64) != PubSubRecordAlign || PubSubSlack(1<<20) != 1<<17 {
		t.Fatalf("slack %d, %d", PubSubSlack(64), PubSubSlack(1<<20))
	}
}
