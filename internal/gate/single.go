package gate

import (
	"sync"
	"sync/atomic"
)

// A queue's Producer or Consumer is called by one goroutine at a time, and
// a small send is a few nanoseconds of work: the two atomic
// read-modify-writes of New's gate (each a locked instruction on amd64, as
// costly as the cursor store that the wake protocol needs) tripled the
// fenced instructions of a TrySend. A single-caller gate moves that cost to
// Close, which is rare, with the asymmetric Dekker pattern that
// membarrier(2) exists for (the one behind userspace RCU and hazard
// pointers):
//
//	owner (Enter ... Exit)            closer (Close)
//	depth++        plain store        closed = 1        atomic
//	if closed: back out               membarrier()
//	... touch the mapping ...         if depth != 0: wait for drained
//	depth--        plain store                   else: membarrier()
//	if closed && depth == 0: drained
//
// membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) returns only after every
// running thread of the process has executed a full memory barrier, and a
// thread that was not running passes one when it is scheduled. So at the
// owner's barrier, either its depth++ had been made (and is visible to the
// closer's load that follows the call), or its later load of closed comes
// after the barrier and sees 1: as with a fence on both sides, the closer
// sees the call or the call sees the close. A call the closer sees signals
// drained from its last Exit (it sees closed, since that Exit is after its
// barrier), and the channel orders its accesses before the teardown.
// When the closer sees depth 0, the second membarrier completes
// whatever the owner's last call did before its depth-- became visible
// (a plain store is a release on amd64, not on arm64).
//
// Depth counts nested calls of the owner (a callback that calls the
// handle). The owner's words are written by the owner alone, with plain
// stores: calls on one gate from two goroutines at once, which the
// handles forbid, would lose updates of depth.
//
// The race detector does not know membarrier, and would rightly report
// the plain accesses that it makes safe: race builds, and kernels without
// the command (before Linux 4.14, or where seccomp refuses it), get New's
// counting gate instead.
type single struct {
	depth   uint32 // owner's calls in flight; plain stores by the owner, atomic loads by Close
	closed  uint32 // 1 once Close began; atomic store by Close, plain loads by the owner
	drained chan struct{}
	once    sync.Once
}

// NewSingle returns an open gate for a handle that one goroutine at a time
// calls, except for Close, which any goroutine may call at any time.
func NewSingle() *Gate {
	g := New()
	if !raceEnabled && membarrierReady() {
		g.solo = true
		g.own.drained = make(chan struct{})
	}
	return g
}

// Gate.Enter and Gate.Exit do the owner's half inline: depth++ or depth--,
// then a load of closed, which calls these once Close has begun.

// exited undoes the depth++ of a call refused because the gate closed.
func (s *single) exited() {
	s.depth--
	s.drain()
}

// drain signals Close once the owner's last call in flight has exited.
func (s *single) drain() {
	if s.depth == 0 {
		s.once.Do(func() { close(s.drained) })
	}
}

// closeSolo is Close for a single gate: the closer's half of the protocol
// above, then the teardown, as Close does for New's gate.
func (g *Gate) closeSolo(teardown func()) bool {
	s := &g.own
	if !atomic.CompareAndSwapUint32(&s.closed, 0, 1) {
		<-g.finished
		return false
	}
	g.cancel()
	membarrier()
	if atomic.LoadUint32(&s.depth) != 0 {
		<-s.drained
	} else {
		membarrier()
	}
	close(g.done)
	defer close(g.finished)
	if teardown != nil {
		teardown()
	}
	return true
}
