//go:build unix

package mpmc

import (
	"context"
	"testing"
	"time"
)

// TestLastPosition: each peeked message's position is the one it was
// committed at, across laps of the ring; Release, TryRecv and Close forget
// it; locked mode has none.
func TestLastPosition(t *testing.T) {
	const start = 1<<40 - 3
	q := newTestQueue(t, Config{Slots: 4, SlotSize: 64, StartPosition: start})
	p, c := mustProducer(t, q), mustConsumer(t, q)
	if pos, ok := c.LastPosition(); ok || pos != 0 || c.LastRequeued() {
		t.Fatalf("before any Peek: %d, %v", pos, ok)
	}
	pos := uint64(start)
	for round := range 5 {
		for i := range 3 {
			if err := p.TrySend([]byte{byte(round), byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 3 {
			m, err := c.Peek()
			if err != nil || m[0] != byte(round) || m[1] != byte(i) {
				t.Fatalf("Peek: %v, %v", m, err)
			}
			if got, ok := c.LastPosition(); !ok || got != pos || c.LastRequeued() {
				t.Fatalf("message %v: position %d, %v, requeued %v; want %d", m, got, ok, c.LastRequeued(), pos)
			}
			pos++
		}
		if err := c.Release(); err != nil {
			t.Fatal(err)
		}
		if _, ok := c.LastPosition(); ok {
			t.Fatal("a position after Release")
		}
	}

	// PeekWait notes the position it waited for; TryRecv releases it.
	lateSent := make(chan struct{})
	go func() {
		defer close(lateSent)
		time.Sleep(10 * time.Millisecond)
		p.TrySend([]byte("late"))
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if m, err := c.PeekWait(ctx); err != nil || string(m) != "late" {
		t.Fatalf("PeekWait: %q, %v", m, err)
	}
	if got, ok := c.LastPosition(); !ok || got != pos {
		t.Fatalf("after PeekWait: %d, %v; want %d", got, ok, pos)
	}
	if _, err := c.TryRecv(make([]byte, 64)); err != ErrEmpty {
		t.Fatalf("TryRecv: %v", err)
	}
	if _, ok := c.LastPosition(); ok {
		t.Fatal("a position after TryRecv released the peeked message")
	}
	// The producer is the sender goroutine's until its TrySend returned,
	// which may be after the consumer saw the message.
	<-lateSent
	p.TrySend([]byte("x"))
	c.Peek()
	c.Close()
	if _, ok := c.LastPosition(); ok {
		t.Fatal("a position after Close")
	}

	lq := newTestQueue(t, Config{Slots: 4, SlotSize: 64, Locked: true})
	lp, lc := mustProducer(t, lq), mustConsumer(t, lq)
	lp.TrySend([]byte("m"))
	if _, err := lc.TryRecv(make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	if _, ok := lc.LastPosition(); ok {
		t.Fatal("a position in locked mode")
	}
	var nilConsumer *Consumer
	if _, ok := nilConsumer.LastPosition(); ok || nilConsumer.LastRequeued() {
		t.Fatal("a position for a nil consumer")
	}
}

// TestLastRequeued: a message that a consumer process died holding is
// requeued one ring later, and the consumer that peeks it again sees it as
// requeued, at its first position plus the slot count, for as long as it
// holds it, whatever it takes meanwhile.
func TestLastRequeued(t *testing.T) {
	const start = 1 << 33
	q := newTestQueue(t, Config{Slots: 2, SlotSize: 64, StartPosition: start})
	p := mustProducer(t, q)
	c := mustConsumer(t, q) // attached first: the helper's entry stays free after it dies
	if err := p.TrySend([]byte("held")); err != nil {
		t.Fatal(err)
	}
	cmd := helper(t, q, "hang-peek")
	startAndWaitReady(t, cmd)
	killHelper(t, cmd.Process.Pid, cmd.Wait)
	if err := p.TrySend([]byte("a")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n, err := c.TryRecv(buf); err != nil || string(buf[:n]) != "a" {
		t.Fatalf("TryRecv: %q, %v", buf[:n], err)
	}
	// The producer of the next lap requeues the held message at start+2,
	// then commits "next" at start+3.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Send(ctx, []byte("next")); err != nil {
		t.Fatal(err)
	}
	m, err := c.PeekWait(ctx)
	if err != nil || string(m) != "held" {
		t.Fatalf("PeekWait: %q, %v; want the requeued message", m, err)
	}
	check := func(when string) {
		t.Helper()
		pos, ok := c.LastPosition()
		if !ok || pos != start+2 || !c.LastRequeued() || pos-q.Slots() != start {
			t.Fatalf("%s: position %d, %v, requeued %v; want %d, requeued from %d", when, pos, ok, c.LastRequeued(), uint64(start+2), uint64(start))
		}
	}
	check("after PeekWait")
	// A message taken and released by TryRecvBatch, not requeued, changes
	// neither: the peeked one is still held.
	if n, err := c.TryRecvBatch(1, func(m []byte) error {
		if string(m) != "next" {
			t.Errorf("TryRecvBatch: %q, want next", m)
		}
		return nil
	}); n != 1 || err != nil {
		t.Fatalf("TryRecvBatch: %d, %v", n, err)
	}
	check("after TryRecvBatch")
	if err := c.Release(); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.LastPosition(); ok || c.LastRequeued() {
		t.Fatal("a position after Release")
	}
	if p.Requeued() != 1 || c.Redelivered() != 1 {
		t.Fatalf("requeued %d, redelivered %d", p.Requeued(), c.Redelivered())
	}
}
