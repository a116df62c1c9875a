// Package futex wraps the raw Linux futex(2) wait and wake operations on
// shared (cross-process) futex words.
//
// The operations deliberately omit FUTEX_PRIVATE_FLAG: the words live in
// memory mapped MAP_SHARED by several processes, and a private futex is keyed
// on the calling process's address space, so a waker in another process would
// never find the waiter.
package futex

import (
	"math"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	opWait = 0 // FUTEX_WAIT
	opWake = 1 // FUTEX_WAKE
)

// Wait blocks while *word == old, for at most timeout if timeout > 0 (forever
// otherwise). It returns nil when woken, unix.EAGAIN when *word != old on
// entry, unix.ETIMEDOUT on timeout and unix.EINTR on a signal; all of them
// are possibly spurious and callers re-check the word.
//
// It is made through unix.Syscall6 rather than RawSyscall so that the Go
// scheduler hands the P to another thread while this one sleeps in the kernel.
func Wait(word *atomic.Uint32, old uint32, timeout time.Duration) error {
	var tsp unsafe.Pointer
	if timeout > 0 {
		ts := unix.NsecToTimespec(int64(timeout))
		tsp = unsafe.Pointer(&ts)
	}
	_, _, errno := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(word)), opWait,
		uintptr(old), uintptr(tsp), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// Wake wakes up to n waiters blocked in Wait on word and reports how many it
// woke. n <= 0 wakes nobody without a system call; n is clamped to MaxInt32.
func Wake(word *atomic.Uint32, n int) (int, error) {
	if n <= 0 {
		return 0, nil
	}
	if n > math.MaxInt32 {
		n = math.MaxInt32
	}
	r, _, errno := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(word)), opWake,
		uintptr(n), 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}
