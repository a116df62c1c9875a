package interop

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmq/shmq/layout"
)

// TestHeaderConstants compares every constant and struct offset that
// shmq.h defines (printed by layout/c/shmq_offsets.c) with the Go layout
// package, and checks that the C header compiles cleanly on its own.
func TestHeaderConstants(t *testing.T) {
	cc := compiler(t)
	bin := build(t, cc, t.TempDir(), "shmq_offsets")
	got := map[string]uint64{}
	for _, line := range strings.Split(strings.TrimSpace(output(t, exec.Command(bin))), "\n") {
		k, v, ok := strings.Cut(line, "=")
		n, err := strconv.ParseUint(v, 10, 64)
		if !ok || err != nil {
			t.Fatalf("bad line %q", line)
		}
		got[k] = n
	}
	spsc4096, err := layout.PlanSPSC(4096, 0)
	if err != nil {
		t.Fatal(err)
	}
	mpmc64, err := layout.PlanMPMC(64, 0, 48, 64)
	if err != nil {
		t.Fatal(err)
	}
	pubsub4096, err := layout.PlanPubSub(4096, 0, 8, false)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{
		"Magic":      layout.Magic,
		"Version":    uint64(layout.Version),
		"LineSize":   layout.LineSize,
		"PageSize":   layout.PageSize,
		"HeaderSize": uint64(spsc4096.HeaderSize),
		"KindSPSC":   uint64(layout.KindSPSC),
		"KindMPMC":   uint64(layout.KindMPMC),
		"StateInit":  uint64(layout.StateInit),
		"StateReady": uint64(layout.StateReady),

		"OffMagic":            layout.OffMagic,
		"OffState":            layout.OffState,
		"OffVersion":          layout.OffVersion,
		"OffKind":             layout.OffKind,
		"OffFlags":            layout.OffFlags,
		"OffTotalSize":        layout.OffTotalSize,
		"OffCapacity":         layout.OffCapacity,
		"OffMaxMessage":       layout.OffMaxMessage,
		"OffSlotSize":         layout.OffSlotSize,
		"OffLineSize":         layout.OffLineSize,
		"OffCreatorPID":       layout.OffCreatorPID,
		"OffCreatedNano":      layout.OffCreatedNano,
		"OffHeaderSize":       layout.OffHeaderSize,
		"OffTabProducer":      layout.OffTabProducer,
		"OffTabConsumer":      layout.OffTabConsumer,
		"OffTabProducerWake":  layout.OffTabProducerWake,
		"OffTabConsumerWake":  layout.OffTabConsumerWake,
		"OffTabRegistry":      layout.OffTabRegistry,
		"OffTabRegistryCount": layout.OffTabRegistryCount,
		"OffTabEntrySize":     layout.OffTabEntrySize,
		"OffTabData":          layout.OffTabData,
		"OffTabDataSize":      layout.OffTabDataSize,
		"OffTabWaiters":       layout.OffTabWaiters,
		"OffTabWaiterSets":    layout.OffTabWaiterSets,

		"CursorPosition":  layout.CursorPosition,
		"WakeSeq":         layout.WakeSeq,
		"WakeSemCount":    layout.WakeSemCount,
		"WakeMutexState":  layout.WakeMutexState,
		"WakeMutexOwner":  layout.WakeMutexOwner,
		"EntryState":      layout.EntryState,
		"EntryRole":       layout.EntryRole,
		"EntryPID":        layout.EntryPID,
		"EntryGen":        layout.EntryGen,
		"EntryAttachNano": layout.EntryAttachNano,
		"EntryMessages":   layout.EntryMessages,
		"EntryBytes":      layout.EntryBytes,
		"EntryStalls":     layout.EntryStalls,
		"EntryWaits":      layout.EntryWaits,
		"EntryWakes":      layout.EntryWakes,
		"EntryUnits":      layout.EntryUnits,

		"WaiterSetWords":     layout.WaiterSetWords,
		"WaiterSetBits":      layout.WaiterSetBits,
		"WaiterSetProducers": layout.WaiterSetProducers,
		"WaiterSetConsumers": layout.WaiterSetConsumers,
		"WaiterSetFree":      layout.WaiterSetFree,
		"WaiterSetFilled":    layout.WaiterSetFilled,
		"WaiterSetMutexP":    layout.WaiterSetMutexP,
		"WaiterSetMutexC":    layout.WaiterSetMutexC,
		"SPSCWaiterSets":     layout.SPSCWaiterSets,
		"MPMCWaiterSets":     layout.MPMCWaiterSets,
		"WaiterSetLen1":      uint64(layout.WaiterSetLen(1)),
		"WaiterSetLen64":     uint64(layout.WaiterSetLen(64)),
		"WaiterSetLen65":     uint64(layout.WaiterSetLen(65)),
		"WaiterSetLen1024":   uint64(layout.WaiterSetLen(1024)),
		"WaiterSetSize":      layout.LineSize,

		"EntryFree":          uint64(layout.EntryFree),
		"EntryAttached":      uint64(layout.EntryAttached),
		"EntryDetached":      uint64(layout.EntryDetached),
		"RoleProducer":       uint64(layout.RoleProducer),
		"RoleConsumer":       uint64(layout.RoleConsumer),
		"InitLockByte":       layout.InitLockByte,
		"EntryLockByte0":     uint64(layout.EntryLockByte(0)),
		"EntryLockByte1":     uint64(layout.EntryLockByte(1)),
		"MutexProducers":     layout.MutexProducers,
		"MutexConsumers":     layout.MutexConsumers,
		"MutexLockByteP64":   uint64(layout.MutexLockByte(64, layout.MutexProducers)),
		"MutexLockByteC64":   uint64(layout.MutexLockByte(64, layout.MutexConsumers)),
		"SPSCProducerEntry":  layout.SPSCProducerEntry,
		"SPSCConsumerEntry":  layout.SPSCConsumerEntry,
		"MaxRegistryEntries": layout.MaxRegistryEntries,

		"RecordHeaderSize":   layout.RecordHeaderSize,
		"RecordAlign":        layout.RecordAlign,
		"RecordLength":       layout.RecordLength,
		"RecordType":         layout.RecordType,
		"TypeMessage":        layout.TypeMessage,
		"TypePadding":        uint64(layout.TypePadding),
		"MinSPSCCapacity":    layout.MinSPSCCapacity,
		"MaxSPSCCapacity":    layout.MaxSPSCCapacity,
		"SPSCMaxMessage4096": uint64(layout.SPSCMaxMessage(4096)),
		"SPSCMaxMessage8G":   uint64(layout.SPSCMaxMessage(1 << 33)),
		"RecordSize1":        layout.RecordSize(1),
		"RecordSize8":        layout.RecordSize(8),

		"SlotHeaderSize":  layout.SlotHeaderSize,
		"SlotAlign":       layout.SlotAlign,
		"MaxSlotSize":     layout.MaxSlotSize,
		"MaxMPMCSlots":    layout.MaxMPMCSlots,
		"MinSlotSize":     layout.MinSlotSize,
		"SlotSeq":         layout.SlotSeq,
		"SlotLength":      layout.SlotLength,
		"SlotProducer":    layout.SlotProducer,
		"SlotEmpty":       layout.SlotEmpty,
		"SlotWriting":     layout.SlotWriting,
		"SlotFull":        layout.SlotFull,
		"SlotReading":     layout.SlotReading,
		"SeqRankShift":    layout.SeqRankShift,
		"SeqOwnerMask":    layout.SeqOwnerMask,
		"SeqOwnerOrphan":  layout.SeqOwnerOrphan,
		"SeqOwnerTomb":    layout.SeqOwnerTomb,
		"MaxMPMCRegistry": layout.MaxMPMCRegistry,
		"SeqRankBits":     layout.SeqRankBits,
		"FlagLocked":      uint64(layout.FlagLocked),
		"FlagSleeperBit":  uint64(layout.FlagSleeperBit),
		// The sequence word's encoding and signed distance, including
		// positions that wrap 2^64 and 2^46.
		"SeqWordF5o7":     layout.SeqWord(5, layout.SlotFull, 7),
		"SeqWordWrapR":    layout.SeqWord(1<<64-1, layout.SlotReading, 65535),
		"SeqDiffLapAhead": uint64(layout.SeqDiff(layout.SeqWord(1024+3, layout.SlotEmpty, 0), 3)),
		"SeqDiffPrevLapR": uint64(layout.SeqDiff(layout.SeqWord(3, layout.SlotReading, 1), 1024+3)),
		"SeqDiffWrap":     uint64(layout.SeqDiff(layout.SeqWord(2, layout.SlotWriting, 0), 1<<64-2)),

		"KindPubSub":             uint64(layout.KindPubSub),
		"FlagLossy":              uint64(layout.FlagLossy),
		"PubSubWaiterSets":       layout.PubSubWaiterSets,
		"PubSubRecordHeaderSize": layout.PubSubRecordHeaderSize,
		"PubSubRecordAlign":      layout.PubSubRecordAlign,
		"PubSubRecordLength":     layout.PubSubRecordLength,
		"PubSubRecordType":       layout.PubSubRecordType,
		"PubSubRecordSeq":        layout.PubSubRecordSeq,
		"MinPubSubCapacity":      layout.MinPubSubCapacity,
		"MaxPubSubCapacity":      layout.MaxPubSubCapacity,
		"PubSubPublisherEntry":   layout.PubSubPublisherEntry,
		"PubSubFirstSubscriber":  layout.PubSubFirstSubscriber,
		"MaxPubSubSubscribers":   layout.MaxPubSubSubscribers,
		"PubTail":                layout.PubTail,
		"PubIntent":              layout.PubIntent,
		"PubOldest":              layout.PubOldest,
		"PubLimit":               layout.PubLimit,
		"PubWaitFor":             layout.PubWaitFor,
		"EntrySubPosition":       layout.EntrySubPosition,
		"EntrySubSeq":            layout.EntrySubSeq,
		"EntrySubLost":           layout.EntrySubLost,
		"PubSubMaxMessage4096":   uint64(layout.PubSubMaxMessage(4096)),
		"PubSubMaxMessage8G":     uint64(layout.PubSubMaxMessage(1 << 33)),
		"PubSubRecordSize1":      layout.PubSubRecordSize(1),
		"PubSubRecordSize16":     layout.PubSubRecordSize(16),
		"PubSubRecordSize17":     layout.PubSubRecordSize(17),
		"PubSubSlack64":          layout.PubSubSlack(64),
		"PubSubSlack4096":        layout.PubSubSlack(4096),

		// The placement that the Go creators write (readers use the table).
		"PlanProducerLine":     spsc4096.Producer,
		"PlanConsumerLine":     spsc4096.Consumer,
		"PlanProducerWakeLine": spsc4096.ProducerWake,
		"PlanConsumerWakeLine": spsc4096.ConsumerWake,
		"PlanWaiters":          spsc4096.Waiters,
		"PlanRegistrySPSC":     spsc4096.Registry,
		"PlanRegistryMPMC":     mpmc64.Registry,
		"PlanRegistryPubSub":   pubsub4096.Registry,

		// Timing and retry bounds of the Go packages, which LAYOUT.md
		// makes normative (mpmc/queue.go maxAttempts, mpmc/wait.go,
		// spsc/wait.go).
		"MPMCMaxAttempts":  1 << 20,
		"MPMCSuspectNs":    uint64(2 * time.Millisecond),
		"MPMCRecheckNs":    uint64(5 * time.Millisecond),
		"LivenessPeriodNs": uint64(100 * time.Millisecond),
		"SweepPeriodNs":    uint64(100 * time.Millisecond),
		// pubsub/queue.go maxAttempts, pubsub/wait.go livenessPeriod,
		// pubsub/publisher.go dropEvery.
		"PubSubMaxAttempts": 1 << 20,
		"PubSubLivenessNs":  uint64(50 * time.Millisecond),
		"PubSubDropNs":      uint64(10 * time.Millisecond),
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("shmq_offsets does not print %s", k)
			continue
		}
		if g != w {
			t.Errorf("%s: C has %d (%#x), Go has %d (%#x)", k, g, g, w, w)
		}
		// The struct mirror must agree too, where there is one.
		if s, ok := got["struct."+k]; ok && s != w {
			t.Errorf("offsetof for %s: C struct has %d, Go has %d", k, s, w)
		}
	}
	for k := range got {
		base := strings.TrimPrefix(k, "struct.")
		if _, ok := want[base]; !ok && k != "MaxNameLen" {
			t.Errorf("shmq_offsets prints %s, which this test does not check", k)
		}
	}
	if got["MaxNameLen"] != 30 { // ring.MaxNameLen
		t.Errorf("MaxNameLen: C has %d, ring has 30", got["MaxNameLen"])
	}
}
