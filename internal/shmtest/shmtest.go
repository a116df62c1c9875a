// Package shmtest is test support shared by shmq's packages: for those that
// share raw memory between processes without a segment (notify, sem), a
// small shared file, typed words in its mapping, and the helper-process
// pattern of os/exec's tests, in which the test binary re-executes itself to
// run one named helper; for the queues, the checks that blocking costs no
// CPU while idle and no wake system call per message while streaming.
package shmtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/shmq/shmq/internal/unix"
)

// Size is the size of a shared test file.
const Size = 4096

// NewFile creates a zeroed file of Size bytes for a MAP_SHARED mapping.
func NewFile(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "shm")
	if err := os.WriteFile(p, make([]byte, Size), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Map maps path MAP_SHARED read-write. Helpers never unmap (they exit).
func Map(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return unix.Mmap(int(f.Fd()), 0, Size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
}

// MapNew creates a shared file and maps it for the rest of the test.
func MapNew(t testing.TB) (string, []byte) {
	t.Helper()
	path := NewFile(t)
	mem, err := Map(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	return path, mem
}

// Word64 returns the i-th 64-bit word of mem as an atomic, checking bounds
// and alignment before the cast.
func Word64(mem []byte, i int) *atomic.Uint64 {
	off := 8 * i
	if i < 0 || off+8 > len(mem) {
		panic("shmtest: word out of range")
	}
	p := unsafe.Pointer(&mem[off])
	if uintptr(p)%8 != 0 {
		panic("shmtest: word misaligned")
	}
	return (*atomic.Uint64)(p)
}

// Word returns the i-th 32-bit word of mem as an atomic, checking bounds
// and alignment before the cast.
func Word(mem []byte, i int) *atomic.Uint32 {
	off := 4 * i
	if i < 0 || off+4 > len(mem) {
		panic("shmtest: word out of range")
	}
	p := unsafe.Pointer(&mem[off])
	if uintptr(p)%4 != 0 {
		panic("shmtest: word misaligned")
	}
	return (*atomic.Uint32)(p)
}

// Helpers maps a helper's name to the function it runs in the child, given
// the shared file's path and its mapping; the result is the exit status.
type Helpers map[string]func(path string, mem []byte) int

// Env names the environment variables that carry a helper's name and its
// shared file to the child; each package picks its own.
type Env struct{ Mode, Path string }

// RunIfHelper runs the requested helper and exits if this process is one.
// Call it first in TestMain.
func (e Env) RunIfHelper(hs Helpers) {
	mode := os.Getenv(e.Mode)
	if mode == "" {
		return
	}
	f, ok := hs[mode]
	if !ok {
		fmt.Fprintln(os.Stderr, "unknown helper", mode)
		os.Exit(2)
	}
	path := os.Getenv(e.Path)
	mem, err := Map(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(f(path, mem))
}

// Start starts the test binary as the helper mode on the shared file at
// path; it is killed at the end of the test if still running.
func (e Env) Start(t testing.TB, mode, path string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), e.Mode+"="+mode, e.Path+"="+path)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// WaitExit waits for cmd to exit within d and fails unless it exits 0.
func WaitExit(t testing.TB, cmd *exec.Cmd, d time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("helper: %v", err)
		}
	case <-time.After(d):
		t.Fatalf("helper did not exit within %v", d)
	}
}

// IdlePeriod is how long the idle-CPU tests block: 500 ms, or $SHMQ_IDLE
// (for example SHMQ_IDLE=10s) for a longer measurement.
func IdlePeriod() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("SHMQ_IDLE")); err == nil {
		return d
	}
	return 500 * time.Millisecond
}

// CheckIdleRecv calls recv, which must block on an empty queue until its
// context ends, for IdlePeriod, and fails t if recv returned a message or
// the process used more than 4% of that period in CPU time (a poller uses
// far more; a parked waiter that wakes once a second, far less).
func CheckIdleRecv(t testing.TB, recv func(ctx context.Context) error) {
	t.Helper()
	if !haveCPUTime {
		t.Skip("no process CPU time on " + runtime.GOOS)
	}
	idle := IdlePeriod()
	before := cpuTime()
	ctx, cancel := context.WithTimeout(context.Background(), idle)
	defer cancel()
	if err := recv(ctx); err == nil {
		t.Fatal("Recv on an empty queue returned a message")
	}
	cpu := cpuTime() - before
	t.Logf("CPU while blocked for %v: %v", idle, cpu)
	if cpu > idle/25 {
		t.Fatalf("blocked consumer used %v of CPU in %v", cpu, idle)
	}
}

// CheckStreamWakes sends count 64-byte messages through send while a
// goroutine receives them through recv, and fails t if the producer's
// backend made more than count/100 wake system calls (wakeSyscalls reports
// its total): a consumer that keeps up must not cost a wake per message.
func CheckStreamWakes(t testing.TB, count int, send func(context.Context, []byte) error,
	recv func(context.Context, []byte) (int, error), wakeSyscalls func() uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 64)
		for i := 0; i < count; i++ {
			if _, err := recv(ctx, buf); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	msg := make([]byte, 64)
	for i := 0; i < count; i++ {
		if err := send(ctx, msg); err != nil {
			cancel()
			<-done
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	n := wakeSyscalls()
	t.Logf("%d messages, %d wake syscalls by the producer", count, n)
	if n > uint64(count)/100 {
		t.Fatalf("%d wake syscalls for %d messages: the producer wakes per message", n, count)
	}
}

// InChild runs body in a child process (the test binary re-run for this
// test alone), for a test whose failure kills the process that hits it
// (a fault in an unmapped segment). The parent fails with the start of the
// child's output if the child did not pass.
func InChild(t *testing.T, body func(t *testing.T)) {
	t.Helper()
	const env = "SHMQ_TEST_CHILD"
	if os.Getenv(env) == t.Name() {
		body(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), env+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil {
		s := string(out)
		if i := strings.Index(s, "goroutine "); i > 0 {
			s = s[:i] // the signal and the first lines are what matter
		}
		t.Fatalf("child process failed (%v):\n%s", err, s)
	}
}

// Retry runs try up to five times and fails t with its last complaint if
// no try came out right; try returns "" when it did, else what was wrong.
// It is for a measurement that a loaded machine spoils now and then (a
// stall, a preemption, a spurious wake): a spoiled try passes on the next,
// while a wrong implementation fails every one. Failures that no stall
// explains belong in try itself, as t.Fatal.
func Retry(t testing.TB, try func() string) {
	t.Helper()
	var msg string
	for range 5 {
		if msg = try(); msg == "" {
			return
		}
		t.Logf("spoiled try: %s", msg)
	}
	t.Fatal(msg)
}
