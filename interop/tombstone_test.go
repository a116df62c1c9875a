package interop

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/mpmc"
)

// Tombstones (LAYOUT.md section 14.6): F(p, SeqOwnerTomb), made by one CAS
// from a claim, holds no message. Consumers at its position pass it (one
// CAS of the dequeue cursor); the producer of the next lap claims the slot
// straight from it, moving the dequeue cursor past it first. These tests
// make tombstones on one side of the language boundary and pass or claim
// over them on the other.

// abandon makes a tombstone at the enqueue cursor as a producer that closes
// with a reservation does, and checks the word it leaves.
func abandon(t *testing.T, q *mpmc.Queue) {
	t.Helper()
	p, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Reserve(16); err != nil { // at position 0 in these tests
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if w := slotWord(t, q, 0); w != layout.SeqWord(0, layout.SlotFull, layout.SeqOwnerTomb) {
		t.Fatalf("after a Go producer closed with a reservation, slot 0 holds %#x, want F(0, tomb)", w)
	}
}

// slotWord loads the sequence word of slot i.
func slotWord(t *testing.T, q *mpmc.Queue, i uint64) uint64 {
	t.Helper()
	h := q.Segment().Header()
	w, err := q.Segment().Uint64(h.Data + i*uint64(h.SlotSize) + layout.SlotSeq)
	if err != nil {
		t.Fatal(err)
	}
	return w.Load()
}

// goTombstoneCPasses: a Go producer closes with a reservation; the C
// consumer passes the tombstone and receives what follows.
func goTombstoneCPasses(t *testing.T, bin string, env []string) {
	q, loc := newMPMC(t, mpmc.Config{Slots: 8, SlotSize: 64})
	abandon(t, q)
	p, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for seq := uint64(0); seq < 3; seq++ {
		if err := p.TrySend(mpmcMessage(make([]byte, 16), 0, seq)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.TrySend(mpmcMessage(make([]byte, 16), stopID, 0)); err != nil {
		t.Fatal(err)
	}
	out := output(t, mpmcEnv(bin, env, "SHMQ_TIMEOUT_MS=5000")("consume", loc))
	if !strings.HasPrefix(out, "run 0 0 2\nmessages=3 ") || !strings.HasSuffix(strings.TrimSpace(out), " skipped=1") {
		t.Fatalf("C consumer printed %q, want messages 0-2 of producer 0 and one tombstone passed", out)
	}
}

// cTombstoneGoPasses: a C producer closes with a reservation; the Go
// consumer passes the tombstone.
func cTombstoneGoPasses(t *testing.T, bin string, env []string) {
	q, loc := newMPMC(t, mpmc.Config{Slots: 8, SlotSize: 64})
	out := output(t, mpmcEnv(bin, env, "SHMQ_ABANDON_AFTER=2")("produce", loc, "3", "5", "16"))
	if !strings.HasPrefix(out, "messages=2 entry=0") {
		t.Fatalf("C producer printed %q, want 2 messages from entry 0", out)
	}
	if w := slotWord(t, q, 2); w != layout.SeqWord(2, layout.SlotFull, layout.SeqOwnerTomb) {
		t.Fatalf("after the C producer closed with a reservation, slot 2 holds %#x, want F(2, tomb)", w)
	}
	p, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.TrySend(mpmcMessage(make([]byte, 16), 0, 0)); err != nil {
		t.Fatal(err)
	}
	c, err := q.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sameIDs(t, "past the C tombstone", recvIDs(t, ctx, c, 3), []string{"3:0", "3:1", "0:0"})
	if c.Skipped() != 1 {
		t.Fatalf("Go consumer passed %d tombstones, want 1", c.Skipped())
	}
}

// cClaimsOverGoTombstone: a Go tombstone at position 0 is the only free
// slot of a full ring of 4; the C producer's claim at position 4 takes it
// without waiting for a consumer, and no consumer ever sees it.
func cClaimsOverGoTombstone(t *testing.T, bin string, env []string) {
	q, loc := newMPMC(t, mpmc.Config{Slots: 4, SlotSize: 64})
	abandon(t, q)
	p, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for seq := uint64(0); seq < 3; seq++ {
		if err := p.TrySend(mpmcMessage(make([]byte, 16), 0, seq)); err != nil {
			t.Fatal(err)
		}
	}
	out := output(t, mpmcEnv(bin, env, "SHMQ_TIMEOUT_MS=2000")("produce", loc, "1", "1", "16"))
	if !strings.HasPrefix(out, "messages=1 ") {
		t.Fatalf("C producer printed %q", out)
	}
	c, err := q.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sameIDs(t, "after the claim over the tombstone", recvIDs(t, ctx, c, 4), []string{"0:0", "0:1", "0:2", "1:0"})
	if c.Skipped() != 0 {
		t.Fatalf("Go consumer passed %d tombstones, want 0 (the producer moved the cursor past it)", c.Skipped())
	}
}

// goClaimsOverCTombstone: a C tombstone at position 0; the Go producer's
// fourth message claims over it, and the C consumer gets all four.
func goClaimsOverCTombstone(t *testing.T, bin string, env []string) {
	q, loc := newMPMC(t, mpmc.Config{Slots: 4, SlotSize: 64})
	out := output(t, mpmcEnv(bin, env, "SHMQ_ABANDON_AFTER=0")("produce", loc, "7", "1", "16"))
	if !strings.HasPrefix(out, "messages=0 ") {
		t.Fatalf("C producer printed %q", out)
	}
	p, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for seq := uint64(0); seq < 4; seq++ { // the fourth is claimed over the tombstone
		if err := p.TrySend(mpmcMessage(make([]byte, 16), 0, seq)); err != nil {
			t.Fatalf("send %d: %v", seq, err)
		}
	}
	cmd := mpmcEnv(bin, env, "SHMQ_TIMEOUT_MS=5000")("consume", loc)
	_, wait := start(t, cmd)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Send(ctx, mpmcMessage(make([]byte, 16), stopID, 0)); err != nil {
		t.Fatal(err)
	}
	if got := wait(); !strings.HasPrefix(got, "run 0 0 3\nmessages=4 ") || !strings.HasSuffix(got, " skipped=0") {
		t.Fatalf("C consumer printed %q, want messages 0-3 of producer 0 and no tombstone passed", got)
	}
}

func runTombstones(t *testing.T, cc string, sanitize bool) {
	var extra []string
	env := os.Environ()
	if sanitize {
		extra, env = sanitizeFlags, sanitizerEnv()
	}
	env = append(env, "SHMQ_TIMEOUT_MS=20000")
	bin := build(t, cc, t.TempDir(), "shmq_mpmc", extra...)
	t.Run("GoTombstoneCPasses", func(t *testing.T) { goTombstoneCPasses(t, bin, env) })
	t.Run("CTombstoneGoPasses", func(t *testing.T) { cTombstoneGoPasses(t, bin, env) })
	t.Run("CClaimsOverGoTombstone", func(t *testing.T) { cClaimsOverGoTombstone(t, bin, env) })
	t.Run("GoClaimsOverCTombstone", func(t *testing.T) { goClaimsOverCTombstone(t, bin, env) })
}

// TestTombstones runs MPMC tombstones across languages.
func TestTombstones(t *testing.T) {
	runTombstones(t, compiler(t), false)
}

// TestTombstonesSanitized repeats TestTombstones with the C built under
// -fsanitize=address,undefined.
func TestTombstonesSanitized(t *testing.T) {
	cc := compiler(t)
	if ok, why := sanitizerAvailable(t, cc); !ok {
		t.Skipf("sanitizer runtime missing (%s -fsanitize=address,undefined failed): %s", cc, why)
	}
	runTombstones(t, cc, true)
}
