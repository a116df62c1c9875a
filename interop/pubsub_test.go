package interop

import (
	"context"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/pubsub"
	"github.com/shmq/shmq/ring"
)

// The C subscriber of layout/shmq_pubsub.h (layout/c/shmq_subscribe.c)
// against the Go publisher of package pubsub. The header is written
// against layout version 2 as the Go layout package defines it.

// buildSubscriber compiles the C subscriber, with the sanitizers if asked
// (skipping if they are unavailable, outside CI).
func buildSubscriber(t *testing.T, sanitize bool) (string, []string) {
	t.Helper()
	cc := compiler(t)
	env := append(os.Environ(), "SHMQ_TIMEOUT_MS=20000")
	var extra []string
	if sanitize {
		if ok, why := sanitizerAvailable(t, cc); !ok {
			if inCI() {
				t.Fatalf("sanitizers unavailable under CI: %s", why)
			}
			t.Skipf("sanitizers unavailable: %s", why)
		}
		extra = sanitizeFlags
		env = append(sanitizerEnv(), "SHMQ_TIMEOUT_MS=20000")
	}
	return build(t, cc, t.TempDir(), "shmq_subscribe", extra...), env
}

// TestPubSubConstants compares the constants of shmq_pubsub.h with the Go
// layout package.
func TestPubSubConstants(t *testing.T) {
	bin, _ := buildSubscriber(t, false)
	got := map[string]uint64{}
	for _, line := range strings.Split(strings.TrimSpace(output(t, exec.Command(bin, "--constants"))), "\n") {
		k, v, ok := strings.Cut(line, "=")
		n, err := strconv.ParseUint(v, 10, 64)
		if !ok || err != nil {
			t.Fatalf("bad line %q", line)
		}
		got[k] = n
	}
	want := map[string]uint64{
		"Magic": layout.Magic, "Version": uint64(layout.Version), "KindPubSub": uint64(layout.KindPubSub),
		"FlagLossy": uint64(layout.FlagLossy), "LineSize": layout.LineSize, "StateReady": uint64(layout.StateReady),
		"OffTabWaiters": layout.OffTabWaiters, "OffTabWaiterSets": layout.OffTabWaiterSets,
		"PubSubWaiterSets": layout.PubSubWaiterSets, "WaiterSetProducers": layout.WaiterSetProducers,
		"WaiterSetConsumers": layout.WaiterSetConsumers, "EntryState": layout.EntryState, "EntryPID": layout.EntryPID,
		"EntryMessages": layout.EntryMessages, "EntryWakes": layout.EntryWakes,
		"EntrySubPosition": layout.EntrySubPosition, "EntrySubSeq": layout.EntrySubSeq, "EntrySubLost": layout.EntrySubLost,
		"PubTail": layout.PubTail, "PubIntent": layout.PubIntent, "PubOldest": layout.PubOldest, "PubLimit": layout.PubLimit,
		"PubWaitFor":             layout.PubWaitFor,
		"PubSubRecordHeaderSize": layout.PubSubRecordHeaderSize, "PubSubRecordAlign": layout.PubSubRecordAlign,
		"PubSubRecordSeq": layout.PubSubRecordSeq, "TypePadding": uint64(layout.TypePadding),
		"MinPubSubCapacity": layout.MinPubSubCapacity, "MaxPubSubCapacity": layout.MaxPubSubCapacity,
		"PubSubFirstSubscriber": layout.PubSubFirstSubscriber,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s: C has %d (present %v), Go %d", k, g, ok, v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("C prints %d constants, the test knows %d", len(got), len(want))
	}
}

type pubsubCase struct {
	name     string
	memfd    bool
	cfg      pubsub.Config
	count    uint64
	sizes    sizeSpec
	starts   []string // one C subscriber per entry: next, latest or oldest
	slow     []bool   // per subscriber: sleep now and then (lossy: to be overwritten)
	pause    bool     // the Go publisher pauses now and then, so the C subscribers park
	stopEarl uint64   // if not 0, the publisher stops (closes) after this many: the stream ends
}

func pubsubCases() []pubsubCase {
	return []pubsubCase{
		{name: "back-pressure/shm/wrap-2^64", count: 20000, sizes: sizeSpec{1, 1000}, starts: []string{"next", "latest", "oldest"},
			cfg: pubsub.Config{Capacity: 1 << 14, StartPosition: 1<<64 - 1<<16, StartSeq: 1<<64 - 5000}},
		{name: "back-pressure/memfd/parked", memfd: true, count: 600, sizes: sizeSpec{8, 200}, starts: []string{"next", "next"},
			cfg: pubsub.Config{Capacity: 1 << 12}, pause: true},
		{name: "lossy/shm/small-ring", count: 50000, sizes: sizeSpec{8, 120}, starts: []string{"next", "oldest", "latest"},
			slow: []bool{false, true, true}, cfg: pubsub.Config{Capacity: 1 << 12, Lossy: true}},
		{name: "back-pressure/shm/end-of-stream", count: 1000, stopEarl: 700, sizes: sizeSpec{16, 64}, starts: []string{"next"},
			cfg: pubsub.Config{Capacity: 1 << 12}},
	}
}

// newPubSub creates the queue of a case and returns it, the location
// argument of the C subscriber and the files to pass it.
func newPubSub(t *testing.T, tc pubsubCase) (*pubsub.Queue, string, []*os.File) {
	t.Helper()
	if tc.memfd {
		q, err := pubsub.Create(ring.Memfd("interop"), tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
		return q, "fd:3", []*os.File{q.Segment().File()}
	}
	name := fmt.Sprintf("shmq-it-ps-%d-%d", os.Getpid(), nameSeq.Add(1))
	q, err := pubsub.Create(ring.Shm(name), tc.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		q.Close()
		ring.Unlink(ring.Shm(name))
	})
	return q, name, nil
}

// liveSubscribers counts the subscribers attached, alive and placed: a
// subscriber's entry is attached a moment before it has placed itself, and
// it counts a stall (finding no message) only once placed.
func liveSubscribers(t *testing.T, q *pubsub.Queue) int {
	t.Helper()
	st, err := q.Stats()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range st.Subscribers {
		if s.State == layout.EntryAttached && s.Alive && s.Stalls > 0 {
			n++
		}
	}
	return n
}

func waitSubscribers(t *testing.T, q *pubsub.Queue, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for liveSubscribers(t, q) < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d C subscribers attached", liveSubscribers(t, q), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// report is a C subscriber's two lines, parsed.
type report struct {
	summary                  string
	lost, first, next, ended uint64
	messages                 uint64
}

func parseReport(t *testing.T, out string) report {
	t.Helper()
	lines := strings.Split(out, "\n")
	if len(lines) != 2 {
		t.Fatalf("C subscriber printed %q", out)
	}
	r := report{summary: lines[0]}
	fmt.Sscanf(lines[0], "messages=%d", &r.messages)
	if n, err := fmt.Sscanf(lines[1], "lost=%d first=%d next=%d ended=%d", &r.lost, &r.first, &r.next, &r.ended); n != 4 || err != nil {
		t.Fatalf("C subscriber's second line %q: %v", lines[1], err)
	}
	return r
}

// goPublishToC runs one case: C subscribers attach, the Go publisher sends,
// every C subscriber checks every message it receives.
func goPublishToC(t *testing.T, bin string, env []string, tc pubsubCase) {
	q, loc, files := newPubSub(t, tc)
	p, err := q.Publisher()
	if err != nil {
		t.Fatal(err)
	}
	startSeq := p.Seq()
	var waits []func() string
	for i, from := range tc.starts {
		cmd := exec.Command(bin, loc, fmt.Sprint(tc.count), tc.sizes.String(), from)
		cmd.Env, cmd.ExtraFiles = env, files
		if i < len(tc.slow) && tc.slow[i] {
			cmd.Env = append(cmd.Env, "SHMQ_SLOW=1")
		}
		_, wait := start(t, cmd)
		waits = append(waits, wait)
	}
	waitSubscribers(t, q, len(tc.starts))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sent := tc.count
	if tc.stopEarl != 0 {
		sent = tc.stopEarl
	}
	var crc uint32
	var total uint64
	buf := make([]byte, tc.sizes.max)
	for i := uint64(0); i < sent; i++ {
		if tc.pause && i%100 == 99 {
			time.Sleep(20 * time.Millisecond) // the C subscribers park meanwhile
		}
		seq := p.Seq()
		m := buf[:tc.sizes.size(seq)]
		fill(m, seq)
		if err := p.Send(ctx, m); err != nil {
			t.Fatalf("send %d: %v", seq, err)
		}
		crc = crc32.Update(crc, castagnoli, m)
		total += uint64(len(m))
	}
	p.Close()
	want := summary(sent, total, crc)
	for i, wait := range waits {
		r := parseReport(t, wait())
		if r.first != startSeq {
			t.Errorf("subscriber %d (%s) started at %d, want %d", i, tc.starts[i], r.first, startSeq)
		}
		switch {
		case tc.cfg.Lossy:
			if r.messages+r.lost != tc.count || r.next != startSeq+tc.count {
				t.Errorf("lossy subscriber %d: %+v, want received + lost = %d", i, r, tc.count)
			}
		case r.summary != want || r.lost != 0 || r.next != startSeq+sent || (r.ended == 1) != (tc.stopEarl != 0):
			t.Errorf("subscriber %d printed %+v, want %q and no loss", i, r, want)
		}
		t.Logf("subscriber %d (%s): %+v", i, tc.starts[i], r)
	}
	// The Go side reads what the C subscribers recorded in their entries.
	st, err := q.Stats()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Subscribers {
		if !tc.cfg.Lossy && (s.Messages != sent || s.Bytes != total || s.Lost != 0) {
			t.Errorf("C subscriber's entry %d: %d messages, %d bytes, lost %d; want %d, %d", s.Index, s.Messages, s.Bytes, s.Lost, sent, total)
		}
	}
}

func TestPubSubGoToC(t *testing.T) {
	bin, env := buildSubscriber(t, false)
	for _, tc := range pubsubCases() {
		t.Run(tc.name, func(t *testing.T) { goPublishToC(t, bin, env, tc) })
	}
}

// TestPubSubGoToCSanitized runs the same cases with the C subscriber built
// with the address and undefined-behaviour sanitizers.
func TestPubSubGoToCSanitized(t *testing.T) {
	bin, env := buildSubscriber(t, true)
	for _, tc := range pubsubCases() {
		t.Run(tc.name, func(t *testing.T) { goPublishToC(t, bin, env, tc) })
	}
}

// TestPubSubDeadCSubscriber: a C subscriber killed with SIGKILL while it
// holds a back-pressure publisher back is dropped; the publisher goes on,
// and a live C subscriber still receives every message.
func TestPubSubDeadCSubscriber(t *testing.T) {
	bin, env := buildSubscriber(t, false)
	tc := pubsubCase{cfg: pubsub.Config{Capacity: 1 << 12}, count: 3000, sizes: sizeSpec{100, 100}}
	q, loc, _ := newPubSub(t, tc)
	p, err := q.Publisher()
	if err != nil {
		t.Fatal(err)
	}
	live := exec.Command(bin, loc, fmt.Sprint(tc.count), "100", "next")
	live.Env = env
	_, wait := start(t, live)
	victim := exec.Command(bin, loc, "1000000000", "100", "next")
	victim.Env = append(env, "SHMQ_SLOW=1")
	start(t, victim)
	waitSubscribers(t, q, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	buf := make([]byte, 100)
	var crc uint32
	for seq := uint64(0); seq < tc.count; seq++ {
		if seq == 500 {
			victim.Process.Signal(syscall.SIGKILL)
		}
		fill(buf, seq)
		if err := p.Send(ctx, buf); err != nil {
			t.Fatalf("send %d with a dead subscriber: %v", seq, err)
		}
		crc = crc32.Update(crc, castagnoli, buf)
	}
	p.Close()
	if r := parseReport(t, wait()); r.summary != summary(tc.count, 100*tc.count, crc) {
		t.Fatalf("live C subscriber printed %+v", r)
	}
}
