package interop

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/mpmc"
	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/spsc"
)

// Waiter sets (LAYOUT.md section 6): a waiter registers by setting its
// registry entry's bit, so the registration of a waiter that died is found
// and cleared by whoever takes that entry's lock; publishers that keep
// finding waiters sweep their set for dead ones. These tests kill a parked
// C waiter and check that a Go publisher's stream then makes one wake, not
// one per message, and that a C publisher sweeps a dead registrant too.

// waiterBit returns the word of waiter set k that holds entry i's bit, and
// the bit.
func waiterBit(t *testing.T, seg *ring.Segment, k, i int) (*atomic.Uint64, uint64) {
	t.Helper()
	words, err := seg.WaiterSet(k)
	if err != nil {
		t.Fatal(err)
	}
	return words[i/64], 1 << (i % 64)
}

// markAsleep makes an injected registration look like a waiter that died
// while parked: with layout.FlagSleeperBit such a waiter had set bit 0 of
// the wake line's WakeSeq, without which no publisher wakes (or sweeps).
func markAsleep(t *testing.T, seg *ring.Segment, line uint64) {
	t.Helper()
	if seg.Header().Flags&layout.FlagSleeperBit == 0 {
		return
	}
	seq, err := seg.Uint32(line + layout.WakeSeq)
	if err != nil {
		t.Fatal(err)
	}
	seq.Or(1)
}

// killParked starts cmd, waits until registry entry i's bit shows in the
// word, and SIGKILLs it. It reports whether the bit was still set once the
// process was gone: an MPMC waiter leaves the set for a moment every 5 ms,
// and a kill in that moment leaves nothing to test.
func killParked(t *testing.T, cmd *exec.Cmd, word *atomic.Uint64, bit uint64) bool {
	t.Helper()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for word.Load()&bit == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s never registered as a waiter; stderr: %s", cmd, stderr.String())
		}
		time.Sleep(time.Millisecond)
	}
	kill(cmd)
	return word.Load()&bit != 0
}

// deadCWaiterSPSC: the C consumer parks on an empty queue and is killed;
// the Go producer's 200 sends then make one wake (which sweeps the dead
// registration), not 200.
func deadCWaiterSPSC(t *testing.T, progs programs) {
	q, loc, _ := newQueue(t, false, spsc.Config{Capacity: 1 << 16})
	word, bit := waiterBit(t, q.Segment(), layout.WaiterSetConsumers, layout.SPSCConsumerEntry)
	cmd := exec.Command(progs.consume, loc, "1", "8")
	cmd.Env = progs.env
	if !killParked(t, cmd, word, bit) {
		t.Fatal("the C consumer's registration vanished when it was killed")
	}
	p, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	msg := make([]byte, 8)
	for seq := uint64(0); seq < 200; seq++ {
		fill(msg, seq)
		if err := p.TrySend(msg); err != nil {
			t.Fatalf("send %d: %v", seq, err)
		}
	}
	st, err := q.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Producer.Wakes != 1 || word.Load()&bit != 0 {
		t.Fatalf("after 200 sends past a dead C waiter: %d wakes, waiter set word %#x; want 1 wake and the bit cleared",
			st.Producer.Wakes, word.Load())
	}
}

// deadCWaiterMPMC is deadCWaiterSPSC for an MPMC consumer. The Go
// producer attaches first, so that it does not take over (and clear) the
// dead consumer's entry.
func deadCWaiterMPMC(t *testing.T, bin string, env []string) {
	for try := 0; ; try++ {
		q, loc := newMPMC(t, mpmc.Config{Slots: 256, SlotSize: 64, Registry: 4})
		p, err := q.Producer() // entry 0; the C consumer takes entry 1
		if err != nil {
			t.Fatal(err)
		}
		word, bit := waiterBit(t, q.Segment(), layout.WaiterSetConsumers, 1)
		if !killParked(t, mpmcEnv(bin, env)("consume", loc), word, bit) {
			p.Close()
			if try < 5 {
				continue // killed between two parks: try again
			}
			t.Fatal("the C consumer's registration vanished when it was killed, 6 times")
		}
		defer p.Close()
		for seq := uint64(0); seq < 200; seq++ {
			if err := p.TrySend(mpmcMessage(make([]byte, 16), 0, seq)); err != nil {
				t.Fatalf("send %d: %v", seq, err)
			}
		}
		es, err := q.Entries()
		if err != nil {
			t.Fatal(err)
		}
		if w := es[p.Index()].Wakes; w != 1 || word.Load()&bit != 0 {
			t.Fatalf("after 200 sends past a dead C waiter: %d wakes, waiter set word %#x; want 1 wake and the bit cleared",
				w, word.Load())
		}
		return
	}
}

// cSweepsDeadWaiter: a registration of an entry nobody holds (a waiter
// that died) sits in the consumers' set; a C producer's stream makes one
// wake and clears it.
func cSweepsDeadWaiter(t *testing.T, progs programs) {
	q, loc, _ := newQueue(t, false, spsc.Config{Capacity: 1 << 16})
	word, bit := waiterBit(t, q.Segment(), layout.WaiterSetConsumers, layout.SPSCConsumerEntry)
	word.Or(bit)
	markAsleep(t, q.Segment(), q.Segment().Header().ConsumerWake)
	cmd := exec.Command(progs.produce, loc, "200", "16")
	cmd.Env = progs.env
	output(t, cmd)
	st, err := q.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Producer.Wakes != 1 || word.Load()&bit != 0 {
		t.Fatalf("C producer past a dead waiter: %d wakes, waiter set word %#x; want 1 wake and the bit cleared",
			st.Producer.Wakes, word.Load())
	}
}

// cSweepsDeadWaiterMPMC is cSweepsDeadWaiter for an MPMC producer, with
// the dead registrant at entry 70 (the second word of the set).
func cSweepsDeadWaiterMPMC(t *testing.T, bin string, env []string) {
	q, loc := newMPMC(t, mpmc.Config{Slots: 256, SlotSize: 64, Registry: 80})
	word, bit := waiterBit(t, q.Segment(), layout.WaiterSetConsumers, 70)
	word.Or(bit)
	markAsleep(t, q.Segment(), q.Segment().Header().ConsumerWake)
	out := output(t, mpmcEnv(bin, env)("produce", loc, "0", "200", "16"))
	var n uint64
	var entry int
	if _, err := fmt.Sscanf(out, "messages=%d entry=%d", &n, &entry); err != nil || n != 200 {
		t.Fatalf("C producer printed %q", out)
	}
	es, err := q.Entries()
	if err != nil {
		t.Fatal(err)
	}
	if w := es[entry].Wakes; w != 1 || word.Load()&bit != 0 {
		t.Fatalf("C producer past a dead waiter: %d wakes, waiter set word %#x; want 1 wake and the bit cleared",
			w, word.Load())
	}
}

func runWaiters(t *testing.T, cc string, sanitize bool) {
	progs := buildPrograms(t, cc, sanitize)
	var extra []string
	env := os.Environ()
	if sanitize {
		extra, env = sanitizeFlags, sanitizerEnv()
	}
	env = append(env, "SHMQ_TIMEOUT_MS=20000")
	bin := build(t, cc, t.TempDir(), "shmq_mpmc", extra...)
	t.Run("DeadCWaiterSPSC", func(t *testing.T) { deadCWaiterSPSC(t, progs) })
	t.Run("DeadCWaiterMPMC", func(t *testing.T) { deadCWaiterMPMC(t, bin, env) })
	t.Run("CSweepsDeadWaiterSPSC", func(t *testing.T) { cSweepsDeadWaiter(t, progs) })
	t.Run("CSweepsDeadWaiterMPMC", func(t *testing.T) { cSweepsDeadWaiterMPMC(t, bin, env) })
}

// TestWaiterSets checks the recovery of dead waiters' registrations across
// languages.
func TestWaiterSets(t *testing.T) {
	runWaiters(t, compiler(t), false)
}

// TestWaiterSetsSanitized repeats TestWaiterSets with the C built under
// -fsanitize=address,undefined.
func TestWaiterSetsSanitized(t *testing.T) {
	cc := compiler(t)
	if ok, why := sanitizerAvailable(t, cc); !ok {
		t.Skipf("sanitizer runtime missing (%s -fsanitize=address,undefined failed): %s", cc, why)
	}
	runWaiters(t, cc, true)
}
