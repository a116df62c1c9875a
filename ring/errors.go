package ring

import "errors"

// Errors returned (wrapped) by this package. Test for them with errors.Is.
// Errors about the contents of a segment come from package layout
// (layout.ErrCorrupt, layout.ErrKind, ...).
var (
	ErrBadName     = errors.New("shmq: invalid segment name")
	ErrExists      = errors.New("shmq: segment already exists")
	ErrNotFound    = errors.New("shmq: no such segment")
	ErrNoSpace     = errors.New("shmq: not enough space for the segment")
	ErrPermission  = errors.New("shmq: permission denied")
	ErrAbandoned   = errors.New("shmq: segment creator died during initialization")
	ErrRoleTaken   = errors.New("shmq: role is held by another live process")
	ErrClosed      = errors.New("shmq: segment is closed")
	ErrUnsupported = errors.New("shmq: not supported on this platform")
	// ErrTruncated: the segment's file was shrunk under the mapping (by
	// another process) and an access faulted.
	ErrTruncated = errors.New("shmq: segment truncated under its mapping")
)
