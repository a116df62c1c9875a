package spsc

import (
	"errors"
	"fmt"
	"io"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
)

// Errors returned by this package: the vocabulary shared by every shmq
// queue package (package ring), re-exported so callers need import only
// this one; spsc.ErrFull is mpmc.ErrFull. Errors are wrapped, naming the
// operation ("spsc: Recv: ..."): test them with errors.Is. TrySend,
// TryRecv, Reserve and Peek return ErrFull and ErrEmpty unwrapped, so a hot
// loop may compare them with ==. ErrClosed also matches net.ErrClosed.
var (
	ErrFull        = ring.ErrFull
	ErrEmpty       = ring.ErrEmpty
	ErrMessageSize = ring.ErrMessageSize
	ErrShortBuffer = ring.ErrShortBuffer
	ErrPending     = ring.ErrPending
	ErrPeerDead    = ring.ErrPeerDead
	ErrClosed      = ring.ErrClosed
	ErrInvalid     = ring.ErrInvalid
	ErrMismatch    = ring.ErrMismatch
	ErrTruncated   = ring.ErrTruncated
	ErrRoleTaken   = ring.ErrRoleTaken
	ErrExists      = ring.ErrExists
	ErrNotFound    = ring.ErrNotFound
	ErrNoSpace     = ring.ErrNoSpace
	ErrPermission  = ring.ErrPermission
	ErrAbandoned   = ring.ErrAbandoned
	ErrUnsupported = ring.ErrUnsupported

	ErrCorrupt       = layout.ErrCorrupt
	ErrKind          = layout.ErrKind
	ErrNotSegment    = layout.ErrNotSegment
	ErrInvalidConfig = layout.ErrInvalidConfig
)

// opError names the operation that failed. The non-blocking sentinels and
// io.EOF pass unwrapped, as io.Reader callers expect.
func opError(op string, err error) error {
	if err == nil { // inlined: the calls that succeed pay one comparison
		return nil
	}
	return wrapOp(op, err)
}

func wrapOp(op string, err error) error {
	switch err {
	case ErrFull, ErrEmpty, io.EOF:
		return err
	}
	return fmt.Errorf("spsc: %s: %w", op, err)
}

// refused is the error of a call that a handle did not admit: nil (or
// the zero value), or closed.
func refused(op string, nilHandle bool) error {
	if nilHandle {
		return opError(op, errNilHandle)
	}
	return opError(op, ErrClosed)
}

// errNilHandle is the error of a method called on a nil or zero-value
// handle.
var errNilHandle = fmt.Errorf("%w: nil or zero-value handle (use Create, Open, Producer or Consumer)", ErrInvalid)

// closedOr reports ErrClosed for a wait that ended because its handle
// closed, and passes any other error on.
func closedOr(closed bool, err error) error {
	if closed && err != nil && !errors.Is(err, ErrPeerDead) {
		return ErrClosed
	}
	return err
}
