//go:build unix

package interop

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmq/shmq/mpmc"
	"github.com/shmq/shmq/spsc"
)

// Fork: OFD locks belong to an open file description, and fork shares
// descriptions, so shmq.h takes its locks through a description of its own
// that a forked child closes at once (its pthread_atfork handler) and
// reopens when it needs locks itself. These tests run the C side across a
// fork: workers forked after one open must get registry entries of their
// own, and a child that lives on must not keep a dead parent's roles alive.
// The latter also runs against a build without the fork handler
// (-DSHMQ_NO_ATFORK), where the child's inherited description does keep
// them alive: the failure the handler prevents, shown to be detectable.

// awaitPrefix starts cmd and waits until it prints a line starting with
// prefix, and returns the rest of that line. The process is killed when
// the test ends.
func awaitPrefix(t *testing.T, cmd *exec.Cmd, prefix string) string {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	// A child the command forks may hold its output pipes after it exits.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	got := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), prefix); ok {
				got <- rest
				return
			}
		}
		close(got)
	}()
	select {
	case rest, ok := <-got:
		if !ok {
			cmd.Wait()
			t.Fatalf("%s exited without printing %q; stderr: %s", cmd, prefix, stderr.String())
		}
		return rest
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not print %q; stderr: %s", cmd, prefix, stderr.String())
	}
	return ""
}

// holderChild parses "hanging child=PID" (after the prefix "hanging ") and
// arranges for the forked holder to be killed when the test ends: its
// parent is killed first, so nobody else reaps or kills it.
func holderChild(t *testing.T, rest string) int {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimPrefix(rest, "child="))
	if err != nil || pid <= 0 {
		t.Fatalf("C peer printed %q, want child=PID", rest)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	return pid
}

// forkedWorkers: the C side opens an MPMC queue once and forks two
// workers, each of which attaches a consumer through the inherited
// segment. They must hold different registry entries (sharing the
// parent's lock description, both would take entry 0 and free each
// other's slots), and every message is delivered exactly once.
func forkedWorkers(t *testing.T, bin string, env []string) {
	q, loc := newMPMC(t, mpmc.Config{Slots: 16, SlotSize: 64, Registry: 8})
	const count = 3000
	var stderr bytes.Buffer
	cmd := mpmcEnv(bin, env)("forkconsume", loc, "2")
	cmd.Stderr = &stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// Both workers attach before any message is sent, so that they hold
	// their entries at the same time (a worker that finished early would
	// free its entry for the other, legitimately).
	workers := map[string][]string{}
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	timeout := time.After(20 * time.Second)
	for n := 0; n < 2; {
		select {
		case line, ok := <-lines:
			if !ok {
				cmd.Wait()
				t.Fatalf("forked C consumers exited before attaching; stderr: %s", stderr.String())
			}
			w, rest, _ := strings.Cut(line, " ")
			workers[w] = append(workers[w], rest)
			if strings.HasPrefix(rest, "attached ") {
				n++
			}
		case <-timeout:
			t.Fatalf("forked C consumers did not attach; stderr: %s", stderr.String())
		}
	}
	p, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	buf := make([]byte, 32)
	for seq := uint64(0); seq < count; seq++ {
		if err := p.Send(ctx, mpmcMessage(buf, 0, seq)); err != nil {
			t.Fatalf("send %d: %v; C stderr: %s", seq, err, stderr.String())
		}
	}
	for i := 0; i < 2; i++ {
		if err := p.Send(ctx, mpmcMessage(make([]byte, 16), stopID, 0)); err != nil {
			t.Fatal(err)
		}
	}
	for line := range lines {
		w, rest, _ := strings.Cut(line, " ")
		workers[w] = append(workers[w], rest)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("forked C consumers: %v\noutput: %v\nstderr: %s", err, workers, stderr.String())
	}
	if len(workers) != 2 {
		t.Fatalf("output of %d workers, want 2: %v", len(workers), workers)
	}
	tl := newTally(1, count)
	entries := map[int]string{}
	var total uint64
	for w, lines := range workers {
		n, entry := parseCConsumer(t, strings.Join(lines[1:], "\n"), tl)
		if other, dup := entries[entry]; dup || entry < 0 || lines[0] != fmt.Sprintf("attached entry=%d", entry) {
			t.Fatalf("workers %s and %s both attached registry entry %d (%q)", other, w, entry, lines[0])
		}
		entries[entry] = w
		total += n
		t.Logf("worker %s: entry %d, %d messages", w, entry, n)
	}
	tl.check(t)
	if total != count {
		t.Fatalf("workers received %d messages, want %d", total, count)
	}
}

// forkCheck: a C producer reserves a slot and forks; in the child the
// parent's producer fails with SHMQ_EFORKED and its close touches nothing,
// and the child's own producer gets an entry of its own (the C program
// checks these). The Go consumer then gets the child's message and the
// parent's, committed after the child exited, and no tombstone.
func forkCheck(t *testing.T, bin string, env []string) {
	q, loc := newMPMC(t, mpmc.Config{Slots: 8, SlotSize: 64, Registry: 4})
	if out := output(t, mpmcEnv(bin, env)("forkcheck", loc)); out != "forkcheck ok\n" {
		t.Fatalf("forkcheck printed %q", out)
	}
	c, err := q.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sameIDs(t, "after the fork", recvIDs(t, ctx, c, 2), []string{"0:0", "1:0"})
	if c.Skipped() != 0 {
		t.Fatalf("consumer passed %d tombstones, want none (the child must not tombstone the parent's reservation)", c.Skipped())
	}
}

// spscParentDies: a C producer attaches, commits 5 messages, forks a child
// that keeps every descriptor, and is SIGKILLed. With the fork handler the
// Go consumer then sees the producer dead (ErrPeerDead); without it the
// child's copy of the lock description keeps the producer's role alive
// until the child dies too.
func spscParentDies(t *testing.T, produce string, env []string, handler bool) {
	q, loc, _ := newQueue(t, false, spsc.Config{Capacity: 1 << 12})
	c, err := q.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cmd := exec.Command(produce, loc, "100", "16")
	cmd.Env = append(append([]string{}, env...), "SHMQ_HANG_AFTER=5", "SHMQ_FORK_HOLDER=1")
	child := holderChild(t, awaitPrefix(t, cmd, "hanging "))
	buf := make([]byte, 64)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for seq := uint64(0); seq < 5; seq++ {
		n, err := c.Recv(ctx, buf)
		if err != nil {
			t.Fatal(err)
		}
		if err := verify(buf[:n], seq, 16); err != nil {
			t.Fatal(err)
		}
	}
	kill(cmd)
	// The Go consumer checks its peer's liveness every 100 ms.
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	_, err = c.Recv(short, buf)
	cancelShort()
	if handler {
		if !errors.Is(err, spsc.ErrPeerDead) {
			t.Fatalf("Recv after the C producer was killed (its forked child alive): %v, want ErrPeerDead", err)
		}
		return
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("without the fork handler, Recv returned %v; want it to wait (the child keeps the role alive)", err)
	}
	syscall.Kill(child, syscall.SIGKILL)
	if _, err := c.Recv(ctx, buf); !errors.Is(err, spsc.ErrPeerDead) {
		t.Fatalf("Recv after the child died as well: %v, want ErrPeerDead", err)
	}
}

// mpmcParentDies: a C producer commits 5 messages, claims a sixth slot,
// forks a child that keeps every descriptor, and is SIGKILLed. With the
// fork handler the Go consumer skips the dead claim and receives what a
// live producer sends next; without it the claim looks alive and holds
// every later message back until the child dies too.
func mpmcParentDies(t *testing.T, bin string, env []string, handler bool) {
	q, loc := newMPMC(t, mpmc.Config{Slots: 16, SlotSize: 64})
	c, err := q.Consumer() // entry 0
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cmd := mpmcEnv(bin, env, "SHMQ_HANG_AFTER=5", "SHMQ_FORK_HOLDER=1")("produce", loc, "0", "20", "16")
	child := holderChild(t, awaitPrefix(t, cmd, "hanging "))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sameIDs(t, "before the kill", recvIDs(t, ctx, c, 5), ids(0, 0, 5))
	kill(cmd)
	p, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.TrySend(mpmcMessage(make([]byte, 16), 1, 0)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	short, cancelShort := context.WithTimeout(ctx, 500*time.Millisecond)
	n, err := c.Recv(short, buf)
	cancelShort()
	if !handler {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("without the fork handler, Recv returned %v; want it to wait behind the claim the child keeps alive", err)
		}
		syscall.Kill(child, syscall.SIGKILL)
		n, err = c.Recv(ctx, buf)
	}
	if err != nil {
		t.Fatalf("Recv after the C producer was killed: %v", err)
	}
	if id, seq, err := mpmcCheck(buf[:n]); err != nil || id != 1 || seq != 0 {
		t.Fatalf("Recv got %d:%d (%v), want 1:0", id, seq, err)
	}
	if c.Skipped() != 1 {
		t.Fatalf("consumer skipped %d slots, want 1 (the dead producer's claim)", c.Skipped())
	}
}

func runFork(t *testing.T, cc string, sanitize bool) {
	var extra []string
	env := os.Environ()
	if sanitize {
		extra, env = sanitizeFlags, sanitizerEnv()
	}
	env = append(env, "SHMQ_TIMEOUT_MS=20000")
	mpmcBin := build(t, cc, t.TempDir(), "shmq_mpmc", extra...)
	produce := build(t, cc, t.TempDir(), "shmq_produce", extra...)
	noHandler := append([]string{"-DSHMQ_NO_ATFORK"}, extra...)
	mpmcBare := build(t, cc, t.TempDir(), "shmq_mpmc", noHandler...)
	produceBare := build(t, cc, t.TempDir(), "shmq_produce", noHandler...)
	t.Run("ForkedWorkers", func(t *testing.T) { forkedWorkers(t, mpmcBin, env) })
	t.Run("ForkedWorkersNoHandler", func(t *testing.T) { forkedWorkers(t, mpmcBare, env) })
	t.Run("ForkCheck", func(t *testing.T) { forkCheck(t, mpmcBin, env) })
	t.Run("ForkCheckNoHandler", func(t *testing.T) { forkCheck(t, mpmcBare, env) })
	t.Run("SPSCParentDies", func(t *testing.T) { spscParentDies(t, produce, env, true) })
	t.Run("SPSCParentDiesNoHandler", func(t *testing.T) { spscParentDies(t, produceBare, env, false) })
	t.Run("MPMCParentDies", func(t *testing.T) { mpmcParentDies(t, mpmcBin, env, true) })
	t.Run("MPMCParentDiesNoHandler", func(t *testing.T) { mpmcParentDies(t, mpmcBare, env, false) })
}

// TestFork runs the C side across fork: forked workers, and a forked child
// that outlives its parent.
func TestFork(t *testing.T) {
	runFork(t, compiler(t), false)
}

// TestForkSanitized repeats TestFork with the C built under
// -fsanitize=address,undefined.
func TestForkSanitized(t *testing.T) {
	cc := compiler(t)
	if ok, why := sanitizerAvailable(t, cc); !ok {
		t.Skipf("sanitizer runtime missing (%s -fsanitize=address,undefined failed): %s", cc, why)
	}
	runFork(t, cc, true)
}
