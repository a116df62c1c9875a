//go:build !linux

package notify

import (
	"errors"
	"sync/atomic"
	"time"
)

// errNoWaitV reports a park on a system without futex_waitv; Wait never
// makes one.
var errNoWaitV = errors.New("notify: futex_waitv is not available")

// parker is the futex_waitv array of a Group; without futexes a Group
// always polls, sleeping on a timer.
type parker struct {
	timer *time.Timer
}

func (*parker) supported() bool                                  { return false }
func (*parker) reset()                                           {}
func (*parker) add(*atomic.Uint32, uint32)                       {}
func (*parker) wait(*atomic.Uint32, uint32, time.Duration) error { return errNoWaitV }

// sleep is a polling Wait's sleep: d, or until the group is kicked.
func (p *parker) sleep(kick *atomic.Uint32, old uint32, d time.Duration, kickCh <-chan struct{}) error {
	if kick.Load() != old {
		return nil
	}
	if p.timer == nil {
		p.timer = time.NewTimer(d)
	} else {
		p.timer.Reset(d)
	}
	select {
	case <-p.timer.C:
	case <-kickCh:
	}
	return nil
}

func wakeKick(*atomic.Uint32) {}

func isFutex(Backend) bool { return false }
