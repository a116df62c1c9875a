package interop

import (
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/shmq/shmq/spsc"
)

// TestPythonConsumer runs layout/c/consume.py, a ctypes consumer over a
// shared library built from layout/c/shmq_py.c, against a Go producer.
// Without python3 it skips, except under CI.
func TestPythonConsumer(t *testing.T) {
	cc := compiler(t)
	py, err := exec.LookPath("python3")
	if err != nil {
		if inCI() {
			t.Fatal("python3 not found; CI requires it for the ctypes example")
		}
		t.Skip("python3 not found")
	}
	dir := t.TempDir()
	lib := filepath.Join(dir, "libshmq_py.so")
	args := append(append([]string{}, cflags...), "-shared", "-fPIC", filepath.Join(srcDir(t), "shmq_py.c"), "-o", lib)
	if b, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", cc, args, err, b)
	}
	const count = 3000
	sizes := sizeSpec{1, 300}
	q, loc, files := newQueue(t, false, spsc.Config{Capacity: 4096})
	p, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cmd := exec.Command(py, filepath.Join(srcDir(t), "consume.py"), lib, loc, fmt.Sprint(count), sizes.String())
	cmd.Env, cmd.ExtraFiles = os.Environ(), files
	ctx, wait := start(t, cmd)
	var crc uint32
	var total uint64
	buf := make([]byte, sizes.max)
	for seq := uint64(0); seq < count; seq++ {
		m := buf[:sizes.size(seq)]
		fill(m, seq)
		if err := p.Send(ctx, m); err != nil {
			wait()
			t.Fatalf("send %d: %v", seq, err)
		}
		crc = crc32.Update(crc, castagnoli, m)
		total += uint64(len(m))
	}
	if got, want := wait(), summary(count, total, crc); got != want {
		t.Fatalf("consume.py printed %q, want %q", got, want)
	}
}
