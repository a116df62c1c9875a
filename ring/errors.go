package ring

import (
	"errors"
	"io/fs"
	"net"
)

// The error vocabulary of every shmq package. The queue packages (spsc,
// mpmc, pubsub) re-export these variables, so spsc.ErrFull and mpmc.ErrFull
// are the same value. Errors are returned wrapped, naming the operation
// ("spsc: Recv: shmq: closed"); test for them with errors.Is. The
// non-blocking calls' ErrFull and ErrEmpty are returned unwrapped, so a hot
// loop may compare them with ==.
//
// Where the standard library has a sentinel for the same condition, ours
// matches it too: errors.Is(err, net.ErrClosed) holds for ErrClosed, as for
// a closed net.Conn; ErrNotFound matches fs.ErrNotExist, ErrExists
// fs.ErrExist, ErrPermission fs.ErrPermission, ErrInvalid fs.ErrInvalid and
// ErrUnsupported errors.ErrUnsupported. Errors about the contents of a
// segment come from package layout (layout.ErrCorrupt, layout.ErrKind, ...)
// and are re-exported by the queue packages as well.
var (
	ErrBadName     = errors.New("shmq: invalid segment name")
	ErrExists      = alias("shmq: segment already exists", fs.ErrExist)
	ErrNotFound    = alias("shmq: no such segment", fs.ErrNotExist)
	ErrNoSpace     = errors.New("shmq: not enough space for the segment")
	ErrPermission  = alias("shmq: permission denied", fs.ErrPermission)
	ErrAbandoned   = errors.New("shmq: segment creator died during initialization")
	ErrRoleTaken   = errors.New("shmq: role is held by another live process")
	ErrUnsupported = alias("shmq: not supported on this platform", errors.ErrUnsupported)
	// ErrTruncated: the segment's file was shrunk under the mapping (by
	// another process) and an access faulted.
	ErrTruncated = errors.New("shmq: segment truncated under its mapping")
	// ErrMismatch: OpenOrCreate found a queue whose configuration differs
	// from the one asked for.
	ErrMismatch = errors.New("shmq: existing queue differs from the configuration asked for")

	// ErrClosed: the queue, segment or handle was closed, possibly by
	// another goroutine while the call was blocked in it.
	ErrClosed = alias("shmq: closed", net.ErrClosed)
	// ErrInvalid: an argument out of range (a negative count, a mode with
	// bits other than permissions).
	ErrInvalid = alias("shmq: invalid argument", fs.ErrInvalid)

	// ErrFull: no room for the message now (non-blocking calls).
	ErrFull = errors.New("shmq: queue is full")
	// ErrEmpty: no message now (non-blocking calls).
	ErrEmpty = errors.New("shmq: queue is empty")
	// ErrMessageSize: a message of 0 bytes, or larger than the queue's
	// maximum.
	ErrMessageSize = errors.New("shmq: message size out of range")
	// ErrShortBuffer: the buffer cannot hold the next message, which stays
	// in the queue.
	ErrShortBuffer = errors.New("shmq: buffer too small for the next message")
	// ErrPending: a copying send while zero-copy reservations are not
	// committed.
	ErrPending = errors.New("shmq: reserved messages are not committed")
	// ErrPeerDead: the process on the other side died without closing, and
	// the call cannot complete without it.
	ErrPeerDead = errors.New("shmq: peer process died")
)

// aliasError is a sentinel that also matches a standard library sentinel
// under errors.Is, without taking its text.
type aliasError struct {
	msg string
	std error
}

func alias(msg string, std error) error { return &aliasError{msg, std} }

func (e *aliasError) Error() string        { return e.msg }
func (e *aliasError) Is(target error) bool { return target == e.std }
