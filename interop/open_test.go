//go:build linux

package interop

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestNotSegment: what sits at a queue's name without shmq's magic (an
// empty or zero-filled file, text, a directory, a FIFO) is not a segment
// (LAYOUT.md section 10): the C opener says so at once, without waiting
// for a creator, and leaves it where it is.
func TestNotSegment(t *testing.T) {
	cc := compiler(t)
	consume := build(t, cc, t.TempDir(), "shmq_consume")
	for _, tc := range []struct {
		name string
		make func(path string) error
	}{
		{"empty", func(p string) error { return os.WriteFile(p, nil, 0o600) }},
		{"zero-filled", func(p string) error { return os.WriteFile(p, make([]byte, 4096), 0o600) }},
		{"text", func(p string) error { return os.WriteFile(p, bytes.Repeat([]byte("not a queue\n"), 400), 0o600) }},
		{"directory", func(p string) error { return os.Mkdir(p, 0o700) }},
		{"fifo", func(p string) error { return syscall.Mkfifo(p, 0o600) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("shmq-itn-%d-%d", os.Getpid(), nameSeq.Add(1))
			path := filepath.Join("/dev/shm", name)
			if err := tc.make(path); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Remove(path) })
			cmd := exec.Command(consume, name, "1", "8")
			cmd.Env = append(os.Environ(), "SHMQ_TIMEOUT_MS=5000")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			start := time.Now()
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), "not a shmq segment") {
				t.Fatalf("C consumer on a %s at the name: %v, stderr %q; want exit 1, not a shmq segment", tc.name, err, stderr.String())
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("C consumer took %v to refuse a %s: it waited for a creator", d, tc.name)
			}
			if _, err := os.Lstat(path); err != nil {
				t.Fatalf("the %s at the name is gone: %v", tc.name, err)
			}
		})
	}
}
