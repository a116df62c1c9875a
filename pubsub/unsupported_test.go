//go:build !unix

package pubsub_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/shmq/shmq/pubsub"
	"github.com/shmq/shmq/ring"
)

// TestUnsupported: without the Unix system interface a queue can be
// neither created nor opened, and the error says so (pubsub.ErrUnsupported,
// errors.ErrUnsupported) rather than panicking. CI runs it on js/wasm.
func TestUnsupported(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q")
	if err := os.WriteFile(path, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	check := func(call string, q *pubsub.Queue, err error) {
		t.Helper()
		if q != nil || !errors.Is(err, pubsub.ErrUnsupported) || !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("%s = %v, %v; want ErrUnsupported", call, q, err)
		}
	}
	q, err := pubsub.Create(ring.File(filepath.Join(filepath.Dir(path), "new")), pubsub.Config{})
	check("Create(File)", q, err)
	q, err = pubsub.Create(ring.Memfd("q"), pubsub.Config{})
	check("Create(Memfd)", q, err)
	q, err = pubsub.Open(ctx, ring.File(path), nil)
	check("Open(File)", q, err)
	q, err = pubsub.OpenOrCreate(ctx, ring.File(path), pubsub.Config{})
	check("OpenOrCreate(File)", q, err)
}
