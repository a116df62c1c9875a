package wakeline

import (
	"testing"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/notify"
	"github.com/shmq/shmq/ring"
)

func segment(t *testing.T, flags uint32) *ring.Segment {
	t.Helper()
	h, err := layout.PlanSPSC(4096, 0)
	if err != nil {
		t.Fatal(err)
	}
	h.Flags = flags
	seg, err := ring.Create(ring.Memfd("wakeline"), h, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { seg.Close() })
	return seg
}

// TestNewFollowsFlag: the sleeper bit is the segment's choice.
func TestNewFollowsFlag(t *testing.T) {
	for _, flags := range []uint32{0, layout.FlagSleeperBit} {
		seg := segment(t, flags)
		l, err := New(seg, seg.Header().ConsumerWake, layout.WaiterSetConsumers)
		if err != nil {
			t.Fatal(err)
		}
		if l.SleeperBit != (flags != 0) {
			t.Errorf("flags %#x: SleeperBit %v", flags, l.SleeperBit)
		}
	}
}

// TestWakeSweepsWithoutWaking: a registration whose holder is gone (here an
// entry nobody attached, whose lock is free) and which never set the
// sleeper bit makes no wake, and is still swept, once per period.
func TestWakeSweepsWithoutWaking(t *testing.T) {
	seg := segment(t, layout.FlagSleeperBit)
	l, err := New(seg, seg.Header().ConsumerWake, layout.WaiterSetConsumers)
	if err != nil {
		t.Fatal(err)
	}
	b := notify.NewFutex()
	defer b.Close()
	var w Waker
	l.Waiters.Add(layout.SPSCConsumerEntry)
	w.Wake(seg, l, b, nil, time.Hour)
	if l.Waiters.Any() {
		t.Fatal("the dead registration survived the first sweep")
	}
	if l.Seq.Load() != 0 {
		t.Fatalf("wake word %d: a wake without a sleeper", l.Seq.Load())
	}
	l.Waiters.Add(layout.SPSCConsumerEntry)
	w.Wake(seg, l, b, nil, time.Hour)
	if !l.Waiters.Any() {
		t.Fatal("swept again within the period")
	}
}
