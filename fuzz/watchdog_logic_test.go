package fuzz

import (
	"strings"
	"testing"
	"time"

	"github.com/shmq/shmq/mpmc"
	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/spsc"
)

// drive runs ticks of w.check at 100 ms of wall time each for d, the
// process using cpuPerTick of CPU time per tick, calling between (if not
// nil) before each tick; it returns the first verdict and when it came.
func drive(w *watchdog, d, cpuPerTick time.Duration, between func()) (string, time.Duration) {
	var now sample
	for now.wall <= d {
		if between != nil {
			between()
		}
		if v := w.check(now); v != "" {
			return v, now.wall
		}
		now.wall += 100 * time.Millisecond
		now.cpu += cpuPerTick
	}
	return "", 0
}

// TestWatchdogStallIsNotHang: an operation that stays unfinished for 10 s
// while the process gets almost no CPU (descheduled on a loaded machine)
// does not fire the watchdog; the old one fired after 1 s of wall time.
func TestWatchdogStallIsNotHang(t *testing.T) {
	w := newWatchdog(nil)
	w.op("TrySend")
	if v, at := drive(w, 10*time.Second, time.Millisecond, nil); v != "" {
		t.Fatalf("fired at %v on a stalled operation: %s", at, v)
	}
}

// TestWatchdogSpinIsHang: an operation during which the process keeps
// using CPU fires once it has used the spin limit.
func TestWatchdogSpinIsHang(t *testing.T) {
	w := newWatchdog(nil)
	w.op("Recv")
	v, at := drive(w, 10*time.Second, 90*time.Millisecond, nil)
	if !strings.HasPrefix(v, "spinning") {
		t.Fatalf("verdict %q, want spinning", v)
	}
	if at < w.spin || at > w.spin*2 {
		t.Fatalf("fired at %v, want soon after %v of CPU time", at, w.spin)
	}
}

// TestWatchdogBlockIsHang: an operation that never returns fires at the
// wall-time limit even though it uses no CPU.
func TestWatchdogBlockIsHang(t *testing.T) {
	w := newWatchdog(nil)
	w.op("Send")
	v, at := drive(w, time.Minute, 0, nil)
	if !strings.HasPrefix(v, "blocked") || at < w.block || at > w.block+time.Second {
		t.Fatalf("verdict %q at %v, want blocked at %v", v, at, w.block)
	}
}

// TestWatchdogProgressIsNotHang: a busy process whose operations keep
// finishing never fires, however much CPU it uses in total.
func TestWatchdogProgressIsNotHang(t *testing.T) {
	w := newWatchdog(nil)
	next := func() { w.end(); w.op("TrySend") }
	if v, at := drive(w, time.Minute, 100*time.Millisecond, next); v != "" {
		t.Fatalf("fired at %v while operations completed: %s", at, v)
	}
	w.end()
	if v, at := drive(w, time.Minute, 100*time.Millisecond, nil); v != "" {
		t.Fatalf("fired at %v with no operation running: %s", at, v)
	}
}

// TestWatchdogRealClock runs the watchdog on the process's real clocks: a
// sleeping operation (no CPU) does not fire it, a spinning one does, and
// the report names the step and operation and carries the queue state.
func TestWatchdogRealClock(t *testing.T) {
	fired := make(chan string, 1)
	start := func(name string) *watchdog {
		w := newWatchdog(func() string { return "queue: state\n" })
		w.spin, w.tick = 50*time.Millisecond, 10*time.Millisecond
		w.fire = func(r string) { fired <- r }
		go w.run()
		w.at(7)
		w.op(name)
		return w
	}

	w := start("sleeper")
	time.Sleep(300 * time.Millisecond)
	w.end()
	w.done()
	select {
	case r := <-fired:
		t.Fatalf("fired on a sleeping operation:\n%s", r)
	default:
	}

	w = start("spinner")
	deadline := time.Now().Add(10 * time.Second)
	var r string
spin:
	for time.Now().Before(deadline) {
		select {
		case r = <-fired:
			break spin
		default:
		}
	}
	w.end()
	w.done()
	if r == "" {
		t.Fatal("did not fire on a spinning operation")
	}
	for _, want := range []string{"step 7: spinner did not return; spinning", "queue: state", "the goroutines of process", "TestWatchdogRealClock"} {
		if !strings.Contains(r, want) {
			t.Errorf("report lacks %q:\n%s", want, r)
		}
	}
}

// TestQueueStateReports: the queue descriptions in the watchdog's report
// decode the cursors and the words around them.
func TestQueueStateReports(t *testing.T) {
	q, err := mpmc.Create(ring.Memfd("fuzz-state"), mpmc.Config{Slots: 4, SlotSize: 64, Registry: 8, StartPosition: ^uint64(0) - 1})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	p, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	c, err := q.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	p.TrySend([]byte("abc"))  // position 2^64-2: peeked below
	p.TrySend([]byte("abcd")) // 2^64-1: committed
	p.Reserve(5)              // 0: reserved
	c.Peek()
	r := mpmcState(q)()
	for _, want := range []string{
		"mpmc queue of 4 slots: head 18446744073709551615, tail 1 (tail-head 2)",
		"head-1: position 18446744073709551614, slot 2: seq 0xfffffffffffb0001 = R(p) owner 1, length 3",
		"head+0: position 18446744073709551615, slot 3: seq 0xfffffffffffe0000 = F(p) owner 0, length 4",
		"tail-1: position 0, slot 0: seq 0x10000 = W(p) owner 0, length 5",
		"tail+0: position 1, slot 1: seq 0x40000 = E(p) owner 0",
		"tail+1: position 2, slot 2: seq 0xfffffffffffb0001 = R(p-4) owner 1",
	} {
		if !strings.Contains(r, want) {
			t.Errorf("mpmc report lacks %q:\n%s", want, r)
		}
	}

	sq, err := spsc.Create(ring.Memfd("fuzz-state"), spsc.Config{Capacity: 256})
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	sp, err := sq.Producer()
	if err != nil {
		t.Fatal(err)
	}
	sp.TrySend([]byte("hello"))
	r = spscState(sq)()
	if want := "spsc queue of 256 bytes: head 0, tail 16 (tail-head 16); record at head (ring offset 0): length 13, type 0x1"; !strings.Contains(r, want) {
		t.Errorf("spsc report lacks %q:\n%s", want, r)
	}
}
