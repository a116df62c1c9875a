package mpmc

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"
)

// killHelper SIGKILLs a helper started by startAndWaitReady and reaps it.
func killHelper(t *testing.T, pid int, wait func() error) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wait()
}

// retryAttach calls attach until it stops failing with ErrRegistryFull.
// The kernel drops a dead process's locks when the last reference to its
// open file goes, which (if, say, khugepaged held its mm at that moment)
// can be a moment after wait(2) has returned.
func retryAttach[T any](t *testing.T, attach func() (T, error)) T {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, err := attach()
		if err == nil {
			return v
		}
		if !errors.Is(err, ErrRegistryFull) || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
}

// A producer process killed while it holds a reserved slot: the slot is
// traceable to it, and consumers skip it within a bounded time instead of
// stalling behind it forever.
func TestCrashProducerSkipped(t *testing.T) {
	q := newTestQueue(t, Config{Slots: 4, SlotSize: 64})
	p, c := mustProducer(t, q), mustConsumer(t, q)
	cmd := helper(t, q, "hang-reserve")
	startAndWaitReady(t, cmd)
	if err := p.TrySend([]byte("after")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if _, err := c.TryRecv(buf); err != ErrEmpty {
		t.Fatalf("slot reserved by a live producer: %v", err)
	}
	killHelper(t, cmd.Process.Pid, cmd.Wait)
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := c.Recv(ctx, buf)
	if err != nil || string(buf[:n]) != "after" {
		t.Fatalf("recv after producer death: %q %v", buf[:n], err)
	}
	if c.Skipped() != 1 {
		t.Fatalf("skipped %d slots", c.Skipped())
	}
	t.Logf("dead producer's slot skipped after %v", time.Since(begin))
	if d := time.Since(begin); d > time.Second {
		t.Fatalf("skip took %v", d)
	}
}

// A producer process killed while it holds a reserved slot, and a new
// producer that takes over its registry entry: the new holder turns the
// stale claim into a tombstone at once.
func TestCrashProducerEntryReused(t *testing.T) {
	q := newTestQueue(t, Config{Slots: 4, SlotSize: 64, Registry: 3})
	c := mustConsumer(t, q) // entry 0
	cmd := helper(t, q, "hang-reserve")
	startAndWaitReady(t, cmd) // entry 1
	killHelper(t, cmd.Process.Pid, cmd.Wait)
	p := retryAttach(t, q.Producer)
	if p.Index() != 1 {
		t.Fatalf("new producer took entry %d", p.Index())
	}
	if err := p.TrySend([]byte("after")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := c.TryRecv(buf)
	if err != nil || string(buf[:n]) != "after" || c.Skipped() != 1 {
		t.Fatalf("recv: %q %v skipped %d", buf[:n], err, c.Skipped())
	}
}

// A consumer process killed while it holds a peeked slot: producers take
// the slot back once they find it stuck and its holder dead.
func TestCrashConsumerReclaimed(t *testing.T) {
	q := newTestQueue(t, Config{Slots: 1, SlotSize: 64})
	p := mustProducer(t, q)
	if err := p.TrySend([]byte("lost")); err != nil {
		t.Fatal(err)
	}
	cmd := helper(t, q, "hang-peek")
	startAndWaitReady(t, cmd)
	if err := p.TrySend([]byte("x")); err != ErrFull {
		t.Fatalf("slot held by a live consumer: %v", err)
	}
	killHelper(t, cmd.Process.Pid, cmd.Wait)
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Send(ctx, []byte("next")); err != nil {
		t.Fatalf("send after consumer death: %v", err)
	}
	if p.Reclaimed() != 1 {
		t.Fatalf("reclaimed %d", p.Reclaimed())
	}
	if d := time.Since(begin); d > time.Second {
		t.Fatalf("reclaim took %v", d)
	}
	c := mustConsumer(t, q)
	buf := make([]byte, 64)
	if n, err := c.TryRecv(buf); err != nil || string(buf[:n]) != "next" {
		t.Fatalf("recv: %q %v", buf[:n], err)
	}
}

// Same, with the registry entry of the dead consumer reused by a new
// consumer, which frees the slot as it attaches.
func TestCrashConsumerEntryReused(t *testing.T) {
	q := newTestQueue(t, Config{Slots: 1, SlotSize: 64, Registry: 2})
	p := mustProducer(t, q) // entry 0
	if err := p.TrySend([]byte("lost")); err != nil {
		t.Fatal(err)
	}
	cmd := helper(t, q, "hang-peek")
	startAndWaitReady(t, cmd) // entry 1
	killHelper(t, cmd.Process.Pid, cmd.Wait)
	c := retryAttach(t, q.Consumer)
	if err := p.TrySend([]byte("next")); err != nil {
		t.Fatalf("send after the dead consumer's entry was reused: %v", err)
	}
	buf := make([]byte, 64)
	if n, err := c.TryRecv(buf); err != nil || string(buf[:n]) != "next" {
		t.Fatalf("recv: %q %v", buf[:n], err)
	}
}

// In-process death: a handle whose mapping is closed without detaching
// looks, to the registry, like a process that died.
func TestAbandonedHandle(t *testing.T) {
	q := newTestQueue(t, Config{Slots: 2, SlotSize: 64})
	c := mustConsumer(t, q)
	q2 := reopen(t, q)
	p2 := mustProducer(t, q2)
	if _, err := p2.Reserve(4); err != nil {
		t.Fatal(err)
	}
	p := mustProducer(t, q)
	if err := p.TrySend([]byte("b")); err != nil {
		t.Fatal(err)
	}
	q2.Segment().Close() // "dies" holding the reservation
	p2.closed = true     // its memory is gone: keep Close from touching it
	delete(q2.producers, p2)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	buf := make([]byte, 64)
	if n, err := c.Recv(ctx, buf); err != nil || string(buf[:n]) != "b" {
		t.Fatalf("recv: %q %v", buf[:n], err)
	}
}
