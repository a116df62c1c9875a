package mpmc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shmq/shmq/ring"
)

// tempShm returns a fresh /dev/shm location, removed at the end of the test,
// and the path of its file.
func tempShm(t testing.TB) (ring.Location, string) {
	loc := ring.Shm(fmt.Sprintf("shmq-mt-%d-%d", os.Getpid(), memfdSeq.Add(1)))
	ring.Unlink(loc)
	t.Cleanup(func() { ring.Unlink(loc) })
	return loc, filepath.Join("/dev/shm", strings.TrimPrefix(loc.String(), "shm:"))
}

// BenchmarkSingle is one goroutine sending and receiving a 64-byte message
// per op (TrySend then TryRecv), on a sealed memfd (no truncation guard)
// and on a /dev/shm name (every call guarded against truncation): the
// difference is the guard's cost for two calls.
func BenchmarkSingle(b *testing.B) {
	for _, kind := range []string{"memfd", "shm"} {
		b.Run(kind, func(b *testing.B) {
			loc := ring.Memfd("bench")
			if kind == "shm" {
				loc, _ = tempShm(b)
			}
			q, err := Create(loc, Config{Slots: benchSlots, MaxMessage: benchMsgSize})
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			p, c := mustProducer(b, q), mustConsumer(b, q)
			msg, buf := make([]byte, benchMsgSize), make([]byte, benchMsgSize)
			b.SetBytes(benchMsgSize)
			b.ResetTimer()
			for range b.N {
				if err := p.TrySend(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := c.TryRecv(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestTruncatedUnderMapping: the file of a named queue is shrunk (through
// its path, as another process would) while the queue is mapped. Every call
// that touches the lost pages returns an error wrapping ring.ErrTruncated;
// the process does not die of SIGBUS. In both modes, for shm names and
// files; a sealed memfd cannot be truncated and is not guarded.
func TestTruncatedUnderMapping(t *testing.T) {
	for _, locked := range []bool{false, true} {
		for _, kind := range []string{"file", "shm"} {
			name := kind
			if locked {
				name = "locked-" + kind
			}
			t.Run(name, func(t *testing.T) { testTruncated(t, kind, locked) })
		}
	}
	q := newTestQueue(t, Config{Slots: 4, SlotSize: 64})
	if q.Segment().Shrinkable() || q.guarded {
		t.Fatal("a sealed memfd queue is guarded against truncation")
	}
}

func testTruncated(t *testing.T, kind string, locked bool) {
	var loc ring.Location
	var path string
	if kind == "file" {
		path = filepath.Join(t.TempDir(), "q")
		loc = ring.File(path)
	} else {
		loc, path = tempShm(t)
	}
	q, err := Create(loc, Config{Slots: 4, SlotSize: 64, Locked: locked})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		// Closing must not fault either; errors are expected.
		q.Close()
	}()
	if !q.Segment().Shrinkable() || !q.guarded {
		t.Fatal("a named queue is not guarded against truncation")
	}
	p, c := mustProducer(t, q), mustConsumer(t, q)
	for _, m := range []string{"a", "b"} {
		if err := p.TrySend([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	buf := make([]byte, 64)
	type call struct {
		name string
		call func() error
	}
	calls := []call{
		{"TryRecv", func() error { _, err := c.TryRecv(buf); return err }},
		{"Recv", func() error { _, err := c.Recv(ctx, buf); return err }},
		{"TryRecvBatch", func() error {
			_, err := c.TryRecvBatch(2, func([]byte) error { return nil })
			return err
		}},
		{"TrySend", func() error { return p.TrySend([]byte("x")) }},
		{"Send", func() error { return p.Send(ctx, []byte("x")) }},
		{"TrySendBatch", func() error { _, err := p.TrySendBatch([][]byte{[]byte("x")}); return err }},
		{"SendBatch", func() error { return p.SendBatch(ctx, [][]byte{[]byte("x")}) }},
		{"Stats", func() error { _, err := q.Stats(); return err }},
		{"Entries", func() error { _, err := q.Entries(); return err }},
		{"Producer", func() error { _, err := q.Producer(); return err }},
		{"Consumer", func() error { _, err := q.Consumer(); return err }},
	}
	if !locked {
		calls = append(calls,
			call{"Peek", func() error { _, err := c.Peek(); return err }},
			call{"Reserve", func() error { _, err := p.Reserve(1); return err }})
	}
	for _, tc := range calls {
		if err := tc.call(); !errors.Is(err, ring.ErrTruncated) {
			t.Errorf("%s after truncation: %v, want ring.ErrTruncated", tc.name, err)
		}
	}
	if err := p.Close(); !errors.Is(err, ring.ErrTruncated) {
		t.Errorf("producer Close after truncation: %v, want ring.ErrTruncated", err)
	}
}
