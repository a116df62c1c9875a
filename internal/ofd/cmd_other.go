//go:build !linux

package ofd

import "github.com/shmq/shmq/internal/unix"

// Without OFD locks, classic POSIX record locks are the closest equivalent:
// still dropped by the kernel when the holder dies, but owned by the process,
// so one process cannot hold two roles of the same segment.
const (
	cmdSetLk = unix.F_SETLK
	cmdGetLk = unix.F_GETLK
)
