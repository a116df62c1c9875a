//go:build unix

package main

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/shmq/shmq/pubsub"
	"github.com/shmq/shmq/ring"
)

// subscribed waits until n live subscribers are attached to queue name and
// placed: each has looked for a message and found none (a stall), which a
// subscriber does only after it has placed itself.
func subscribed(t *testing.T, name string, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d subscribers on %s", n, name), func() bool {
		q, err := pubsub.Open(context.Background(), ring.Shm(name), nil)
		if err != nil {
			return false
		}
		defer q.Close()
		st, err := q.Stats()
		live := 0
		for _, s := range st.Subscribers {
			if attached(s.EntryInfo) && s.Stalls > 0 {
				live++
			}
		}
		return err == nil && live >= n
	})
}

// TestPublishSubscribe: three subscribers started before a publisher print
// the publisher's summary line, and the sequence line of a complete
// stream; the last one out removes the queue.
func TestPublishSubscribe(t *testing.T) {
	name := queueName(t, "ps")
	const n = "20000"
	var subs []*proc
	for i := range 3 {
		args := []string{"subscribe", "-queue", name, "-count", n}
		if i == 1 {
			args = append(args, "-history")
		}
		subs = append(subs, start(t, args...))
	}
	subscribed(t, name, 3)
	pub := runBin(t, "publish", "-queue", name, "-count", n, "-size", "100")
	if pub.code != 0 {
		t.Fatalf("publish: %v", pub)
	}
	want := pub.lines()[len(pub.lines())-1]
	if !strings.HasPrefix(want, "messages=20000 bytes=2000000 crc32c=") {
		t.Fatalf("publish printed %q", want)
	}
	for i, s := range subs {
		if s.wait(t) != 0 {
			t.Fatalf("subscriber %d: %v", i, s)
		}
		lines := s.lines()
		if len(lines) != 2 || lines[0] != "seq_first=0 seq_last=19999 gaps=0" || lines[1] != want {
			t.Errorf("subscriber %d printed %q, want the sequence line and %q", i, lines, want)
		}
	}
	if exists(t, name) {
		t.Errorf("queue %s left behind", name)
	}
}

var lostLine = regexp.MustCompile(`^seq_first=(\d+) seq_last=(\d+) gaps=(\d+) lost=(\d+)$`)

// TestSubscribeLossy: a subscriber of a lossy queue that the publisher
// outruns (a small ring, a burst from a process that does not wait) counts
// every message it received or lost, and accepts the gaps the losses
// explain; its line carries lost=L.
func TestSubscribeLossy(t *testing.T) {
	name := queueName(t, "psl")
	const n = 100000
	sub := start(t, "subscribe", "-queue", name, "-count", strconv.Itoa(n), "-lossy", "-capacity", "4096")
	subscribed(t, name, 1)
	q, err := pubsub.Open(context.Background(), ring.Shm(name), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if !q.Lossy() {
		t.Fatal("subscribe -lossy created a back-pressure queue")
	}
	p, err := q.Publisher()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	for seq := uint64(0); seq < n; seq++ {
		putMessage(buf, seq)
		if err := p.TrySend(buf); err != nil {
			t.Fatal(err)
		}
	}
	p.Close()
	if sub.wait(t) != 0 {
		t.Fatalf("subscriber: %v", sub)
	}
	lines := sub.lines()
	m := lostLine.FindStringSubmatch(lines[0])
	if len(lines) != 2 || m == nil {
		t.Fatalf("subscriber printed %q", lines)
	}
	lost, _ := strconv.Atoi(m[4])
	got, _ := strconv.Atoi(strings.TrimPrefix(strings.Fields(lines[1])[0], "messages="))
	if got+lost != n {
		t.Fatalf("received %d and lost %d of %d", got, lost, n)
	}
	t.Logf("received %d, lost %d: %s", got, lost, lines[0])
}

// TestPubSubFlags: usage errors and a policy mismatch.
func TestPubSubFlags(t *testing.T) {
	name := queueName(t, "psf")
	q, err := pubsub.Create(ring.Shm(name), pubsub.Config{Capacity: 4096})
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"publish", "-queue", name, "-count", "1"}, exitUsage, "-size BYTES is required"},
		{[]string{"subscribe", "-queue", name}, exitUsage, "-count N is required"},
		{[]string{"subscribe", "-count", "1"}, exitUsage, "-queue NAME is required"},
		{[]string{"publish", "-queue", name, "-count", "1", "-size", "8", "-capacity", "1000"}, exitUsage, "power of two"},
		{[]string{"publish", "-queue", name, "-count", "1", "-size", "8", "-lossy"}, exitFail, "exists with the back-pressure policy"},
		{[]string{"publish", "-queue", name, "-count", "1", "-size", "9999"}, exitFail, "exceeds the queue's largest message"},
	} {
		p := runBin(t, tc.args...)
		lines := strings.Split(strings.TrimSpace(p.stderr.String()), "\n")
		if p.code != tc.code || !strings.Contains(lines[len(lines)-1], tc.want) {
			t.Errorf("want status %d and %q: %v", tc.code, tc.want, p)
		}
	}
}

// TestSubscribeStreamEnds: a stream that ends before -count is an error,
// after the lines of what arrived.
func TestSubscribeStreamEnds(t *testing.T) {
	name := queueName(t, "pse")
	sub := start(t, "subscribe", "-queue", name, "-count", "10")
	subscribed(t, name, 1)
	if pub := runBin(t, "publish", "-queue", name, "-count", "4", "-size", "16"); pub.code != 0 {
		t.Fatal(pub)
	}
	if sub.wait(t) != exitFail || !strings.Contains(sub.stderr.String(), "the stream ended after 4 of 10 messages") ||
		sub.lines()[0] != "seq_first=0 seq_last=3 gaps=0" {
		t.Fatalf("subscriber: %v", sub)
	}
}

// TestInspectPubSub: inspect shows the policy, the cursors, and each
// subscriber's position and lag.
func TestInspectPubSub(t *testing.T) {
	name := queueName(t, "psi")
	q, err := pubsub.Create(ring.Shm(name), pubsub.Config{Capacity: 4096, Subscribers: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	p, _ := q.Publisher()
	slow, _ := q.Subscriber(pubsub.FromNext)
	fast, _ := q.Subscriber(pubsub.FromNext)
	for range 10 {
		p.TrySend(make([]byte, 48)) // 64-byte records
	}
	for range 10 {
		fast.TryRecv(make([]byte, 64))
	}
	slow.TryRecv(make([]byte, 64))
	out := runBin(t, "inspect", name)
	if out.code != 0 {
		t.Fatal(out)
	}
	s := out.stdout.String()
	for _, want := range []string{
		"kind         pubsub",
		"policy       back-pressure",
		"tail         640 (ring index 640), next message 10",
		"subscribers  2 in use of 4",
		"position 64, next message 1, lag 576 bytes, 9 messages, lost 0",
		"position 640, next message 10, lag 0 bytes, 0 messages, lost 0",
		"role=producer",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, s)
		}
	}
}

var (
	fanoutOKLine   = regexp.MustCompile(`(?m)^fanout: every subscriber received every message once, in order, each checked: messages=(\d+) bytes=(\d+) crc32c=[0-9a-f]{8}$`)
	fanoutRateLine = regexp.MustCompile(`(?m)^fanout: (\d+) messages to (\d+) subscribers in \S+: [0-9.]+ M messages/s per subscriber, [0-9.]+ M deliveries/s$`)
)

// TestDemoFanout runs the demo's fan-out phase (the other phases short) and
// checks its report; -fanout-messages 0 skips it.
func TestDemoFanout(t *testing.T) {
	short := []string{"-messages", "1000", "-roundtrips", "100", "-warmup", "0", "-mpmc-messages", "0", "-size", "80"}
	p := runBin(t, append(short, "-fanout-messages", "50000", "-fanout-subscribers", "4")...)
	if p.code != 0 {
		t.Fatalf("demo failed:\n%v", p)
	}
	out := p.stdout.String()
	if m := fanoutOKLine.FindStringSubmatch(out); m == nil || m[1] != "50000" || m[2] != "4000000" {
		t.Errorf("no fan-out check line for 50000 messages of 80 bytes:\n%s", out)
	}
	if m := fanoutRateLine.FindStringSubmatch(out); m == nil || m[1] != "50000" || m[2] != "4" {
		t.Errorf("no fan-out rate line for 4 subscribers:\n%s", out)
	}
	p = runBin(t, append(short, "-fanout-messages", "0")...)
	if p.code != 0 || strings.Contains(p.stdout.String(), "fanout:") {
		t.Errorf("-fanout-messages 0 should skip the phase:\n%v", p)
	}
	if p := runBin(t, append(short, "-fanout-subscribers", "17")...); p.code != exitUsage {
		t.Errorf("-fanout-subscribers 17: %v", p)
	}
}
