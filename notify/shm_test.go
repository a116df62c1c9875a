package notify

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// shmSize is the size of the shared test segment.
const shmSize = 4096

// newShmFile creates a zeroed file of shmSize bytes for MAP_SHARED mapping.
func newShmFile(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "shm")
	if err := os.WriteFile(p, make([]byte, shmSize), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// mapShm maps path MAP_SHARED read-write. The mapping is never unmapped by
// helpers (the process exits); tests unmap it in Cleanup.
func mapShm(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return unix.Mmap(int(f.Fd()), 0, shmSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
}

// word returns the i-th 32-bit word of mem as an atomic, checking bounds and
// alignment before the cast.
func word(mem []byte, i int) *atomic.Uint32 {
	off := 4 * i
	if i < 0 || off+4 > len(mem) {
		panic("shm word out of range")
	}
	p := unsafe.Pointer(&mem[off])
	if uintptr(p)%4 != 0 {
		panic("shm word misaligned")
	}
	return (*atomic.Uint32)(p)
}
