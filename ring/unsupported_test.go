//go:build !unix

package ring

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/shmq/shmq/layout"
)

// TestUnsupported: without the Unix system interface (mmap, fcntl record
// locks) every way to reach a segment fails with ErrUnsupported, which
// matches errors.ErrUnsupported too, and nothing panics or deletes a file.
// CI runs it on js/wasm.
func TestUnsupported(t *testing.T) {
	h, err := layout.PlanSPSC(4096, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(shmDir) }) // made by Shm's path, if empty
	dir := t.TempDir()
	path := filepath.Join(dir, "q")
	if err := os.WriteFile(path, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	check := func(call string, err error) {
		t.Helper()
		if !errors.Is(err, ErrUnsupported) || !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", call, err)
		}
	}
	_, err = Create(Shm("shmq-unsupported"), h, nil, nil)
	check("Create(Shm)", err)
	_, err = Create(File(filepath.Join(dir, "new")), h, nil, nil)
	check("Create(File)", err)
	_, err = Create(Memfd("m"), h, nil, nil)
	check("Create(Memfd)", err)
	_, err = Open(ctx, Shm("shmq-unsupported"), 0, nil)
	check("Open(Shm)", err)
	_, err = Open(ctx, File(path), 0, nil)
	check("Open(File)", err)
	_, err = Open(ctx, FD(0), 0, nil)
	check("Open(FD)", err)
	_, err = OpenView(ctx, File(path))
	check("OpenView", err)
	_, err = Inspect(ctx, File(path))
	check("Inspect", err)
	_, err = Reap(ctx, File(path), nil)
	check("Reap", err)
	check("Remove", Remove(File(path)))
	check("RemoveAbandoned", RemoveAbandoned(File(path)))
	check("Unlink", Unlink(File(path)))
	infos, err := List(dir)
	if err != nil || len(infos) != 1 {
		t.Fatalf("List = %v, %v; want one entry", infos, err)
	}
	check("List's entry", infos[0].Err)
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the file survives: %v", err)
	}
}
