package pubsub

import (
	"errors"
	"fmt"
	"io"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
)

// Errors returned by this package: the vocabulary shared by every shmq
// queue package (package ring), re-exported so callers need import only
// this one; pubsub.ErrFull is spsc.ErrFull. Errors are wrapped, naming the
// operation ("pubsub: Recv: ..."): test them with errors.Is. TrySend,
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
	// ErrRegistryFull: every subscriber entry is held by a live process.
	ErrRegistryFull = ring.ErrRegistryFull

	ErrCorrupt       = layout.ErrCorrupt
	ErrKind          = layout.ErrKind
	ErrNotSegment    = layout.ErrNotSegment
	ErrInvalidConfig = layout.ErrInvalidConfig
)

// ErrLost: a lossy queue's publisher overwrote messages before this
// subscriber read them. Calls return it as a *LostError, which says how
// many; the subscriber has moved on to the oldest message still whole, and
// the next call returns it.
var ErrLost = errors.New("shmq: messages lost to overwriting")

// LostError reports messages that a subscriber of a lossy queue lost: the
// publisher overwrote them before the subscriber read them, or while it
// was reading them (a torn read, never delivered), or while it held them
// peeked (the views are then not to be trusted). It matches ErrLost.
type LostError struct {
	Count uint64 // messages lost, the ones peeked and not released included
}

func (e *LostError) Error() string {
	return fmt.Sprintf("%s: %d message(s)", ErrLost.Error(), e.Count)
}

// Is reports whether target is ErrLost.
func (e *LostError) Is(target error) bool { return target == ErrLost }

// opError names the operation that failed. The non-blocking sentinels and
// io.EOF pass unwrapped, as io.Reader callers expect.
func opError(op string, err error) error {
	switch err {
	case nil, ErrFull, ErrEmpty, io.EOF:
		return err
	}
	return fmt.Errorf("pubsub: %s: %w", op, err)
}

// errNilHandle is the error of a method called on a nil or zero-value
// handle.
var errNilHandle = fmt.Errorf("%w: nil or zero-value handle (use Create, Open, Publisher or Subscriber)", ErrInvalid)

// closedOr reports ErrClosed for a wait that ended because its handle
// closed, and passes any other error on.
func closedOr(closed bool, err error) error {
	if closed && err != nil && !errors.Is(err, ErrPeerDead) {
		return ErrClosed
	}
	return err
}
