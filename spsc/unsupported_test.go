//go:build !unix

package spsc_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/spsc"
)

// TestUnsupported: without the Unix system interface a queue can be
// neither created nor opened, and the error says so (spsc.ErrUnsupported,
// errors.ErrUnsupported) rather than panicking. CI runs it on js/wasm.
func TestUnsupported(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q")
	if err := os.WriteFile(path, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	check := func(call string, q *spsc.Queue, err error) {
		t.Helper()
		if q != nil || !errors.Is(err, spsc.ErrUnsupported) || !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("%s = %v, %v; want ErrUnsupported", call, q, err)
		}
	}
	q, err := spsc.Create(ring.File(filepath.Join(filepath.Dir(path), "new")), spsc.Config{})
	check("Create(File)", q, err)
	q, err = spsc.Create(ring.Memfd("q"), spsc.Config{})
	check("Create(Memfd)", q, err)
	q, err = spsc.Open(ctx, ring.File(path), nil)
	check("Open(File)", q, err)
	q, err = spsc.OpenOrCreate(ctx, ring.File(path), spsc.Config{})
	check("OpenOrCreate(File)", q, err)
}
