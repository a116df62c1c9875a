//go:build unix

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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/mpmc"
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

var (
	mpmcOKLine   = regexp.MustCompile(`(?m)^mpmc: every message delivered exactly once \((\d+) producers x (\d+)\), in each producer's order, filler checked$`)
	mpmcRateLine = regexp.MustCompile(`(?m)^mpmc: (\d+) messages, (\d+) bytes in \S+: [0-9.]+ M messages/s, [0-9.]+ MB/s$`)
	mpmcConsLine = regexp.MustCompile(`(?m)^mpmc: consumer pid \d+ received (\d+) messages \(.*\), each producer's numbers increasing$`)
)

// checkMPMCPhase checks the MPMC phase's report in a demo's output.
func checkMPMCPhase(t *testing.T, out string, producers, consumers, perProducer, size int) {
	t.Helper()
	if m := mpmcOKLine.FindStringSubmatch(out); m == nil || m[1] != strconv.Itoa(producers) || m[2] != strconv.Itoa(perProducer) {
		t.Errorf("no exactly-once line for %d producers x %d:\n%s", producers, perProducer, out)
	}
	total := producers * perProducer
	if m := mpmcRateLine.FindStringSubmatch(out); m == nil || m[1] != strconv.Itoa(total) || m[2] != strconv.Itoa(total*size) {
		t.Errorf("no MPMC throughput line for %d messages of %d bytes:\n%s", total, size, out)
	}
	sum := 0
	ms := mpmcConsLine.FindAllStringSubmatch(out, -1)
	for _, m := range ms {
		n, _ := strconv.Atoi(m[1])
		sum += n
	}
	if len(ms) != consumers || sum != total {
		t.Errorf("%d consumer lines adding up to %d messages, want %d adding up to %d:\n%s", len(ms), sum, consumers, total, out)
	}
}

func TestDemoRun(t *testing.T) {
	p := runBin(t, "-messages", "200000", "-size", "100", "-capacity", "65536", "-roundtrips", "20000", "-warmup", "2000",
		"-mpmc-messages", "60000")
	if p.code != 0 {
		t.Fatalf("demo failed:\n%v", p)
	}
	out := p.stdout.String()
	checkMPMCPhase(t, out, 3, 3, 20000, 100)
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
	for _, n := range []string{base, base + "-req", base + "-rsp", base + "-mpmc"} {
		if exists(t, n) {
			ring.Unlink(ring.Shm(n))
			t.Errorf("segment %s left behind", n)
		}
	}
}

// TestDemoMPMC runs the demo's MPMC phase in both modes with other
// process counts, a tiny ring and messages of the smallest MPMC size.
func TestDemoMPMC(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		producers, consumers int
		slots                string
		locked               bool
	}{
		{"lock-free", 4, 2, "4", false},
		{"locked", 2, 4, "8", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"-messages", "1000", "-size", "12", "-roundtrips", "100", "-warmup", "0",
				"-mpmc-messages", "40000", "-mpmc-producers", strconv.Itoa(tc.producers),
				"-mpmc-consumers", strconv.Itoa(tc.consumers), "-mpmc-slots", tc.slots}
			if tc.locked {
				args = append(args, "-mpmc-locked")
			}
			p := runBin(t, args...)
			if p.code != 0 {
				t.Fatalf("demo failed:\n%v", p)
			}
			out := p.stdout.String()
			mode := fmt.Sprintf("(%s slots of 64 bytes, %s)", tc.slots, mpmcMode(tc.locked))
			if !strings.Contains(out, mode) {
				t.Errorf("no %q in the output:\n%s", mode, out)
			}
			checkMPMCPhase(t, out, tc.producers, tc.consumers, 40000/tc.producers, 16)
			if !strings.HasSuffix(out, "ok: every check held\n") {
				t.Errorf("no final ok line:\n%s", out)
			}
			if name := "shmq-demo-" + strconv.Itoa(p.cmd.Process.Pid) + "-mpmc"; exists(t, name) {
				ring.Unlink(ring.Shm(name))
				t.Errorf("segment %s left behind", name)
			}
		})
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

// TestDemoInterruptedMPMC stops the demo in its MPMC phase with a signal
// and checks that it fails, its children are gone and its segment removed.
func TestDemoInterruptedMPMC(t *testing.T) {
	p := start(t, "-messages", "1000", "-roundtrips", "100", "-warmup", "0", "-mpmc-messages", "90000000")
	name := "shmq-demo-" + strconv.Itoa(p.cmd.Process.Pid) + "-mpmc"
	t.Cleanup(func() { ring.Unlink(ring.Shm(name)) })
	var children []int
	waitFor(t, "the MPMC phase to get going", func() bool {
		q, err := mpmc.Open(context.Background(), ring.Shm(name), nil)
		if err != nil {
			return false
		}
		defer q.Close()
		st, err := q.Stats()
		if err != nil || st.Tail < 10000 {
			return false
		}
		children = children[:0]
		for _, e := range st.Entries {
			if int(e.PID) != p.cmd.Process.Pid {
				children = append(children, int(e.PID))
			}
		}
		return true
	})
	p.cmd.Process.Signal(syscall.SIGINT)
	if code := p.wait(t); code == 0 || code == -1 {
		t.Fatalf("want a failing exit status after SIGINT: %v", p)
	}
	if exists(t, name) {
		t.Errorf("segment %s left behind: %v", name, p)
	}
	if len(children) != 6 {
		t.Errorf("found %d child processes in the registry, want 6", len(children))
	}
	for _, pid := range children {
		if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
			t.Errorf("child pid %d still exists (%v)", pid, err)
		}
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

// mpmcAttached returns how many live processes are attached to MPMC queue
// name as role, or -1 if the queue cannot be opened (yet).
func mpmcAttached(name string, role uint32) int {
	q, err := mpmc.Open(context.Background(), ring.Shm(name), &mpmc.Options{Options: ring.Options{ReadyTimeout: time.Second}})
	if err != nil {
		return -1
	}
	defer q.Close()
	es, err := q.Entries()
	if err != nil {
		return -1
	}
	n := 0
	for _, e := range es {
		if e.Role == role && e.State == layout.EntryAttached && e.Alive {
			n++
		}
	}
	return n
}

// mpmcReport is what consume -kind mpmc printed.
type mpmcReport struct {
	perProducer map[uint64]uint64 // messages per producer id
	repeats     uint64
	messages    uint64
	summary     string // the producers= line
}

var (
	producerLine = regexp.MustCompile(`^producer=(\d+) messages=(\d+) seq_first=(\d+) seq_last=(\d+) gaps=(\d+) repeats=(\d+)$`)
	producersSum = regexp.MustCompile(`^producers=(\d+) gaps=(\d+) repeats=(\d+)( corrupt=\d+)?( redelivered=\d+)?$`)
	finalLine    = regexp.MustCompile(`^messages=(\d+) bytes=(\d+) crc32c=[0-9a-f]{8}$`)
)

// parseMPMC parses the standard output of consume -kind mpmc: producer
// lines, the producers= line and the final line, nothing else.
func parseMPMC(t *testing.T, p *proc) mpmcReport {
	t.Helper()
	r := mpmcReport{perProducer: map[uint64]uint64{}}
	lines := p.lines()
	if len(lines) < 2 {
		t.Fatalf("consume printed too little: %v", p)
	}
	for _, l := range lines[:len(lines)-2] {
		m := producerLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("unexpected line %q: %v", l, p)
		}
		id, _ := strconv.ParseUint(m[1], 10, 64)
		n, _ := strconv.ParseUint(m[2], 10, 64)
		first, _ := strconv.ParseUint(m[3], 10, 64)
		last, _ := strconv.ParseUint(m[4], 10, 64)
		if n > 0 && (first > last || last-first+1 < n) {
			t.Errorf("producer line %q: %d messages do not fit in [%d, %d]", l, n, first, last)
		}
		r.perProducer[id] = n
	}
	m := producersSum.FindStringSubmatch(lines[len(lines)-2])
	if m == nil {
		t.Fatalf("no producers= line before the final one: %v", p)
	}
	r.summary = lines[len(lines)-2]
	r.repeats, _ = strconv.ParseUint(m[3], 10, 64)
	if np, _ := strconv.Atoi(m[1]); np != len(r.perProducer) {
		t.Errorf("producers=%d but %d producer lines: %v", np, len(r.perProducer), p)
	}
	f := finalLine.FindStringSubmatch(lines[len(lines)-1])
	if f == nil {
		t.Fatalf("final line %q is not messages=N bytes=B crc32c=HEX: %v", lines[len(lines)-1], p)
	}
	r.messages, _ = strconv.ParseUint(f[1], 10, 64)
	var sum uint64
	for _, n := range r.perProducer {
		sum += n
	}
	if sum != r.messages {
		t.Errorf("producer lines add up to %d messages, final line says %d: %v", sum, r.messages, p)
	}
	return r
}

// TestProduceConsumeMPMC runs two produce and two (or three) consume
// processes on one MPMC queue, each with -count N, started in different
// orders: all exit 0, and the consumers together received each producer's
// N messages, each producer's numbers increasing in every consumer.
func TestProduceConsumeMPMC(t *testing.T) {
	const n = 60000 // more than the slots: see the consumers-first case
	cases := []struct {
		name      string
		order     string // "consumers-first", "producers-first" or "interleaved"
		consumers int    // consumers beyond two get no -count
		queue     []string
		consume   []string
	}{
		// The consumers attach before any producer; neither can end
		// before both producers have sent everything.
		{"consumers-first", "consumers-first", 2, nil, nil},
		// The producers attach first and block on a full queue (N is
		// more than the slots), so neither is done before the consumers
		// have taken all but the last slots' worth.
		{"producers-first", "producers-first", 2, []string{"-capacity", "256"}, nil},
		// consume, produce, consume, produce, without waiting.
		{"interleaved", "interleaved", 2, nil, nil},
		{"interleaved-locked", "interleaved", 2, []string{"-locked", "-capacity", "64"}, nil},
		// A third consumer without -count stops when the producers are
		// done; the three still add up to 2N.
		{"three-consumers", "consumers-first", 3, nil, []string{"-done-wait", "200ms"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := queueName(t, "mp"+tc.name[:3])
			cons := func(i int) *proc {
				args := []string{"consume", "-kind", "mpmc", "-queue", name, "-timeout", "25s"}
				if i < 2 {
					args = append(args, "-count", strconv.Itoa(n))
				}
				return start(t, slices.Concat(args, tc.queue, tc.consume)...)
			}
			prod := func(id int) *proc {
				args := []string{"produce", "-kind", "mpmc", "-queue", name, "-count", strconv.Itoa(n), "-size", "40",
					"-producer-id", strconv.Itoa(id), "-timeout", "25s"}
				return start(t, slices.Concat(args, tc.queue)...)
			}
			var ps, cs []*proc
			switch tc.order {
			case "consumers-first":
				for i := range tc.consumers {
					cs = append(cs, cons(i))
				}
				waitFor(t, "the consumers to attach", func() bool { return mpmcAttached(name, layout.RoleConsumer) == tc.consumers })
				ps = append(ps, prod(1), prod(2))
			case "producers-first":
				ps = append(ps, prod(1), prod(2))
				waitFor(t, "the producers to attach", func() bool { return mpmcAttached(name, layout.RoleProducer) == 2 })
				for i := range tc.consumers {
					cs = append(cs, cons(i))
				}
			case "interleaved":
				cs = append(cs, cons(0))
				ps = append(ps, prod(1))
				cs = append(cs, cons(1))
				ps = append(ps, prod(2))
			}
			for _, p := range ps {
				if p.wait(t) != 0 {
					t.Fatalf("produce failed: %v", p)
				}
				want := fmt.Sprintf("messages=%d bytes=%d crc32c=", n, n*40)
				if l := p.lines(); !strings.HasPrefix(l[len(l)-1], want) {
					t.Errorf("produce ends with %q, want %q...", l[len(l)-1], want)
				}
			}
			perProducer := map[uint64]uint64{}
			var total uint64
			for i, c := range cs {
				if c.wait(t) != 0 {
					t.Fatalf("consume %d failed: %v", i, c)
				}
				r := parseMPMC(t, c)
				if r.repeats != 0 {
					t.Errorf("consume %d reports repeats: %v", i, c)
				}
				if i < 2 && r.messages > n {
					t.Errorf("consume %d with -count %d received %d", i, n, r.messages)
				}
				for id, k := range r.perProducer {
					perProducer[id] += k
				}
				total += r.messages
			}
			if total != 2*n || len(perProducer) != 2 || perProducer[1] != n || perProducer[2] != n {
				t.Errorf("the consumers received %d messages, per producer %v; want %d, %d from each of producers 1 and 2",
					total, perProducer, 2*n, n)
			}
			if exists(t, name) {
				t.Errorf("%s left in place after everyone left it empty", name)
			}
		})
	}
}

// TestConsumeMPMCDetectsRepeat writes messages straight into an MPMC queue:
// gaps in a producer's numbers are fine, a repeat or a step back, or a
// wrong filler, makes consume fail.
func TestConsumeMPMCDetectsRepeat(t *testing.T) {
	type msg struct{ id, seq uint64 }
	for _, tc := range []struct {
		name    string
		msgs    []msg
		corrupt int // index of a message whose filler is spoiled, or -1
		ok      bool
		want    []string
	}{
		{"gaps", []msg{{7, 2}, {9, 0}, {7, 4}, {9, 1}}, -1, true, []string{
			"producer=7 messages=2 seq_first=2 seq_last=4 gaps=2 repeats=0",
			"producer=9 messages=2 seq_first=0 seq_last=1 gaps=0 repeats=0",
			"producers=2 gaps=2 repeats=0"}},
		{"step-back", []msg{{7, 5}, {7, 3}}, -1, false, []string{
			"producer=7 messages=2 seq_first=5 seq_last=5 gaps=1 repeats=1",
			"producers=1 gaps=1 repeats=1"}},
		{"repeat", []msg{{7, 0}, {9, 0}, {7, 0}, {7, 1}}, -1, false, []string{
			"producer=7 messages=3 seq_first=0 seq_last=1 gaps=0 repeats=1",
			"producer=9 messages=1 seq_first=0 seq_last=0 gaps=0 repeats=0",
			"producers=2 gaps=0 repeats=1"}},
		{"filler", []msg{{7, 0}, {7, 1}}, 1, false, []string{
			"producer=7 messages=1 seq_first=0 seq_last=0 gaps=0 repeats=0",
			"producers=1 gaps=0 repeats=0 corrupt=1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := queueName(t, "mprep")
			q, err := mpmc.Create(ring.Shm(name), mpmc.Config{Slots: 16, MaxMessage: 48})
			if err != nil {
				t.Fatal(err)
			}
			p, err := q.Producer()
			if err != nil {
				t.Fatal(err)
			}
			for i, m := range tc.msgs {
				b := make([]byte, 32)
				putMPMCMessage(b, m.id, m.seq)
				if i == tc.corrupt {
					b[20] ^= 1
				}
				if err := p.TrySend(b); err != nil {
					t.Fatal(err)
				}
			}
			q.Close()
			cons := runBin(t, "consume", "-kind", "mpmc", "-queue", name, "-count", strconv.Itoa(len(tc.msgs)), "-timeout", "25s")
			if (cons.code == 0) != tc.ok {
				t.Errorf("consume of %v: want success %v: %v", tc.msgs, tc.ok, cons)
			}
			if l := cons.lines(); len(l) != len(tc.want)+1 || !slices.Equal(l[:len(l)-1], tc.want) {
				t.Errorf("consume of %v printed %q, want %q then the summary", tc.msgs, l, tc.want)
			}
			if !tc.ok && strings.Count(cons.stderr.String(), "shmq-demo: consume: ") != 1 {
				t.Errorf("want one error line: %v", cons)
			}
		})
	}
}

// TestInspectMPMC inspects MPMC queues in both modes with messages queued,
// one slot being read and (lock-free) one being written, then with corrupt
// cursors and truncated.
func TestInspectMPMC(t *testing.T) {
	for _, locked := range []bool{false, true} {
		t.Run(mpmcMode(locked), func(t *testing.T) {
			name := queueName(t, "mpins")
			q, err := mpmc.Create(ring.Shm(name), mpmc.Config{Slots: 64, MaxMessage: 100, Locked: locked})
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
			msg := make([]byte, 40)
			for seq := range uint64(10) {
				putMPMCMessage(msg, 1, seq)
				if err := p.TrySend(msg); err != nil {
					t.Fatal(err)
				}
			}
			buf := make([]byte, 100)
			for range 3 {
				if _, err := c.TryRecv(buf); err != nil {
					t.Fatal(err)
				}
			}
			if !locked {
				if _, err := c.Peek(); err != nil { // slot 3 being read
					t.Fatal(err)
				}
				if _, err := p.Reserve(40); err != nil { // slot 10 being written
					t.Fatal(err)
				}
			}
			mine := os.Getpid()
			ins := runBin(t, "inspect", name)
			if ins.code != 0 {
				t.Fatalf("inspect failed: %v", ins)
			}
			out := ins.stdout.String()
			res := []string{
				`(?m)^  kind +mpmc\b`,
				`(?m)^  slots +64 of 128 bytes \(16-byte slot header\)$`,
				`(?m)^  max message +100 bytes$`,
				fmt.Sprintf(`(?m)^  creator +pid %d `, mine),
				`(?m)^  registry +64 entries, 2 in use`,
				fmt.Sprintf(`(?m)^    \[0\] role=producer pid=%d state=attached alive .*messages=10 bytes=400 `, mine),
			}
			if locked {
				res = append(res,
					`(?m)^  mode +locked\b`,
					`(?m)^  head +3 \(dequeue cursor, slot 3\)$`,
					`(?m)^  tail +10 \(enqueue cursor, slot 10\)$`,
					`(?m)^  depth +7 messages`,
					`(?m)^  free +semaphore 57 \(slots free, producers take\), 0 waiting$`,
					`(?m)^  filled +semaphore 7 \(messages, consumers take\), 0 waiting$`,
					`(?m)^  mutex P +unlocked`,
					`(?m)^  mutex C +unlocked`,
					fmt.Sprintf(`(?m)^    \[1\] role=consumer pid=%d state=attached alive .*messages=3 bytes=120 `, mine))
			} else {
				res = append(res,
					`(?m)^  mode +lock-free\b`,
					`(?m)^  head +4 \(dequeue cursor, slot 4\)$`,
					`(?m)^  tail +11 \(enqueue cursor, slot 11\)$`,
					`(?m)^  depth +7 messages`,
					`(?m)^  slot states +empty=56 writing=1 full=6 reading=1 `,
					fmt.Sprintf(`(?m)^  held slots +3 read by entry 1 \(pid %d, alive\); 10 written by entry 0 \(pid %d, alive\)$`, mine, mine),
					`(?m)^  parked +0 producer\(s\) waiting for space, 0 consumer\(s\) waiting for messages$`)
			}
			for _, re := range res {
				if !regexp.MustCompile(re).MatchString(out) {
					t.Errorf("inspect output does not match %s:\n%s", re, out)
				}
			}
			if strings.Contains(out, "] free") {
				t.Errorf("inspect lists free entries of an MPMC registry:\n%s", out)
			}

			// Corrupt cursors are reported, not trusted.
			h := q.Segment().Header()
			tail, err := q.Segment().Uint64(h.Producer + layout.CursorPosition)
			if err != nil {
				t.Fatal(err)
			}
			tail.Store(1)
			ins = runBin(t, "inspect", name)
			if ins.code != 0 || !strings.Contains(ins.stdout.String(), "tail is 2 behind head: the cursors are corrupt") &&
				!strings.Contains(ins.stdout.String(), "tail is 3 behind head: the cursors are corrupt") {
				t.Errorf("inspect with tail behind head: %v", ins)
			}
			tail.Store(1 << 40)
			if ins = runBin(t, "inspect", name); ins.code != 0 || !strings.Contains(ins.stdout.String(), "more than the slot count, the cursors are corrupt") {
				t.Errorf("inspect with tail far ahead: %v", ins)
			}
			if locked {
				w, err := q.Segment().Uint32(h.ConsumerWake + layout.WakeSemCount)
				if err != nil {
					t.Fatal(err)
				}
				w.Store(1 << 30)
				if ins = runBin(t, "inspect", name); ins.code != 0 || !strings.Contains(ins.stdout.String(), "semaphore 1073741824 (messages, consumers take), 0 waiting: more than the slot count, corrupt") {
					t.Errorf("inspect with a corrupt semaphore: %v", ins)
				}
			} else {
				w, err := q.Segment().Uint64(h.Data + layout.SlotSeq)
				if err != nil {
					t.Fatal(err)
				}
				w.Store(^uint64(0))
				if ins = runBin(t, "inspect", name); ins.code != 0 || !strings.Contains(ins.stdout.String(), "no entry (orphaned") {
					t.Errorf("inspect with a garbage sequence word: %v", ins)
				}
			}
			// Truncated: an error, not a crash.
			if err := os.Truncate(filepath.Join("/dev/shm", name), 4096); err != nil {
				t.Fatal(err)
			}
			ins = runBin(t, "inspect", name)
			if ins.code != 1 || strings.Count(ins.stderr.String(), "\n") != 1 || !strings.HasPrefix(ins.stderr.String(), "shmq-demo: inspect: ") {
				t.Errorf("inspect of a truncated queue: want exit 1 and one error line: %v", ins)
			}
		})
	}
}

// TestMPMCFlags checks the command-line errors of the MPMC options.
func TestMPMCFlags(t *testing.T) {
	spscName := queueName(t, "mpflag")
	q, err := spsc.Create(ring.Shm(spscName), spsc.Config{Capacity: 4096})
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"produce", "-kind", "mpmc", "-queue", "x", "-count", "1", "-size", "15"}, exitUsage,
			"-size 15 is too small for -kind mpmc: a payload carries an 8-byte sequence number and an 8-byte producer id, so at least 16 bytes"},
		{[]string{"produce", "-kind", "mpmc", "-queue", "x", "-count", "1", "-size", "64", "-max-message", "48"}, exitUsage, "-size 64 exceeds -max-message 48"},
		{[]string{"produce", "-queue", "x", "-count", "1", "-size", "64", "-locked"}, exitUsage, "apply to -kind mpmc only"},
		{[]string{"consume", "-queue", "x", "-count", "1", "-max-message", "64"}, exitUsage, "apply to -kind mpmc only"},
		{[]string{"produce", "-queue", "x", "-count", "1", "-size", "64", "-producer-id", "3"}, exitUsage, "-producer-id applies to -kind mpmc only"},
		{[]string{"consume", "-kind", "mpmc", "-queue", "x", "-first", "3"}, exitUsage, "-first applies to -kind spsc only"},
		{[]string{"consume", "-queue", "x", "-count", "1", "-done-wait", "1s"}, exitUsage, "-done-wait applies to -kind mpmc only"},
		{[]string{"consume", "-kind", "mpmc", "-queue", "x", "-done-wait", "0"}, exitUsage, "-count N is required"},
		{[]string{"produce", "-kind", "mpmc", "-queue", spscName, "-count", "1", "-size", "16", "-timeout", "5s"}, exitFail,
			fmt.Sprintf("wrong queue kind: shm:%s holds a spsc queue, not mpmc", spscName)},
		{[]string{"-mpmc-producers", "0"}, exitUsage, "-mpmc-producers and -mpmc-consumers must be between 1 and 16"},
		{[]string{"-mpmc-messages", "2", "-mpmc-producers", "3"}, exitUsage, "-mpmc-messages must be 0 (no MPMC phase) or at least -mpmc-producers"},
		{[]string{"-mpmc-messages", "100000001"}, exitUsage, "-mpmc-messages must be at most 100000000"},
	} {
		p := runBin(t, tc.args...)
		lines := strings.Split(strings.TrimSpace(p.stderr.String()), "\n")
		if p.code != tc.code || len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
			t.Errorf("want exit %d with one stderr line containing %q: %v", tc.code, tc.want, p)
		}
	}
}
