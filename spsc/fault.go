package spsc

import (
	"fmt"
	"runtime/debug"

	"github.com/shmq/shmq/ring"
)

// A segment backed by a /dev/shm name or a file can be truncated by any
// process that can open it for writing, and an access to the truncated part
// of the mapping then faults (SIGBUS). Exported calls on such segments turn
// that fault into ring.ErrTruncated instead of letting it kill the process:
//
//	if q.guarded {
//		defer q.catch(&err, debug.SetPanicOnFault(true))
//	}
//
// The guard costs a few nanoseconds per call, so it is skipped for memfd
// segments, which Create seals against shrinking. Slices returned by
// Reserve and Peek are used outside the guard; for a segment that a hostile
// process could truncate, prefer the copying calls or a memfd.

// catch is deferred, with the previous SetPanicOnFault setting, by guarded
// calls. A fault inside the mapping becomes ErrTruncated; anything else
// panics on.
func (q *Queue) catch(err *error, old bool) {
	debug.SetPanicOnFault(old)
	r := recover()
	if r == nil {
		return
	}
	if f, ok := r.(interface{ Addr() uintptr }); ok && q.seg.Contains(f.Addr()) {
		*err = fmt.Errorf("%w: fault at %#x in %v", ring.ErrTruncated, f.Addr(), q.seg.Location())
		return
	}
	panic(r)
}
