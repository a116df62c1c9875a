// Package ofd holds byte-range locks that the kernel drops when their holder
// dies, used by shmq as the liveness signal of a role or registry entry.
//
// On Linux they are open file description (OFD) locks: owned by the open file
// description rather than the process, so two opens in one process conflict
// with each other and the lock survives pid reuse and pid namespaces. The
// flip side: every descriptor that refers to the description — a dup, a
// descriptor passed to another process, a forked child's copy — shares the
// lock, and the kernel drops it only when the last of them closes. So a
// lock that marks a process alive must be taken through a description that
// no other process can get (package ring opens a private one for that).
// Elsewhere they fall back to classic POSIX record locks, which are owned
// by the process.
//
// A lock covers one byte; byte numbers are names, not file contents, and may
// lie beyond the end of the file.
package ofd

import (
	"errors"
	"fmt"

	"github.com/shmq/shmq/internal/unix"
)

// ErrLocked reports that another open file description holds the byte.
var ErrLocked = errors.New("ofd: byte is locked by another holder")

// TryLock takes an exclusive lock on byte b of fd without blocking. It
// returns ErrLocked (wrapped) if another holder has it.
func TryLock(fd int, b int64) error {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: b, Len: 1}
	err := unix.FcntlFlock(uintptr(fd), cmdSetLk, &lk)
	if err == unix.EAGAIN || err == unix.EACCES {
		return fmt.Errorf("%w (byte %d)", ErrLocked, b)
	}
	if err != nil {
		return fmt.Errorf("ofd: lock byte %d: %w", b, err)
	}
	return nil
}

// Unlock releases the lock on byte b of fd, if fd holds it.
func Unlock(fd int, b int64) error {
	lk := unix.Flock_t{Type: unix.F_UNLCK, Whence: 0, Start: b, Len: 1}
	if err := unix.FcntlFlock(uintptr(fd), cmdSetLk, &lk); err != nil {
		return fmt.Errorf("ofd: unlock byte %d: %w", b, err)
	}
	return nil
}

// Held reports whether some holder other than fd's own open file description
// locks byte b. It is a snapshot: the holder may die or take the lock right
// after it returns.
func Held(fd int, b int64) (bool, error) {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: b, Len: 1}
	if err := unix.FcntlFlock(uintptr(fd), cmdGetLk, &lk); err != nil {
		return false, fmt.Errorf("ofd: query byte %d: %w", b, err)
	}
	return lk.Type != unix.F_UNLCK, nil
}
