//go:build unix

package unix

import "golang.org/x/sys/unix"

type (
	Stat_t  = unix.Stat_t
	Flock_t = unix.Flock_t
	Signal  = unix.Signal
)

const (
	EACCES     = unix.EACCES
	EAGAIN     = unix.EAGAIN
	EEXIST     = unix.EEXIST
	EISDIR     = unix.EISDIR
	ELOOP      = unix.ELOOP
	ENOENT     = unix.ENOENT
	ENOSPC     = unix.ENOSPC
	EOPNOTSUPP = unix.EOPNOTSUPP
	EPERM      = unix.EPERM

	O_CLOEXEC  = unix.O_CLOEXEC
	O_CREAT    = unix.O_CREAT
	O_EXCL     = unix.O_EXCL
	O_NOCTTY   = unix.O_NOCTTY
	O_NOFOLLOW = unix.O_NOFOLLOW
	O_NONBLOCK = unix.O_NONBLOCK
	O_RDONLY   = unix.O_RDONLY
	O_RDWR     = unix.O_RDWR

	S_IFMT  = unix.S_IFMT
	S_IFREG = unix.S_IFREG

	PROT_READ  = unix.PROT_READ
	PROT_WRITE = unix.PROT_WRITE
	MAP_SHARED = unix.MAP_SHARED

	F_GETLK = unix.F_GETLK
	F_SETLK = unix.F_SETLK
	F_UNLCK = unix.F_UNLCK
	F_WRLCK = unix.F_WRLCK
)

func Open(path string, mode int, perm uint32) (int, error) { return unix.Open(path, mode, perm) }
func Fstat(fd int, st *Stat_t) error                       { return unix.Fstat(fd, st) }
func Lstat(path string, st *Stat_t) error                  { return unix.Lstat(path, st) }
func Fchmod(fd int, mode uint32) error                     { return unix.Fchmod(fd, mode) }
func Ftruncate(fd int, length int64) error                 { return unix.Ftruncate(fd, length) }
func Unlink(path string) error                             { return unix.Unlink(path) }
func Kill(pid int, sig Signal) error                       { return unix.Kill(pid, sig) }

func FcntlFlock(fd uintptr, cmd int, lk *Flock_t) error { return unix.FcntlFlock(fd, cmd, lk) }

func Mmap(fd int, offset int64, length int, prot int, flags int) ([]byte, error) {
	return unix.Mmap(fd, offset, length, prot, flags)
}

func Munmap(b []byte) error { return unix.Munmap(b) }
