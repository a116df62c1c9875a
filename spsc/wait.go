package spsc

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/notify"
	"github.com/shmq/shmq/ring"
)

// Wait tunes how Send and Recv wait for space or data. The zero value suits
// a typical service: spin and yield for DefaultSpin, then park on a futex
// (a polling back-off where there is none), so an idle blocked side uses
// no measurable CPU and a busy stream makes no system calls.
type Wait struct {
	// Notifier parks and wakes the waiting side; nil means notify.Default().
	// Both processes of a queue must use backends that reach each other:
	// futexes always do; an eventfd or socket backend must be shared.
	Notifier notify.Backend
	// Spin is how long a waiter checks the queue (spinning, then yielding
	// the processor) before it parks; 0 means DefaultSpin and a negative
	// value parks at once.
	Spin time.Duration
}

// DefaultSpin is long enough to catch the next message of a busy stream and
// short compared with a park and wake.
const DefaultSpin = 20 * time.Microsecond

func (w Wait) withDefaults() Wait {
	if w.Notifier == nil {
		w.Notifier = notify.Default()
	}
	if w.Spin == 0 {
		w.Spin = DefaultSpin
	}
	return w
}

// wakeLine is one side's parking place: a sequence word to wait on and a
// count of registered waiters. The waiting side registers (waiters++),
// re-checks the queue, and parks only if it still has nothing to do; the
// other side publishes, then loads waiters and wakes only if it is non-zero.
// Both pairs of steps are sequentially consistent atomics (each a full
// fence), so either the publisher sees the waiter or the waiter sees the
// publication: the io_uring NEED_WAKEUP rule, applied on both sides.
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
// With no waiter registered it costs one load of a line that stays shared,
// and no system call.
func (q *Queue) wakeIfWaiting(w *wakeLine, e *ring.Entry) {
	if w.waiters.Load() == 0 {
		return
	}
	w.seq.Add(1)
	q.wait.Notifier.Wake(w.seq, 1<<30) // errors only mean no one was there to wake
	e.Wakes.Store(e.Wakes.Load() + 1)
}

// livenessPeriod bounds each park, because a dead peer wakes no one: after
// it the waiter checks whether the peer's registry entry is dead.
const livenessPeriod = 100 * time.Millisecond

// waitFor returns nil once ready reports true, ctx's error when ctx ends,
// or ErrPeerDead when the peer at registry entry peer died without
// detaching. own is the waiting side's registry entry, whose wait counter
// it advances. ready must be cheap: it runs in the spin loop.
func (q *Queue) waitFor(ctx context.Context, w *wakeLine, own *ring.Entry, peer int, ready func() bool) error {
	if q.wait.Spin > 0 {
		deadline := time.Now().Add(q.wait.Spin)
		for i := 0; ; i++ {
			if ready() {
				return nil
			}
			if i%128 == 127 {
				if time.Now().After(deadline) {
					break
				}
				runtime.Gosched()
			}
		}
	}
	own.Waits.Store(own.Waits.Load() + 1)
	w.waiters.Add(1)
	defer w.waiters.Add(^uint32(0))
	lastCheck := time.Now()
	for {
		seq := w.seq.Load()
		if ready() {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("spsc: wait: %w", err)
		}
		pctx, cancel := context.WithTimeout(ctx, livenessPeriod)
		err := q.wait.Notifier.Wait(pctx, w.seq, seq)
		cancel()
		if err != nil && ctx.Err() != nil {
			return fmt.Errorf("spsc: wait: %w", ctx.Err())
		}
		if time.Since(lastCheck) >= livenessPeriod {
			lastCheck = time.Now()
			if err := q.peerDead(peer); err != nil {
				return err
			}
		}
	}
}
