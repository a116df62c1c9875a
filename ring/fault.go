package ring

import (
	"fmt"
	"runtime/debug"
)

// A segment backed by a /dev/shm name or a file can be truncated by any
// process that can open it for writing, and an access to the truncated part
// of the mapping then faults (SIGBUS). The queue packages turn that fault
// into ErrTruncated, instead of letting it kill the process, in every
// exported call that touches the mapping of a segment that can shrink:
//
//	if guarded { // seg.Shrinkable(), fixed when the queue is opened
//		defer seg.CatchFault(&err, debug.SetPanicOnFault(true))
//	}
//
// The guard costs a few nanoseconds per call, so it is skipped for memfd
// segments, which Create seals against shrinking. Slices that a queue hands
// out (reservations, peeked messages) are used outside the guard; for a
// segment that a hostile process could truncate, prefer the copying calls or
// a memfd.

// CatchFault is deferred, with the previous debug.SetPanicOnFault setting
// as old, by a call that touches the mapping (see the pattern above). It
// restores that setting; a fault at an address inside the mapping becomes
// an error wrapping ErrTruncated in *err, and any other panic goes on.
func (s *Segment) CatchFault(err *error, old bool) {
	debug.SetPanicOnFault(old)
	r := recover()
	if r == nil {
		return
	}
	if f, ok := r.(interface{ Addr() uintptr }); ok && s.Contains(f.Addr()) {
		*err = fmt.Errorf("%w: fault at %#x in %v", ErrTruncated, f.Addr(), s.Location())
		return
	}
	panic(r)
}

// Guard runs fn, which may touch the mapping (a message from Peek, a
// reservation from Reserve), and turns a fault inside the mapping into an
// error wrapping ErrTruncated instead of a SIGBUS that kills the process:
// the way to read or fill a zero-copy slice of a segment that another
// process could truncate (a shm name or a file). Errors of fn are returned
// as they are. Segments that cannot shrink (a memfd sealed by Create) run
// fn without the guard.
func (s *Segment) Guard(fn func() error) (err error) {
	if s.shrinkable {
		defer s.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	return fn()
}
