//go:build unix

package mpmc

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/shmq/shmq/layout"
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

// A consumer process killed while it holds a peeked message: the producer
// that reaches the slot a lap later finds it stuck and its holder dead,
// requeues the message, and another consumer receives it, exactly once;
// the producer is not wedged.
func TestCrashConsumerRequeued(t *testing.T) {
	q := newTestQueue(t, Config{Slots: 1, SlotSize: 64})
	p := mustProducer(t, q)
	c := mustConsumer(t, q) // attached first: the helper's entry stays free after it dies
	if err := p.TrySend([]byte("held")); err != nil {
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
	// With one slot, the requeued message must be taken before "next" fits.
	sent := make(chan error, 1)
	go func() { sent <- p.Send(ctx, []byte("next")) }()
	buf := make([]byte, 64)
	for _, want := range []string{"held", "next"} {
		n, err := c.Recv(ctx, buf)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("recv: %q %v, want %q", buf[:n], err, want)
		}
		if got := c.wasRequeued; got != (want == "held") {
			t.Fatalf("%q: requeued %v", want, got)
		}
	}
	if err := <-sent; err != nil {
		t.Fatalf("send after consumer death: %v", err)
	}
	t.Logf("dead consumer's message delivered again after %v", time.Since(begin))
	if d := time.Since(begin); d > time.Second {
		t.Fatalf("requeue took %v", d)
	}
	if p.Requeued() != 1 || c.Redelivered() != 1 {
		t.Fatalf("requeued %d, redelivered %d", p.Requeued(), c.Redelivered())
	}
	if n, err := c.TryRecv(buf); err != ErrEmpty {
		t.Fatalf("after the redelivery: %q %v", buf[:n], err)
	}
	checkIdle(t, q)
}

// Same, with the registry entry of the dead consumer reused by a new
// consumer, which orphans the held message as it attaches: the next
// producer requeues it at once, with no wait for the dead holder to be
// suspected.
func TestCrashConsumerEntryReused(t *testing.T) {
	q := newTestQueue(t, Config{Slots: 1, SlotSize: 64, Registry: 2})
	p := mustProducer(t, q) // entry 0
	if err := p.TrySend([]byte("held")); err != nil {
		t.Fatal(err)
	}
	cmd := helper(t, q, "hang-peek")
	startAndWaitReady(t, cmd) // entry 1
	killHelper(t, cmd.Process.Pid, cmd.Wait)
	c := retryAttach(t, q.Consumer)
	if w := q.seqs[0].Load(); w != layout.SeqWord(0, layout.SlotReading, layout.SeqOwnerOrphan) {
		t.Fatalf("held slot after the entry was reused: %#x", w)
	}
	// The first attempt requeues the message into the only slot, and then
	// finds the queue full.
	if err := p.TrySend([]byte("next")); err != ErrFull || p.Requeued() != 1 {
		t.Fatalf("send after the dead consumer's entry was reused: %v, requeued %d", err, p.Requeued())
	}
	buf := make([]byte, 64)
	if n, err := c.TryRecv(buf); err != nil || string(buf[:n]) != "held" || c.Redelivered() != 1 {
		t.Fatalf("recv: %q %v redelivered %d", buf[:n], err, c.Redelivered())
	}
	if err := p.TrySend([]byte("next")); err != nil {
		t.Fatal(err)
	}
	if n, err := c.TryRecv(buf); err != nil || string(buf[:n]) != "next" {
		t.Fatalf("recv: %q %v", buf[:n], err)
	}
	if n, err := c.TryRecv(buf); err != ErrEmpty {
		t.Fatalf("after the redelivery: %q %v", buf[:n], err)
	}
	checkIdle(t, q)
}

// A producer that requeues a message and dies between its claim
// W(p, SeqOwnerOrphan) and the publish: a consumer publishes the message
// for it, and it is delivered.
func TestRequeueFinishedByConsumer(t *testing.T) {
	q := newTestQueue(t, Config{Slots: 2, SlotSize: 64})
	p, c := mustProducer(t, q), mustConsumer(t, q)
	for _, m := range []string{"m", "a"} {
		if err := p.TrySend([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	// A consumer (entry 2, never attached) took "m" and died; a producer
	// helped the dequeue cursor, claimed the slot for position 2 and died.
	if !q.seqs[0].CompareAndSwap(layout.SeqWord(0, layout.SlotFull, 0), layout.SeqWord(0, layout.SlotReading, 2)) ||
		!q.deq.CompareAndSwap(0, 1) ||
		!q.seqs[0].CompareAndSwap(layout.SeqWord(0, layout.SlotReading, 2), layout.SeqWord(2, layout.SlotWriting, layout.SeqOwnerOrphan)) {
		t.Fatal("setup")
	}
	if err := p.TrySend([]byte("x")); err != ErrFull {
		t.Fatalf("send with a requeue pending: %v", err)
	}
	buf := make([]byte, 64)
	for _, want := range []string{"a", "m"} {
		if n, err := c.TryRecv(buf); err != nil || string(buf[:n]) != want {
			t.Fatalf("recv: %q %v, want %q", buf[:n], err, want)
		}
	}
	if c.Redelivered() != 1 || q.enq.Load() != 3 {
		t.Fatalf("redelivered %d, enqueue cursor %d", c.Redelivered(), q.enq.Load())
	}
	if err := p.TrySend([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if n, err := c.TryRecv(buf); err != nil || string(buf[:n]) != "x" {
		t.Fatalf("recv: %q %v", buf[:n], err)
	}
	checkIdle(t, q)
}

// A message requeued from a dead consumer whose length is out of range is
// not requeued: the producer reports corruption and leaves a tombstone,
// and the queue goes on.
func TestRequeueCorruptLength(t *testing.T) {
	q := newTestQueue(t, Config{Slots: 1, SlotSize: 64, MaxMessage: 40})
	p, c := mustProducer(t, q), mustConsumer(t, q)
	if err := p.TrySend([]byte("m")); err != nil {
		t.Fatal(err)
	}
	if !q.seqs[0].CompareAndSwap(layout.SeqWord(0, layout.SlotFull, 0), layout.SeqWord(0, layout.SlotReading, layout.SeqOwnerOrphan)) ||
		!q.deq.CompareAndSwap(0, 1) {
		t.Fatal("setup")
	}
	le32put(q.data[q.slot(0)+layout.SlotLength:], 41)
	if err := p.TrySend([]byte("x")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("requeue of a 41-byte message: %v", err)
	}
	if p.Requeued() != 0 {
		t.Fatalf("requeued %d", p.Requeued())
	}
	buf := make([]byte, 64)
	if n, err := c.TryRecv(buf); err != ErrEmpty || c.Skipped() != 1 {
		t.Fatalf("recv: %q %v, skipped %d", buf[:n], err, c.Skipped())
	}
	if err := p.TrySend([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if n, err := c.TryRecv(buf); err != nil || string(buf[:n]) != "x" {
		t.Fatalf("recv: %q %v", buf[:n], err)
	}
	checkIdle(t, q)
}

// A consumer that adopted a dead producer's claim to skip it, and died
// before it freed the slot, leaves W(p, itself): the next consumer skips
// the slot in turn, and nothing half-written is ever delivered.
func TestSkipAdoptedByDeadConsumer(t *testing.T) {
	q := newTestQueue(t, Config{Slots: 2, SlotSize: 64, Registry: 4})
	p, c := mustProducer(t, q), mustConsumer(t, q)
	if _, err := p.Reserve(5); err != nil { // position 0, never committed
		t.Fatal(err)
	}
	// Entry 3 (never attached: gone) adopted it and died.
	if !q.seqs[0].CompareAndSwap(layout.SeqWord(0, layout.SlotWriting, uint32(p.Index())), layout.SeqWord(0, layout.SlotWriting, 3)) {
		t.Fatal("setup")
	}
	p.pending = p.pending[:0] // the claim is no longer ours
	if err := p.TrySend([]byte("after")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	buf := make([]byte, 64)
	if n, err := c.Recv(ctx, buf); err != nil || string(buf[:n]) != "after" || c.Skipped() != 1 {
		t.Fatalf("recv: %q %v, skipped %d", buf[:n], err, c.Skipped())
	}
	checkIdle(t, q)
}

// checkIdle checks that every slot is free for its next position: no
// message is left held, orphaned or half-requeued.
func checkIdle(t *testing.T, q *Queue) {
	t.Helper()
	enq, deq := q.enq.Load(), q.deq.Load()
	if enq != deq {
		t.Fatalf("cursors enq %d deq %d", enq, deq)
	}
	for k := uint64(0); k < q.Slots(); k++ {
		pos := enq + k
		// Free for pos, or the previous lap's tombstone, which the producer
		// of pos claims over.
		w := q.seqs[pos&q.mask].Load()
		if w != layout.SeqWord(pos, layout.SlotEmpty, 0) && w != layout.SeqWord(pos-q.Slots(), layout.SlotFull, layout.SeqOwnerTomb) {
			t.Fatalf("slot %d holds %#x (state %d, owner %d), want E(%d)", pos&q.mask, w, layout.SeqState(w), layout.SeqOwner(w), pos)
		}
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
	p2.g.Close(nil)      // its memory is gone: keep Close from touching it
	delete(q2.producers, p2)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	buf := make([]byte, 64)
	if n, err := c.Recv(ctx, buf); err != nil || string(buf[:n]) != "b" {
		t.Fatalf("recv: %q %v", buf[:n], err)
	}
}
