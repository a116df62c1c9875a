package interop

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shmq/shmq/layout"
)

// TestDecodeAgrees runs shmq_decode (shmq.h's header validation) and
// layout.Decode over the same spoiled headers, SPSC, MPMC and pub/sub (both
// policies), and requires
// the same verdict: accepted, or rejected with the same class of error
// (LAYOUT.md section 10 fixes the order of the checks, so the first
// failing one decides).
func TestDecodeAgrees(t *testing.T) {
	cc := compiler(t)
	bin := build(t, cc, t.TempDir(), "shmq_decode")
	spsc, err := layout.PlanSPSC(4096, 0)
	if err != nil {
		t.Fatal(err)
	}
	mpmc, err := layout.PlanMPMC(4, 64, 0, 70)
	if err != nil {
		t.Fatal(err)
	}
	pubsub, err := layout.PlanPubSub(4096, 0, 4, false)
	if err != nil {
		t.Fatal(err)
	}
	lossy, err := layout.PlanPubSub(1<<16, 1000, 70, true)
	if err != nil {
		t.Fatal(err)
	}
	type spoil struct {
		name  string
		off   int
		width int // 4 or 8 bytes; 0: truncate the image to value bytes
		value uint64
	}
	spoils := []spoil{
		{"intact", 0, 0, 0},
		{"magic", layout.OffMagic, 8, 0x1234},
		{"state init", layout.OffState, 4, uint64(layout.StateInit)},
		{"state garbage", layout.OffState, 4, 7},
		{"version 1", layout.OffVersion, 4, 1},
		{"version 3", layout.OffVersion, 4, 3},
		{"kind unknown", layout.OffKind, 4, 9},
		{"kind swapped", layout.OffKind, 4, uint64(layout.KindMPMC)},
		{"kind pubsub", layout.OffKind, 4, uint64(layout.KindPubSub)},
		{"kind spsc", layout.OffKind, 4, uint64(layout.KindSPSC)},
		{"flags locked", layout.OffFlags, 4, uint64(layout.FlagLocked)},
		{"flags lossy", layout.OffFlags, 4, uint64(layout.FlagLossy)},
		{"flags none", layout.OffFlags, 4, 0},
		{"capacity 32", layout.OffCapacity, 8, 32},
		{"capacity 64", layout.OffCapacity, 8, 64},
		{"max message 2032", layout.OffMaxMessage, 4, 2032},
		{"max message 2033", layout.OffMaxMessage, 4, 2033},
		{"slot size 16", layout.OffSlotSize, 4, 16},
		{"data size 4096", layout.OffTabDataSize, 8, 4096},
		{"flags unknown", layout.OffFlags, 4, 8},
		{"flags sleeper only", layout.OffFlags, 4, 4},
		{"flags locked sleeper", layout.OffFlags, 4, 5},
		{"line size", layout.OffLineSize, 4, 64},
		{"total size", layout.OffTotalSize, 8, 1 << 40},
		{"capacity", layout.OffCapacity, 8, 3},
		{"max message zero", layout.OffMaxMessage, 4, 0},
		{"max message huge", layout.OffMaxMessage, 4, 1 << 20},
		{"slot size", layout.OffSlotSize, 4, 100},
		{"header size", layout.OffHeaderSize, 4, 128},
		{"producer misaligned", layout.OffTabProducer, 8, 130},
		{"producer beyond end", layout.OffTabProducer, 8, ^uint64(0) - 127},
		{"consumer overlaps producer", layout.OffTabConsumer, 8, 2 * layout.LineSize},
		{"wake line inside header", layout.OffTabProducerWake, 8, 0},
		{"registry count zero", layout.OffTabRegistryCount, 4, 0},
		{"registry count one", layout.OffTabRegistryCount, 4, 1},
		{"registry count two", layout.OffTabRegistryCount, 4, 2},
		{"registry count 1024", layout.OffTabRegistryCount, 4, 1024},
		{"registry count 1025", layout.OffTabRegistryCount, 4, 1025},
		{"registry count three", layout.OffTabRegistryCount, 4, 3},
		{"entry size", layout.OffTabEntrySize, 4, 64},
		{"data overlaps registry", layout.OffTabData, 8, 6 * layout.LineSize},
		{"data size overflows", layout.OffTabDataSize, 8, ^uint64(0)},
		{"waiter sets zero", layout.OffTabWaiterSets, 4, 0},
		{"waiter sets three", layout.OffTabWaiterSets, 4, 3},
		{"waiter sets six", layout.OffTabWaiterSets, 4, 6},
		{"waiter sets overlap registry", layout.OffTabWaiters, 8, 7 * layout.LineSize},
		{"waiter sets misaligned", layout.OffTabWaiters, 8, 6*layout.LineSize + 8},
		{"waiter sets in header", layout.OffTabWaiters, 8, layout.LineSize},
		{"waiter sets beyond end", layout.OffTabWaiters, 8, 1 << 40},
		{"short image", 0, 0, 100},
	}
	type image struct {
		name string
		b    []byte
	}
	var images []image
	for _, base := range []struct {
		name string
		h    layout.Header
	}{{"spsc", spsc}, {"mpmc", mpmc}, {"pubsub", pubsub}, {"pubsub-lossy", lossy}} {
		for _, sp := range spoils {
			b := make([]byte, base.h.TotalSize)
			layout.Encode(b, &base.h)
			binary.LittleEndian.PutUint32(b[layout.OffState:], layout.StateReady)
			switch sp.width {
			case 4:
				binary.LittleEndian.PutUint32(b[sp.off:], uint32(sp.value))
			case 8:
				binary.LittleEndian.PutUint64(b[sp.off:], sp.value)
			default:
				if sp.value != 0 {
					b = b[:sp.value]
				}
			}
			images = append(images, image{base.name + "/" + sp.name, b})
		}
		// An unknown kind whose common header is valid (ErrKind), and one
		// with no waiter sets (ErrCorrupt: the region is empty).
		for _, sets := range []uint32{base.h.WaiterSets, 0} {
			b := make([]byte, base.h.TotalSize)
			layout.Encode(b, &base.h)
			binary.LittleEndian.PutUint32(b[layout.OffState:], layout.StateReady)
			binary.LittleEndian.PutUint32(b[layout.OffKind:], 7)
			binary.LittleEndian.PutUint32(b[layout.OffTabWaiterSets:], sets)
			images = append(images, image{fmt.Sprintf("%s/kind 7 with %d waiter sets", base.name, sets), b})
		}
	}
	dir := t.TempDir()
	var files []string
	for i, im := range images {
		f := filepath.Join(dir, fmt.Sprint(i))
		if err := os.WriteFile(f, im.b, 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	lines := strings.Split(strings.TrimSpace(output(t, exec.Command(bin, files...))), "\n")
	if len(lines) != len(images) {
		t.Fatalf("shmq_decode printed %d lines for %d images", len(lines), len(images))
	}
	names := []struct {
		err  error
		name string
	}{
		{layout.ErrNotSegment, "not a shmq segment"},
		{layout.ErrNotReady, "segment not initialized"},
		{layout.ErrVersion, "unsupported layout version"},
		{layout.ErrKind, "wrong queue kind"},
		{layout.ErrCorrupt, "corrupt segment"},
	}
	accepted, rejected := 0, 0
	for i, im := range images {
		_, err := layout.Decode(im.b, uint64(len(im.b)))
		want := "ok"
		if err != nil {
			want = "unclassified: " + err.Error()
			for _, n := range names {
				if errors.Is(err, n.err) {
					want = n.name
					break
				}
			}
			rejected++
		} else {
			accepted++
		}
		if lines[i] != want {
			t.Errorf("%s: shmq_decode says %q, layout.Decode %q (%v)", im.name, lines[i], want, err)
		}
	}
	t.Logf("%d headers accepted and %d rejected alike", accepted, rejected)
}
