package pubsub

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
	path := filepath.Join(t.TempDir(), "q")
	q, err := Create(ring.File(path), Config{Capacity: 1 << 12})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if !q.Segment().Shrinkable() {
		t.Fatal("a file segment reports that it cannot be truncated")
	}
	p := mustPublisher(t, q)
	s := mustSubscriber(t, q, FromNext)
	if err := p.TrySend([]byte("before")); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TryRecv(make([]byte, 64)); !errors.Is(err, ErrTruncated) {
		t.Fatalf("TryRecv after truncation: %v", err)
	}
	if err := p.TrySend([]byte("after")); !errors.Is(err, ErrTruncated) {
		t.Fatalf("TrySend after truncation: %v", err)
	}
	if _, err := q.Stats(); !errors.Is(err, ErrTruncated) {
		t.Fatalf("Stats after truncation: %v", err)
	}
	if _, err := q.Subscriber(FromNext); !errors.Is(err, ErrTruncated) {
		t.Fatalf("Subscriber after truncation: %v", err)
	}
}
