package spsc

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
)

// TestLastPosition: the position of each peeked message is its record's,
// across padding at the wrap of the ring and the wrap of the 64-bit
// cursors; Rewind, Release and the releasing calls forget it; a new
// consumer sees the messages a closed one left at the same positions.
func TestLastPosition(t *testing.T) {
	const capacity = 256
	start := ^uint64(0) - 1023 // the cursors wrap after four laps
	loc := ring.File(filepath.Join(t.TempDir(), "q"))
	q, p, c := newPair(t, loc, Config{Capacity: capacity, StartPosition: start})
	if pos, ok := c.LastPosition(); ok || pos != 0 {
		t.Fatalf("before any Peek: %d, %v", pos, ok)
	}
	tail := start
	var want []uint64 // positions of the records sent and not yet peeked
	send := func(n int) {
		t.Helper()
		pos := tail
		if room := capacity - tail%capacity; layout.RecordSize(n) > room {
			pos += room // after a padding record
		}
		if err := p.TrySend(bytes.Repeat([]byte{byte(n)}, n)); err != nil {
			t.Fatal(err)
		}
		tail = pos + layout.RecordSize(n)
		want = append(want, pos)
	}
	peek := func() {
		t.Helper()
		m, err := c.Peek()
		if err != nil {
			t.Fatal(err)
		}
		pos, ok := c.LastPosition()
		if !ok || pos != want[0] {
			t.Fatalf("message of %d bytes: position %#x, %v; want %#x", len(m), pos, ok, want[0])
		}
		want = want[1:]
	}
	for lap := range 12 {
		n := 40 + lap // 48- to 56-byte records leave gaps at the end of the ring
		send(n)
		send(n)
		send(n)
		sent := append([]uint64(nil), want...)
		peek()
		peek()
		// Rewind forgets the peeks; peeking again finds the same positions.
		c.Rewind()
		if _, ok := c.LastPosition(); ok {
			t.Fatal("a position after Rewind")
		}
		want = sent
		peek()
		peek()
		peek()
		if err := c.Release(); err != nil {
			t.Fatal(err)
		}
		if _, ok := c.LastPosition(); ok {
			t.Fatal("a position after Release")
		}
	}
	if tail > start {
		t.Fatalf("tail %#x did not wrap past 2^64 from %#x", tail, start)
	}

	// A TryRecv that fails for a short buffer leaves the peeked message's
	// position; one that succeeds releases it.
	send(10)
	send(20)
	peek()
	first := tail - layout.RecordSize(20) - layout.RecordSize(10)
	if _, err := c.TryRecv(make([]byte, 5)); err == nil {
		t.Fatal("TryRecv into a short buffer succeeded")
	}
	if pos, ok := c.LastPosition(); !ok || pos != first {
		t.Fatalf("after a failed TryRecv: %#x, %v; want %#x", pos, ok, first)
	}
	if _, err := c.TryRecv(make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.LastPosition(); ok {
		t.Fatal("a position after TryRecv released the peeked message")
	}

	// PeekWait notes the position of the message it waited for.
	want = want[:0]
	lateSent := make(chan struct{})
	go func() {
		defer close(lateSent)
		time.Sleep(10 * time.Millisecond)
		p.TrySend([]byte("late"))
	}()
	late := tail
	if room := capacity - tail%capacity; layout.RecordSize(4) > room {
		late += room
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if m, err := c.PeekWait(ctx); err != nil || string(m) != "late" {
		t.Fatalf("PeekWait: %q, %v", m, err)
	}
	if pos, ok := c.LastPosition(); !ok || pos != late {
		t.Fatalf("after PeekWait: %#x, %v; want %#x", pos, ok, late)
	}
	tail = late + layout.RecordSize(4)
	// The producer is the sender goroutine's until its TrySend returned,
	// which may be after the consumer saw the message.
	<-lateSent

	// A consumer closed with messages peeked leaves them; the next one
	// sees them at the same positions.
	send(30)
	c.Peek()
	c.Peek()
	held, _ := c.LastPosition()
	c.Close()
	if _, ok := c.LastPosition(); ok {
		t.Fatal("a position after Close")
	}
	c2, err := q.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.Peek()
	if m, err := c2.Peek(); err != nil || len(m) != 30 {
		t.Fatalf("second message for the next consumer: %d bytes, %v", len(m), err)
	}
	if pos, ok := c2.LastPosition(); !ok || pos != held {
		t.Fatalf("next consumer: %#x, %v; want %#x", pos, ok, held)
	}
	var nilConsumer *Consumer
	if _, ok := nilConsumer.LastPosition(); ok {
		t.Fatal("a position for a nil consumer")
	}
}
