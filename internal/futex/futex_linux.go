// Package futex wraps the raw Linux futex(2) wait and wake operations on
// shared (cross-process) futex words, and futex_waitv(2), which waits on
// several words at once.
//
// Wait and Wake deliberately omit FUTEX_PRIVATE_FLAG: the words live in
// memory mapped MAP_SHARED by several processes, and a private futex is keyed
// on the calling process's address space, so a waker in another process would
// never find the waiter. Only words in the process's own memory, which no
// other process can wake, are waited on as private futexes (NewWaiter,
// WakePrivate).
package futex

import (
	"math"
	"sync"
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

// Flags of a futex_waitv entry (linux/futex.h).
const (
	flagSizeU32 = 0x02 // FUTEX2_SIZE_U32
	flagPrivate = 128  // FUTEX2_PRIVATE, the same bit as FUTEX_PRIVATE_FLAG
	opPrivate   = 128  // FUTEX_PRIVATE_FLAG for the futex(2) operations
)

// MaxWaitV is the most words one WaitV call may wait on (FUTEX_WAITV_MAX).
const MaxWaitV = 128

// A Waiter is one word of a WaitV call and the value it is expected to
// hold: struct futex_waitv. It holds the word's address as an integer, so
// the word must not be in memory that the Go runtime may move (a goroutine
// stack): use shared mappings or heap-allocated words.
type Waiter struct {
	val   uint64
	uaddr uint64
	flags uint32
	_     uint32
}

// NewWaiter describes a wait on word while it holds old. A shared word (in
// a MAP_SHARED mapping, woken by Wake from any process) is waited on as a
// shared futex; a private one (process memory, woken by WakePrivate) as a
// private futex, which the kernel finds without looking up the page.
func NewWaiter(word *atomic.Uint32, old uint32, private bool) Waiter {
	w := Waiter{val: uint64(old), uaddr: uint64(uintptr(unsafe.Pointer(word))), flags: flagSizeU32}
	if private {
		w.flags |= flagPrivate
	}
	return w
}

// WaitV (futex_waitv(2), Linux 5.16 and later) blocks while every word of
// ws holds its expected value, for at most timeout if timeout > 0. It
// returns the index of a word that was woken, or unix.EAGAIN if a word
// differed on entry, unix.ETIMEDOUT, unix.EINTR; like Wait, all returns
// may be spurious and callers re-check their words. unix.ENOSYS (or EPERM
// under a seccomp filter) means the kernel lacks it: see WaitVSupported.
func WaitV(ws []Waiter, timeout time.Duration) (int, error) {
	if len(ws) == 0 || len(ws) > MaxWaitV {
		return -1, unix.EINVAL
	}
	var tsp unsafe.Pointer
	if timeout > 0 {
		// The timeout of futex_waitv is absolute, on the clock named.
		var now unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &now); err != nil {
			return -1, err
		}
		ts := unix.NsecToTimespec(now.Nano() + int64(timeout))
		tsp = unsafe.Pointer(&ts)
	}
	r, _, errno := unix.Syscall6(unix.SYS_FUTEX_WAITV, uintptr(unsafe.Pointer(&ws[0])), uintptr(len(ws)),
		0, uintptr(tsp), unix.CLOCK_MONOTONIC, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}

// WaitVSupported reports whether the kernel has futex_waitv (and no filter
// forbids it). It asks once, with a call the kernel rejects as invalid
// when it knows the system call.
var WaitVSupported = sync.OnceValue(func() bool {
	_, _, errno := unix.Syscall6(unix.SYS_FUTEX_WAITV, 0, 0, 0, 0, 0, 0)
	return errno == unix.EINVAL
})

// WakePrivate is Wake for a word in this process's own memory, waited on
// as a private futex (NewWaiter with private set).
func WakePrivate(word *atomic.Uint32, n int) (int, error) {
	if n <= 0 {
		return 0, nil
	}
	if n > math.MaxInt32 {
		n = math.MaxInt32
	}
	r, _, errno := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(word)), opWake|opPrivate,
		uintptr(n), 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}

// WaitPrivate is Wait for a word in this process's own memory, woken by
// WakePrivate: a sleep of at most timeout that a wake ends early.
func WaitPrivate(word *atomic.Uint32, old uint32, timeout time.Duration) error {
	var tsp unsafe.Pointer
	if timeout > 0 {
		ts := unix.NsecToTimespec(int64(timeout))
		tsp = unsafe.Pointer(&ts)
	}
	_, _, errno := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(word)), opWait|opPrivate,
		uintptr(old), uintptr(tsp), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
