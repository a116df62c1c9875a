package spsc

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
)

// wakeLine is one side's parking place: a sequence word to wait on and a
// count of registered waiters. The waiting side registers (waiters++),
// re-checks the queue, and parks only if it still has nothing to do; the
// other side publishes, then loads waiters and wakes only if it is non-zero.
// Both pairs of steps are sequentially consistent atomics, so either the
// publisher sees the waiter or the waiter sees the publication.
type wakeLine struct {
	seq     *atomic.Uint32
	waiters *atomic.Uint32
}

func newWakeLine(seg *ring.Segment, off uint64) (wakeLine, error) {
	seq, err := seg.Uint32(off + layout.WakeSeq)
	if err != nil {
		return wakeLine{}, err
	}
	waiters, err := seg.Uint32(off + layout.WakeWaiters)
	if err != nil {
		return wakeLine{}, err
	}
	return wakeLine{seq: seq, waiters: waiters}, nil
}

// wakeIfWaiting is called by the publishing side after its cursor store.
// With no waiter registered it costs one load of a line that stays shared.
func (w *wakeLine) wakeIfWaiting(e *ring.Entry) {
	if w.waiters.Load() == 0 {
		return
	}
	w.seq.Add(1)
	e.Wakes.Store(e.Wakes.Load() + 1)
}

// Waiting parameters: spin briefly (a message usually arrives within the
// time of a syscall), yield the processor for a while, then sleep with
// exponential back-off, re-checking the peer's liveness now and then because
// a dead peer wakes no one.
const (
	spinChecks     = 1000
	yieldFor       = 50 * time.Microsecond
	minSleep       = 5 * time.Microsecond
	maxSleep       = time.Millisecond
	livenessPeriod = 100 * time.Millisecond
)

// waitFor returns nil once ready reports true, ctx's error when ctx ends,
// or ErrPeerDead when the peer at registry entry peer died without
// detaching. own is the waiting side's registry entry, whose wait counter
// it advances.
func (q *Queue) waitFor(ctx context.Context, w *wakeLine, own *ring.Entry, peer int, ready func() bool) error {
	for i := 0; i < spinChecks; i++ {
		if ready() {
			return nil
		}
	}
	own.Waits.Store(own.Waits.Load() + 1)
	w.waiters.Add(1)
	defer w.waiters.Add(^uint32(0))
	sleep := minSleep
	lastCheck := time.Now()
	for start := lastCheck; time.Since(start) < yieldFor; {
		if ready() {
			return nil
		}
		runtime.Gosched()
	}
	for {
		seq := w.seq.Load()
		if ready() {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("spsc: wait: %w", err)
		}
		if time.Since(lastCheck) >= livenessPeriod {
			lastCheck = time.Now()
			if err := q.peerDead(peer); err != nil {
				return err
			}
		}
		if w.seq.Load() == seq {
			time.Sleep(sleep)
			sleep = min(2*sleep, maxSleep)
		}
	}
}
