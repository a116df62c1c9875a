package spsc

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/shmq/shmq/ring"
)

// TestTruncatedUnderMapping: another process shrinks the file of a named
// segment while it is mapped. Calls that touch the lost pages return
// ErrTruncated; the process does not die of SIGBUS.
func TestTruncatedUnderMapping(t *testing.T) {
	for _, kind := range []string{"file", "shm"} {
		t.Run(kind, func(t *testing.T) {
			var loc ring.Location
			var path string
			if kind == "file" {
				path = filepath.Join(t.TempDir(), "q")
				loc = ring.File(path)
			} else {
				loc = tempShm(t)
				path = "/dev/shm/" + queueName(loc)
			}
			q, p, c := newPair(t, loc, Config{Capacity: 1 << 12})
			if !q.Segment().Shrinkable() {
				t.Fatal("a named segment reports that it cannot be truncated")
			}
			if err := p.TrySend([]byte("before")); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
			if _, err := c.TryRecv(make([]byte, 64)); !errors.Is(err, ring.ErrTruncated) {
				t.Fatalf("TryRecv after truncation: %v", err)
			}
			if err := p.TrySend([]byte("after")); !errors.Is(err, ring.ErrTruncated) {
				t.Fatalf("TrySend after truncation: %v", err)
			}
			if _, err := q.Stats(); !errors.Is(err, ring.ErrTruncated) {
				t.Fatalf("Stats after truncation: %v", err)
			}
		})
	}
	q, _, _ := newPair(t, ring.Memfd("sealed"), Config{Capacity: 1 << 12})
	if q.Segment().Shrinkable() {
		t.Fatal("a sealed memfd reports that it can be truncated")
	}
}
