package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/spsc"
)

// demoBin is the shmq-demo binary, built once by TestMain.
var demoBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "shmq-demo-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	demoBin = filepath.Join(dir, "shmq-demo")
	if out, err := exec.Command("go", "build", "-o", demoBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const cmdTimeout = 30 * time.Second

// proc is a running shmq-demo.
type proc struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan struct{}
	code   int
}

// start runs shmq-demo with args in the background; the test's cleanup
// kills it if it is still running.
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(demoBin, args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			p.code = ee.ExitCode()
			if p.code < 0 {
				p.code = -1 // killed by a signal
			}
		default:
			p.code = -2
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait waits for p to exit and returns its exit status.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(cmdTimeout):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("%v did not finish within %v\nstdout:\n%s\nstderr:\n%s", p.cmd.Args, cmdTimeout, &p.stdout, &p.stderr)
	}
	return p.code
}

func (p *proc) String() string {
	return fmt.Sprintf("%v exited %d\nstdout:\n%s\nstderr:\n%s", p.cmd.Args[1:], p.code, &p.stdout, &p.stderr)
}

// lines returns p's standard output lines; call it after wait.
func (p *proc) lines() []string { return strings.Split(strings.TrimSpace(p.stdout.String()), "\n") }

// runBin runs shmq-demo to completion.
func runBin(t *testing.T, args ...string) *proc {
	t.Helper()
	p := start(t, args...)
	p.wait(t)
	return p
}

// queueName returns a shm name unique to this test process, and removes it
// when the test ends.
func queueName(t *testing.T, tag string) string {
	t.Helper()
	name := fmt.Sprintf("sdt-%d-%s", os.Getpid(), tag)
	if len(name) > ring.MaxNameLen {
		t.Fatalf("name %q is too long", name)
	}
	ring.Unlink(ring.Shm(name))
	t.Cleanup(func() { ring.Unlink(ring.Shm(name)) })
	return name
}

// exists reports whether a segment is at name.
func exists(t *testing.T, name string) bool {
	t.Helper()
	seg, err := ring.Open(context.Background(), ring.Shm(name), layout.KindSPSC, &ring.Options{ReadyTimeout: time.Second})
	if errors.Is(err, ring.ErrNotFound) {
		return false
	}
	if err == nil {
		seg.Close()
	}
	return true
}

// waitFor polls cond until it holds, failing the test after a while.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(cmdTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

var (
	throughputLine = regexp.MustCompile(`(?m)^stream: (\d+) messages, (\d+) bytes in \S+: [0-9.]+ M messages/s, [0-9.]+ MB/s`)
	latencyLine    = regexp.MustCompile(`(?m)^ping-pong: round-trip latency p50=(\S+) p99=(\S+) p99\.9=(\S+) max=(\S+)$`)
)

func TestDemoRun(t *testing.T) {
	p := runBin(t, "-messages", "200000", "-size", "100", "-capacity", "65536", "-roundtrips", "20000", "-warmup", "2000")
	if p.code != 0 {
		t.Fatalf("demo failed:\n%v", p)
	}
	out := p.stdout.String()
	m := throughputLine.FindStringSubmatch(out)
	if m == nil || m[1] != "200000" || m[2] != "20000000" {
		t.Errorf("no throughput line for 200000 messages of 100 bytes:\n%s", out)
	}
	m = latencyLine.FindStringSubmatch(out)
	if m == nil {
		t.Errorf("no latency line:\n%s", out)
	} else {
		var prev time.Duration
		for i, s := range m[1:] {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 || d < prev {
				t.Errorf("percentile %d is %q, after %v: want increasing positive durations", i, s, prev)
			}
			prev = d
		}
	}
	if !strings.Contains(out, "200000 messages=200000 bytes=20000000 crc32c=") &&
		!strings.Contains(out, "CRC32-C): messages=200000 bytes=20000000 crc32c=") {
		t.Errorf("no consumer report:\n%s", out)
	}
	if !strings.HasSuffix(out, "ok: every check held\n") {
		t.Errorf("no final ok line:\n%s", out)
	}
	base := "shmq-demo-" + strconv.Itoa(p.cmd.Process.Pid)
	for _, n := range []string{base, base + "-req", base + "-rsp"} {
		if exists(t, n) {
			ring.Unlink(ring.Shm(n))
			t.Errorf("segment %s left behind", n)
		}
	}
}

func TestDemoBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-size", "4"}, {"-messages", "x"}, {"stray"}, {"-capacity", "1000"}} {
		p := runBin(t, args...)
		if p.code == 0 {
			t.Errorf("%v", p)
		}
		if lines := strings.Split(strings.TrimSpace(p.stderr.String()), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "shmq-demo: ") {
			t.Errorf("want one error line on stderr: %v", p)
		}
	}
}

// TestDemoInterrupted stops the demo in its stream phase with a signal and
// checks that it fails, its child is gone and its segment removed.
func TestDemoInterrupted(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			p := start(t, "-messages", "2000000000")
			name := "shmq-demo-" + strconv.Itoa(p.cmd.Process.Pid)
			t.Cleanup(func() { ring.Unlink(ring.Shm(name)) })
			var child int
			waitFor(t, "the consumer to attach", func() bool {
				q, err := spsc.Open(context.Background(), ring.Shm(name), nil)
				if err != nil {
					return false
				}
				defer q.Close()
				st, err := q.Stats()
				if err != nil || !st.Consumer.Alive || st.Consumer.Messages == 0 {
					return false
				}
				child = int(st.Consumer.PID)
				return true
			})
			p.cmd.Process.Signal(sig)
			if code := p.wait(t); code == 0 || code == -1 {
				t.Fatalf("want a failing exit status after %v: %v", sig, p)
			}
			if exists(t, name) {
				t.Errorf("segment %s left behind: %v", name, p)
			}
			if err := syscall.Kill(child, 0); err != syscall.ESRCH {
				t.Errorf("child pid %d still exists (%v)", child, err)
			}
		})
	}
}

// TestProduceConsume runs produce and consume on one queue, started in
// different orders, and checks that they agree.
func TestProduceConsume(t *testing.T) {
	cases := []struct {
		name        string
		order       string // "both", "consume-first" or "produce-first"
		count, size int
		capacity    int
	}{
		{"concurrent", "both", 300000, 100, 65536},
		{"consume-first", "consume-first", 200000, 64, 4096},
		{"produce-first", "produce-first", 100000, 33, 1 << 20},
		{"short-payloads", "both", 10000, 5, 4096},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := queueName(t, tc.name[:4])
			count, size, capa := strconv.Itoa(tc.count), strconv.Itoa(tc.size), strconv.Itoa(tc.capacity)
			produceArgs := []string{"produce", "-queue", name, "-count", count, "-size", size, "-capacity", capa, "-timeout", "25s"}
			consumeArgs := []string{"consume", "-queue", name, "-count", count, "-capacity", capa, "-timeout", "25s"}
			var prod, cons *proc
			switch tc.order {
			case "both":
				prod, cons = start(t, produceArgs...), start(t, consumeArgs...)
			case "consume-first":
				cons = start(t, consumeArgs...)
				waitFor(t, "consume to create the queue", func() bool { return exists(t, name) })
				prod = start(t, produceArgs...)
			case "produce-first":
				prod = start(t, produceArgs...)
				waitFor(t, "produce to create the queue", func() bool { return exists(t, name) })
				cons = start(t, consumeArgs...)
			}
			if prod.wait(t) != 0 {
				t.Fatalf("produce failed: %v", prod)
			}
			if cons.wait(t) != 0 {
				t.Fatalf("consume failed: %v", cons)
			}
			pl, cl := prod.lines(), cons.lines()
			want := fmt.Sprintf("messages=%d bytes=%d crc32c=", tc.count, tc.count*tc.size)
			if last := pl[len(pl)-1]; !strings.HasPrefix(last, want) || last != cl[len(cl)-1] {
				t.Errorf("produce ends with %q, consume with %q; want equal lines starting %q", last, cl[len(cl)-1], want)
			}
			wantSeq := fmt.Sprintf("seq_first=0 seq_last=%d gaps=0", tc.count-1)
			if tc.size < 8 {
				wantSeq = "seq_first=- seq_last=- gaps=0"
			}
			if len(cl) != 2 || cl[0] != wantSeq {
				t.Errorf("consume printed %q, want %q then the summary", cl, wantSeq)
			}
			if exists(t, name) {
				t.Errorf("consume left %s in place", name)
			}
		})
	}
}

func TestConsumeDetectsGap(t *testing.T) {
	name := queueName(t, "gap")
	prod := start(t, "produce", "-queue", name, "-count", "5000", "-size", "16", "-capacity", "4096", "-test-skip-seq", "1234")
	cons := start(t, "consume", "-queue", name, "-count", "5000", "-timeout", "25s")
	if prod.wait(t) != 0 {
		t.Fatalf("produce failed: %v", prod)
	}
	if cons.wait(t) == 0 {
		t.Fatalf("consume succeeded on a stream with a gap: %v", cons)
	}
	if cl := cons.lines(); len(cl) != 2 || cl[0] != "seq_first=0 seq_last=5000 gaps=1" {
		t.Errorf("consume printed %q", cl)
	}
	if !strings.Contains(cons.stderr.String(), "1 gap(s)") {
		t.Errorf("no gap error: %v", cons)
	}
}

// TestConsumeDetectsRepeat writes a stream with a repeated and a reordered
// sequence number straight into the queue.
func TestConsumeDetectsRepeat(t *testing.T) {
	for _, tc := range []struct {
		seqs []uint64
		want string
	}{
		{[]uint64{0, 1, 2, 2, 3}, "seq_first=0 seq_last=3 gaps=0"},
		{[]uint64{0, 2, 1, 3, 4}, "seq_first=0 seq_last=4 gaps=1"},
		{[]uint64{1, 2, 3}, "seq_first=1 seq_last=3 gaps=1"},
	} {
		name := queueName(t, "rep")
		q, err := spsc.Create(ring.Shm(name), spsc.Config{Capacity: 4096})
		if err != nil {
			t.Fatal(err)
		}
		p, err := q.Producer()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range tc.seqs {
			msg := make([]byte, 24)
			putMessage(msg, s)
			if err := p.TrySend(msg); err != nil {
				t.Fatal(err)
			}
		}
		q.Close()
		cons := runBin(t, "consume", "-queue", name, "-count", strconv.Itoa(len(tc.seqs)), "-timeout", "25s")
		if cons.code == 0 {
			t.Errorf("consume accepted %v: %v", tc.seqs, cons)
		}
		if cl := cons.lines(); cl[0] != tc.want {
			t.Errorf("consume of %v printed %q, want %q", tc.seqs, cl[0], tc.want)
		}
	}
}

// TestInspectAndRemove inspects a queue whose consumer is this test and
// whose producer is a shmq-demo process, before and after that process is
// killed, then removes it.
func TestInspectAndRemove(t *testing.T) {
	name := queueName(t, "insp")
	q, err := spsc.Create(ring.Shm(name), spsc.Config{Capacity: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	c, err := q.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if _, err := c.TryRecv(buf); err != spsc.ErrEmpty {
		t.Fatalf("TryRecv on an empty queue: %v", err)
	}
	prod := start(t, "produce", "-queue", name, "-count", "1000000", "-size", "64")
	waitFor(t, "the producer to fill the ring", func() bool {
		st, err := q.Stats()
		return err == nil && st.Producer.Alive && st.Used > 4096-layout.RecordSize(64)
	})
	for range 10 {
		if _, err := c.TryRecv(buf); err != nil {
			t.Fatal(err)
		}
	}
	// The producer refills the ring: wait for it to block again.
	waitFor(t, "the producer to refill the ring", func() bool {
		st, err := q.Stats()
		return err == nil && st.Producer.Messages >= 10+4096/layout.RecordSize(64)-1
	})
	mine, theirs := os.Getpid(), prod.cmd.Process.Pid

	ins := runBin(t, "inspect", name)
	if ins.code != 0 {
		t.Fatalf("inspect failed: %v", ins)
	}
	out := ins.stdout.String()
	for _, re := range []string{
		`(?m)^  kind +spsc\b`,
		`(?m)^  capacity +4096 bytes$`,
		`(?m)^  depth +\d+ bytes`,
		`(?m)^  head +\d+`,
		`(?m)^  tail +\d+`,
		`(?m)^  max message +2040 bytes$`,
		fmt.Sprintf(`(?m)^  creator +pid %d `, mine),
		fmt.Sprintf(`(?m)^    \[0\] role=producer pid=%d state=attached alive .*messages=\d+ bytes=\d+ stalls=[1-9]\d* waits=\d+ wakes=\d+$`, theirs),
		fmt.Sprintf(`(?m)^    \[1\] role=consumer pid=%d state=attached alive .*messages=10 bytes=640 stalls=1 waits=0 wakes=\d+$`, mine),
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("inspect output does not match %s:\n%s", re, out)
		}
	}

	prod.cmd.Process.Kill()
	prod.wait(t)
	ins = runBin(t, "inspect", name)
	if want := fmt.Sprintf("role=producer pid=%d state=attached dead", theirs); ins.code != 0 || !strings.Contains(ins.stdout.String(), want) {
		t.Errorf("after killing the producer, want %q: %v", want, ins)
	}

	lst := runBin(t, "list")
	if want := regexp.MustCompile(fmt.Sprintf(`(?m)^%s +spsc +ready +\d+ producer:%d\(dead\) consumer:%d\(alive\)$`, regexp.QuoteMeta(name), theirs, mine)); lst.code != 0 || !want.MatchString(lst.stdout.String()) {
		t.Errorf("list: want a line matching %s: %v", want, lst)
	}
	reap := runBin(t, "reap", name)
	if want := fmt.Sprintf("reaped entry 0: producer pid %d (dead)", theirs); reap.code != 0 || !strings.Contains(reap.stdout.String(), want) {
		t.Errorf("reap: want %q: %v", want, reap)
	}
	if st, _ := q.Stats(); st.Producer.State != layout.EntryFree || !st.Consumer.Alive {
		t.Errorf("after reap: producer %+v consumer %+v", st.Producer, st.Consumer)
	}
	if again := runBin(t, "reap", name); !strings.Contains(again.stdout.String(), "no dead processes") {
		t.Errorf("second reap: %v", again)
	}

	if rm := runBin(t, "rm", name); rm.code != 0 {
		t.Fatalf("rm failed: %v", rm)
	}
	if exists(t, name) {
		t.Fatalf("%s exists after rm", name)
	}
	for _, cmd := range []string{"rm", "inspect"} {
		p := runBin(t, cmd, name)
		if p.code == 0 || !strings.Contains(p.stderr.String(), "no such segment") || strings.Count(p.stderr.String(), "\n") != 1 {
			t.Errorf("%s of a removed queue: want one error line about no such segment: %v", cmd, p)
		}
	}
}

func TestRemoveRefusesOtherFiles(t *testing.T) {
	name := queueName(t, "other")
	if err := os.WriteFile(filepath.Join("/dev/shm", name), bytes.Repeat([]byte("not a queue\n"), 4096), 0o600); err != nil {
		t.Skip("no /dev/shm:", err)
	}
	if p := runBin(t, "rm", name); p.code == 0 || !strings.Contains(p.stderr.String(), "not a shmq segment") {
		t.Errorf("rm of a foreign file: %v", p)
	}
	if _, err := os.Stat(filepath.Join("/dev/shm", name)); err != nil {
		t.Errorf("rm removed a foreign file: %v", err)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"help"}, {"produce", "-h"}, {"inspect", "-h"}} {
		p := runBin(t, args...)
		if p.code != 0 || !strings.HasPrefix(p.stdout.String(), "Usage:") || !strings.Contains(p.stdout.String(), "shmq-demo consume -queue NAME") {
			t.Errorf("want usage on stdout and status 0: %v", p)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"rm"}, "exactly one queue name"},
		{[]string{"inspect", "a", "b"}, "exactly one queue name"},
		{[]string{"produce", "-queue", "x", "-count", "1", "-size", "8", "-kind", "nope"}, `unknown -kind "nope"`},
		{[]string{"consume", "-queue", "x"}, "-count N is required"},
		{[]string{"produce", "-queue", "bad/name", "-count", "1", "-size", "8"}, "invalid segment name"},
		{[]string{"produce", "-queue", "x", "-count", "1", "-size", "8", "-bogus"}, "flag provided but not defined"},
	} {
		p := runBin(t, tc.args...)
		lines := strings.Split(strings.TrimSpace(p.stderr.String()), "\n")
		if p.code == 0 || len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
			t.Errorf("want a failure with one stderr line containing %q: %v", tc.want, p)
		}
	}
}

// TestConsumerRestartAfterCrash scripts what the idle exit is for: a
// consumer killed mid-stream is restarted with -first one past the last
// sequence number it reported; it accepts the messages the dead one had not
// released as redelivered, still checks for gaps, and stops when idle.
func TestConsumerRestartAfterCrash(t *testing.T) {
	name := queueName(t, "crash")
	q, err := spsc.Create(ring.Shm(name), spsc.Config{Capacity: 1 << 12})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	p, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 16)
	for seq := uint64(0); seq < 20; seq++ {
		binary.LittleEndian.PutUint64(msg, seq)
		if err := p.TrySend(msg); err != nil {
			t.Fatal(err)
		}
	}
	// A consumer that took messages 0-9 (reporting 0-7) and died holding 8 and 9.
	q2, err := spsc.Open(context.Background(), ring.Shm(name), nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := q2.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if _, err := c.Peek(); err != nil {
			t.Fatal(err)
		}
		if i == 7 {
			c.Release()
		}
	}
	q2.Close() // the role frees as it would when its holder dies
	restarted := runBin(t, "consume", "-queue", name, "-first", "10", "-idle-exit", "200ms", "-keep")
	if restarted.code != 0 {
		t.Fatalf("restarted consumer failed: %v", restarted)
	}
	if l := restarted.lines(); len(l) < 2 || l[len(l)-2] != "seq_first=8 seq_last=19 gaps=0 redelivered=2" {
		t.Fatalf("restarted consumer's sequence line: %v", restarted)
	}
	// A gap after a restart is still reported.
	for _, seq := range []uint64{20, 22} {
		binary.LittleEndian.PutUint64(msg, seq)
		if err := p.TrySend(msg); err != nil {
			t.Fatal(err)
		}
	}
	gap := runBin(t, "consume", "-queue", name, "-first", "20", "-idle-exit", "200ms", "-keep")
	if gap.code == 0 || !strings.Contains(gap.stdout.String(), "gaps=1") {
		t.Fatalf("gap after restart not reported: %v", gap)
	}
}
