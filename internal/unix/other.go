//go:build !unix

package unix

import (
	"errors"
	"runtime"
	"strconv"
)

// errUnsupported is what every function returns here.
var errUnsupported error = unsupportedError{}

// unsupportedError matches errors.ErrUnsupported and every sentinel that
// itself matches it, such as ring.ErrUnsupported (which this package
// cannot import), so callers may test for either.
type unsupportedError struct{}

func (unsupportedError) Error() string {
	return errors.ErrUnsupported.Error() + ": shmq has no shared memory segments on " + runtime.GOOS
}

func (unsupportedError) Is(target error) bool { return errors.Is(target, errors.ErrUnsupported) }

// Errno stands in for a system error number, so that callers can compare
// errors with the constants below; no function here returns one.
type Errno uintptr

func (e Errno) Error() string { return "errno " + strconv.Itoa(int(e)) }

// Stat_t holds the fields of a stat(2) result that shmq reads.
type Stat_t struct {
	Dev  uint64
	Ino  uint64
	Mode uint32
	Uid  uint32
	Size int64
}

// Signal is a signal number, as for kill(2).
type Signal int

// Flock_t is a byte-range lock request, as for fcntl(2).
type Flock_t struct {
	Type   int16
	Whence int16
	Start  int64
	Len    int64
	Pid    int32
}

// Linux's values, for want of any.
const (
	EPERM      Errno = 1
	ENOENT     Errno = 2
	EAGAIN     Errno = 11
	EACCES     Errno = 13
	EEXIST     Errno = 17
	EISDIR     Errno = 21
	ENOSPC     Errno = 28
	ELOOP      Errno = 40
	EOPNOTSUPP Errno = 95

	O_RDONLY   = 0x0
	O_RDWR     = 0x2
	O_CREAT    = 0x40
	O_EXCL     = 0x80
	O_NOCTTY   = 0x100
	O_NONBLOCK = 0x800
	O_NOFOLLOW = 0x20000
	O_CLOEXEC  = 0x80000

	S_IFMT  = 0xf000
	S_IFREG = 0x8000

	PROT_READ  = 0x1
	PROT_WRITE = 0x2
	MAP_SHARED = 0x1

	F_GETLK = 0x5
	F_SETLK = 0x6
	F_WRLCK = 0x1
	F_UNLCK = 0x2
)

func Open(string, int, uint32) (int, error)          { return -1, errUnsupported }
func Fstat(int, *Stat_t) error                       { return errUnsupported }
func Lstat(string, *Stat_t) error                    { return errUnsupported }
func Fchmod(int, uint32) error                       { return errUnsupported }
func Ftruncate(int, int64) error                     { return errUnsupported }
func Unlink(string) error                            { return errUnsupported }
func Rename(string, string) error                    { return errUnsupported }
func Kill(int, Signal) error                         { return errUnsupported }
func Link(string, string) error                      { return errUnsupported }
func FcntlFlock(uintptr, int, *Flock_t) error        { return errUnsupported }
func Mmap(int, int64, int, int, int) ([]byte, error) { return nil, errUnsupported }
func Munmap([]byte) error                            { return errUnsupported }
