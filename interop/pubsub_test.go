//go:build unix

package interop

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/pubsub"
	"github.com/shmq/shmq/ring"
)

// The C publisher and subscriber of layout/shmq_pubsub.h
// (layout/c/shmq_publish.c, layout/c/shmq_subscribe.c) against the Go
// publisher and subscribers of package pubsub, in both policies. (The
// header's pub/sub constants are checked by TestHeaderConstants, its header
// validation by TestDecodeAgrees.)

// pubsubPrograms is one build of the C pub/sub peers.
type pubsubPrograms struct {
	subscribe, publish string
	env                []string
}

// buildPubSub compiles the C publisher and subscriber, with the sanitizers
// if asked (skipping if they are unavailable, outside CI).
func buildPubSub(t *testing.T, sanitize bool) pubsubPrograms {
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
	dir := t.TempDir()
	return pubsubPrograms{
		subscribe: build(t, cc, dir, "shmq_subscribe", extra...),
		publish:   build(t, cc, dir, "shmq_publish", extra...),
		env:       env,
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
	progs := buildPubSub(t, false)
	for _, tc := range pubsubCases() {
		t.Run(tc.name, func(t *testing.T) { goPublishToC(t, progs.subscribe, progs.env, tc) })
	}
}

// TestPubSubGoToCSanitized runs the same cases with the C subscriber built
// with the address and undefined-behaviour sanitizers.
func TestPubSubGoToCSanitized(t *testing.T) {
	progs := buildPubSub(t, true)
	for _, tc := range pubsubCases() {
		t.Run(tc.name, func(t *testing.T) { goPublishToC(t, progs.subscribe, progs.env, tc) })
	}
}

// TestPubSubDeadCSubscriber: a C subscriber killed with SIGKILL while it
// holds a back-pressure publisher back is dropped; the publisher goes on,
// and a live C subscriber still receives every message.
func TestPubSubDeadCSubscriber(t *testing.T) {
	progs := buildPubSub(t, false)
	bin, env := progs.subscribe, progs.env
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

// goTally is what a Go subscriber received of a stream.
type goTally struct {
	first, next           uint64 // sequence numbers of its first message and of the next one
	messages, bytes, lost uint64
	crc                   uint32
	ended                 bool // io.EOF: the publisher closed and everything was received
}

// goReceive receives from s until count messages arrived or were lost, or
// the stream ended, and checks every message against payload.h's
// convention by its sequence number. A loss must move s on by exactly the
// count it reports. With slow set it sleeps now and then, so that a lossy
// publisher overwrites it.
func goReceive(ctx context.Context, s *pubsub.Subscriber, sizes sizeSpec, count uint64, slow bool) (goTally, error) {
	r := goTally{first: s.Seq()}
	buf := make([]byte, sizes.max)
	for i := 0; r.messages+r.lost < count; i++ {
		if slow && i%256 == 255 {
			time.Sleep(time.Millisecond)
		}
		want := s.Seq()
		n, err := s.Recv(ctx, buf)
		var lost *pubsub.LostError
		switch {
		case errors.As(err, &lost):
			if s.Seq() != want+lost.Count {
				return r, fmt.Errorf("lost %d after %d, resumes at %d", lost.Count, want, s.Seq())
			}
			r.lost += lost.Count
			continue
		case err == io.EOF:
			r.ended = true
			r.next = s.Seq()
			return r, nil
		case err != nil:
			return r, fmt.Errorf("after %d messages: %w", r.messages, err)
		}
		if s.Seq() != want+1 {
			return r, fmt.Errorf("received message %d, next is %d", want, s.Seq())
		}
		if err := verify(buf[:n], want, sizes.size(want)); err != nil {
			return r, err
		}
		r.crc = crc32.Update(r.crc, castagnoli, buf[:n])
		r.bytes += uint64(n)
		r.messages++
	}
	r.next = s.Seq()
	return r, nil
}

// parsePublisher parses the C publisher's two lines: its summary, and the
// sequence numbers of its first message and of the one after its last.
func parsePublisher(t *testing.T, out string) (summary string, first, next uint64) {
	t.Helper()
	lines := strings.Split(out, "\n")
	if len(lines) != 2 {
		t.Fatalf("C publisher printed %q", out)
	}
	if n, err := fmt.Sscanf(lines[1], "first=%d next=%d", &first, &next); n != 2 || err != nil {
		t.Fatalf("C publisher's second line %q: %v", lines[1], err)
	}
	return lines[0], first, next
}

type cPublishCase struct {
	name   string
	memfd  bool
	cfg    pubsub.Config
	count  uint64
	sizes  sizeSpec
	starts []pubsub.Start // one Go subscriber per entry
	slow   []bool         // per Go subscriber: sleep now and then (lossy: to be overwritten)
	cSubs  []string       // C subscribers beside them: next, latest or oldest
	pause  bool           // the C publisher pauses now and then, so that subscribers park
}

func cPublishCases() []cPublishCase {
	all := []pubsub.Start{pubsub.FromNext, pubsub.FromLatest, pubsub.FromOldest}
	return []cPublishCase{
		{name: "back-pressure/shm/wrap-2^64", count: 20000, sizes: sizeSpec{1, 1000}, starts: all, cSubs: []string{"oldest"},
			cfg: pubsub.Config{Capacity: 1 << 14, StartPosition: 1<<64 - 1<<16, StartSeq: 1<<64 - 5000}},
		{name: "back-pressure/memfd/parked", memfd: true, count: 600, sizes: sizeSpec{8, 200}, pause: true,
			starts: []pubsub.Start{pubsub.FromNext, pubsub.FromNext}, cfg: pubsub.Config{Capacity: 1 << 12}},
		{name: "back-pressure/shm/slow", count: 5000, sizes: sizeSpec{8, 120}, starts: all, slow: []bool{false, true, false},
			cfg: pubsub.Config{Capacity: 1 << 12}},
		{name: "lossy/shm/small-ring", count: 50000, sizes: sizeSpec{8, 120}, starts: all, slow: []bool{false, true, true},
			cSubs: []string{"next"}, cfg: pubsub.Config{Capacity: 1 << 12, Lossy: true}},
		{name: "lossy/memfd/wrap-2^64", memfd: true, count: 20000, sizes: sizeSpec{1, 300}, starts: all, slow: []bool{true, false, true},
			cfg: pubsub.Config{Capacity: 1 << 12, Lossy: true, StartPosition: 1<<64 - 1<<13, StartSeq: 1<<64 - 3000}},
	}
}

// cPublishToGo runs one case: Go (and C) subscribers attach, the C
// publisher sends, every subscriber checks every message it receives.
func cPublishToGo(t *testing.T, progs pubsubPrograms, tc cPublishCase) {
	q, loc, files := newPubSub(t, pubsubCase{memfd: tc.memfd, cfg: tc.cfg})
	startSeq := tc.cfg.StartSeq
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type result struct {
		r   goTally
		err error
	}
	results := make([]chan result, len(tc.starts))
	for i, from := range tc.starts {
		s, err := q.Subscriber(from)
		if err != nil {
			t.Fatal(err)
		}
		slow := i < len(tc.slow) && tc.slow[i]
		results[i] = make(chan result, 1)
		go func() {
			r, err := goReceive(ctx, s, tc.sizes, tc.count, slow)
			results[i] <- result{r, err}
		}()
	}
	var cWaits []func() string
	for _, from := range tc.cSubs {
		cmd := exec.Command(progs.subscribe, loc, fmt.Sprint(tc.count), tc.sizes.String(), from)
		cmd.Env, cmd.ExtraFiles = progs.env, files
		if tc.cfg.Lossy {
			cmd.Env = append(cmd.Env, "SHMQ_SLOW=1")
		}
		_, wait := start(t, cmd)
		cWaits = append(cWaits, wait)
	}
	waitSubscribers(t, q, len(tc.starts)+len(tc.cSubs))
	pub := exec.Command(progs.publish, loc, fmt.Sprint(tc.count), tc.sizes.String())
	pub.Env, pub.ExtraFiles = progs.env, files
	if tc.pause {
		pub.Env = append(pub.Env, "SHMQ_PAUSE=1")
	}
	_, wait := start(t, pub)
	want, first, next := parsePublisher(t, wait())
	if first != startSeq || next != startSeq+tc.count {
		t.Errorf("C publisher sent %d to %d, want %d to %d", first, next, startSeq, startSeq+tc.count)
	}
	check := func(who string, got string, r goTally) {
		if r.first != startSeq {
			t.Errorf("%s started at %d, want %d", who, r.first, startSeq)
		}
		if tc.cfg.Lossy {
			if r.messages+r.lost != tc.count || r.next != startSeq+tc.count {
				t.Errorf("lossy %s: %+v, want received + lost = %d", who, r, tc.count)
			}
		} else if got != want || r.lost != 0 || r.next != startSeq+tc.count {
			t.Errorf("%s: %q, %+v; want %q and no loss", who, got, r, want)
		}
		t.Logf("%s: %+v", who, r)
	}
	for i, ch := range results {
		res := <-ch
		if res.err != nil {
			t.Errorf("Go subscriber %d (%v): %v", i, tc.starts[i], res.err)
			continue
		}
		check(fmt.Sprintf("Go subscriber %d (%v)", i, tc.starts[i]), summary(res.r.messages, res.r.bytes, res.r.crc), res.r)
	}
	for i, wait := range cWaits {
		r := parseReport(t, wait())
		check(fmt.Sprintf("C subscriber %d (%s)", i, tc.cSubs[i]), r.summary,
			goTally{first: r.first, next: r.next, messages: r.messages, lost: r.lost})
	}
	// The Go side reads what the C publisher recorded in its entry.
	st, err := q.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Publisher.Messages != tc.count || st.Publisher.State != layout.EntryDetached {
		t.Errorf("C publisher's entry: %+v, want %d messages and detached", st.Publisher, tc.count)
	}
}

func runCPublish(t *testing.T, sanitize bool) {
	progs := buildPubSub(t, sanitize)
	for _, tc := range cPublishCases() {
		t.Run(tc.name, func(t *testing.T) { cPublishToGo(t, progs, tc) })
	}
	for _, lossy := range []bool{false, true} {
		t.Run(fmt.Sprintf("takeover/lossy=%v", lossy), func(t *testing.T) { takeover(t, progs, lossy) })
	}
	for _, holder := range []bool{false, true} {
		t.Run(fmt.Sprintf("dead-subscriber/fork-holder=%v", holder), func(t *testing.T) { deadSubscriber(t, progs, holder) })
	}
}

// TestPubSubCToGo: the C publisher to Go subscribers (and C ones), in both
// policies, and publishers of either language taking over from each other.
func TestPubSubCToGo(t *testing.T) { runCPublish(t, false) }

// TestPubSubCToGoSanitized repeats TestPubSubCToGo with the C built under
// -fsanitize=address,undefined.
func TestPubSubCToGoSanitized(t *testing.T) { runCPublish(t, true) }

// takeover: a C publisher dies attached after 300 messages; a Go subscriber
// receives them and then ErrPeerDead; a Go publisher takes the role over
// and continues the sequence numbers where the C one committed (the
// next-number word past the tail), sends 100 and closes (io.EOF); then a
// new C publisher continues after the Go one. The subscriber receives
// every message once, in order, with no gap in the numbers.
func takeover(t *testing.T, progs pubsubPrograms, lossy bool) {
	// The ring holds the 300 messages unread: the dead publisher is
	// neither held back nor has it overwritten anything.
	cfg := pubsub.Config{Capacity: 1 << 16, Lossy: lossy, StartPosition: 1<<64 - 1<<12, StartSeq: 1<<64 - 200}
	q, loc, _ := newPubSub(t, pubsubCase{cfg: cfg})
	s, err := q.Subscriber(pubsub.FromNext)
	if err != nil {
		t.Fatal(err)
	}
	sizes := sizeSpec{8, 100}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dead := exec.Command(progs.publish, loc, "1000", sizes.String())
	dead.Env = append(progs.env, "SHMQ_HANG_AFTER=300")
	awaitLine(t, dead, "hanging")
	if r, err := goReceive(ctx, s, sizes, 300, false); err != nil || r.messages != 300 || r.next != cfg.StartSeq+300 {
		t.Fatalf("from the C publisher: %+v, %v", r, err)
	}
	kill(dead)
	if _, err := s.Recv(ctx, make([]byte, sizes.max)); !errors.Is(err, pubsub.ErrPeerDead) {
		t.Fatalf("Recv after the C publisher died: %v, want ErrPeerDead", err)
	}
	p, err := q.Publisher()
	if err != nil {
		t.Fatalf("Go publisher taking over from a dead C one: %v", err)
	}
	if p.Seq() != cfg.StartSeq+300 {
		t.Fatalf("Go publisher continues at %d, want %d", p.Seq(), cfg.StartSeq+300)
	}
	buf := make([]byte, sizes.max)
	for range 100 {
		m := buf[:sizes.size(p.Seq())]
		fill(m, p.Seq())
		if err := p.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	p.Close()
	if r, err := goReceive(ctx, s, sizes, 1000, false); err != nil || r.messages != 100 || !r.ended {
		t.Fatalf("from the Go publisher: %+v, %v; want 100 and the end of the stream", r, err)
	}
	next := exec.Command(progs.publish, loc, "100", sizes.String())
	next.Env = progs.env
	_, wait := start(t, next)
	// Until it commits, the stream is over (io.EOF).
	for {
		st, err := q.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.NextSeq != cfg.StartSeq+400 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the second C publisher committed nothing")
		}
		time.Sleep(time.Millisecond)
	}
	r, err := goReceive(ctx, s, sizes, 1000, false)
	if err != nil || r.messages != 100 || !r.ended || r.lost != 0 {
		t.Fatalf("from the second C publisher: %+v, %v; want 100 and the end of the stream", r, err)
	}
	got, first, last := parsePublisher(t, wait())
	if first != cfg.StartSeq+400 || last != cfg.StartSeq+500 || got != summary(r.messages, r.bytes, r.crc) {
		t.Errorf("second C publisher: %q, %d to %d; the subscriber got %+v from %d", got, first, last, r, cfg.StartSeq+400)
	}
}

// deadSubscriber: a C subscriber stops reading after 100 messages, holding
// the back-pressure C publisher back, and is killed (with holder, after
// forking a child that keeps its descriptors and lives on, which must not
// keep its entry alive). The C publisher drops it and goes on; a Go
// subscriber receives every message.
func deadSubscriber(t *testing.T, progs pubsubPrograms, holder bool) {
	const count = 3000
	sizes := sizeSpec{100, 100}
	q, loc, _ := newPubSub(t, pubsubCase{cfg: pubsub.Config{Capacity: 1 << 12}})
	s, err := q.Subscriber(pubsub.FromNext)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type result struct {
		r   goTally
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := goReceive(ctx, s, sizes, count, false)
		done <- result{r, err}
	}()
	victim := exec.Command(progs.subscribe, loc, "1000000", sizes.String(), "next")
	victim.Env = append(progs.env, "SHMQ_HANG_AFTER=100")
	if holder {
		victim.Env = append(victim.Env, "SHMQ_FORK_HOLDER=1")
	}
	out, err := victim.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	victim.WaitDelay = time.Second // the forked holder keeps the pipe
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kill(victim) })
	hanging := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "hanging"); ok {
				hanging <- strings.TrimSpace(rest)
				return
			}
		}
		close(hanging)
	}()
	waitSubscribers(t, q, 2)
	pub := exec.Command(progs.publish, loc, fmt.Sprint(count), sizes.String())
	pub.Env = progs.env
	_, wait := start(t, pub)
	select {
	case rest, ok := <-hanging:
		if !ok {
			t.Fatal("the C subscriber exited before it stopped")
		}
		if holder {
			holderChild(t, rest)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the C subscriber did not stop after 100 messages")
	}
	time.Sleep(100 * time.Millisecond) // the publisher parks, held back
	kill(victim)
	want, _, _ := parsePublisher(t, wait())
	res := <-done
	if res.err != nil || summary(res.r.messages, res.r.bytes, res.r.crc) != want {
		t.Fatalf("Go subscriber: %+v, %v; the C publisher sent %q", res.r, res.err, want)
	}
	st, err := q.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Publisher.Waits == 0 || len(st.Subscribers) != 1 {
		t.Errorf("the C publisher waited %d times; subscriber entries in use: %+v (want the Go one only: the dead one dropped)",
			st.Publisher.Waits, st.Subscribers)
	}
}
