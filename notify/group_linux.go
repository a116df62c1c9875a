package notify

import (
	"runtime"
	"sync/atomic"
	"time"

	"github.com/shmq/shmq/internal/futex"
	"golang.org/x/sys/unix"
)

// parker is the futex_waitv array of a Group, reused by its Waits.
type parker struct {
	ws []futex.Waiter
}

// forcePoll makes groups poll as if futex_waitv were missing, for tests.
var forcePoll atomic.Bool

// supported reports whether Wait may park with futex_waitv.
func (p *parker) supported() bool { return futex.WaitVSupported() && !forcePoll.Load() }

func (p *parker) reset() { p.ws = p.ws[:0] }

// add makes the next park wait on the shared word while it holds old.
func (p *parker) add(word *atomic.Uint32, old uint32) {
	p.ws = append(p.ws, futex.NewWaiter(word, old, false))
}

// wait parks on the words added and on the group's own kick word (while it
// holds old) for at most d. Wake-ups, timeouts and signals all return nil:
// the caller re-checks.
func (p *parker) wait(kick *atomic.Uint32, old uint32, d time.Duration) error {
	p.ws = append(p.ws, futex.NewWaiter(kick, old, true))
	_, err := futex.WaitV(p.ws, d)
	runtime.KeepAlive(kick) // the array holds its address as an integer
	switch err {
	case nil, unix.EAGAIN, unix.ETIMEDOUT, unix.EINTR:
		return nil
	}
	return err
}

// sleep is a polling Wait's sleep: a park on the kick word alone, so that
// whatever wakes a parked Wait ends it too. kickCh is for other systems.
func (p *parker) sleep(kick *atomic.Uint32, old uint32, d time.Duration, _ <-chan struct{}) error {
	switch err := futex.WaitPrivate(kick, old, d); err {
	case nil, unix.EAGAIN, unix.ETIMEDOUT, unix.EINTR:
		return nil
	default:
		return err
	}
}

// wakeKick wakes a Wait parked on the group's kick word.
func wakeKick(kick *atomic.Uint32) { _, _ = futex.WakePrivate(kick, 1) }

// isFutex reports whether b parks on the word itself, so that futex_waitv
// may park on it instead.
func isFutex(b Backend) bool {
	_, ok := b.(*Futex)
	return ok
}
