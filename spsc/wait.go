package spsc

import (
	"context"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/notify"
	"github.com/shmq/shmq/ring"
)

// Wait tunes how Send and Recv wait for space or data. The zero value suits
// a typical service: spin and yield for notify.DefaultSpin, then park on a
// futex (a polling back-off where there is none), so an idle blocked side
// uses no measurable CPU and a busy stream makes no system calls.
type Wait = notify.Policy

func newWakeLine(seg *ring.Segment, off uint64) (notify.Line, error) {
	seq, err := seg.Uint32(off + layout.WakeSeq)
	if err != nil {
		return notify.Line{}, err
	}
	waiters, err := seg.Uint32(off + layout.WakeWaiters)
	if err != nil {
		return notify.Line{}, err
	}
	return notify.Line{Seq: seq, Waiters: waiters}, nil
}

// wakeIfWaiting is called by the publishing side after its cursor store.
// With no waiter registered it costs one load of a line that stays shared,
// and no system call.
func (q *Queue) wakeIfWaiting(l notify.Line, e *ring.Entry) {
	if l.WakeIfWaiting(q.wait.Backend) {
		e.Wakes.Store(e.Wakes.Load() + 1)
	}
}

// livenessPeriod bounds each park, because a dead peer wakes no one: after
// it the waiter checks whether the peer's registry entry is dead.
const livenessPeriod = 100 * time.Millisecond

// waitFor returns nil once ready reports true, ctx's error when ctx ends,
// or ErrPeerDead when the peer at registry entry peer died without
// detaching. own is the waiting side's registry entry, whose wait counter
// it advances.
func (q *Queue) waitFor(ctx context.Context, l notify.Line, own *ring.Entry, peer int, ready func() bool) error {
	parked, err := l.Await(ctx, q.wait, livenessPeriod, ready, func() error { return q.peerDead(peer) })
	if parked {
		own.Waits.Store(own.Waits.Load() + 1)
	}
	return err
}
