//go:build !unix

package mpmc_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/shmq/shmq/mpmc"
	"github.com/shmq/shmq/ring"
)

// TestUnsupported: without the Unix system interface a queue can be
// neither created nor opened, and the error says so (mpmc.ErrUnsupported,
// errors.ErrUnsupported) rather than panicking. CI runs it on js/wasm.
func TestUnsupported(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q")
	if err := os.WriteFile(path, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	check := func(call string, q *mpmc.Queue, err error) {
		t.Helper()
		if q != nil || !errors.Is(err, mpmc.ErrUnsupported) || !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("%s = %v, %v; want ErrUnsupported", call, q, err)
		}
	}
	q, err := mpmc.Create(ring.File(filepath.Join(filepath.Dir(path), "new")), mpmc.Config{})
	check("Create(File)", q, err)
	q, err = mpmc.Create(ring.Memfd("q"), mpmc.Config{})
	check("Create(Memfd)", q, err)
	q, err = mpmc.Open(ctx, ring.File(path), nil)
	check("Open(File)", q, err)
	q, err = mpmc.OpenOrCreate(ctx, ring.File(path), mpmc.Config{})
	check("OpenOrCreate(File)", q, err)
}
