package mpmc

import (
	"context"
	"encoding/binary"
	"errors"
	"time"

	"github.com/shmq/shmq/internal/gate"
	"github.com/shmq/shmq/internal/wakeline"
	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/notify"
	"github.com/shmq/shmq/ring"
)

func le32put(b []byte, v uint32) { binary.LittleEndian.PutUint32(b, v) }
func le32(b []byte) uint32       { return binary.LittleEndian.Uint32(b) }

// Wait tunes how Send and Recv wait for space or data. The zero value suits
// a typical service: spin and yield (for at most notify.DefaultSpin, and
// only while spinning has recently caught the change: see
// notify.Policy.Spin), then park on a futex (a polling back-off where there
// is none), so an idle blocked side uses little CPU and a busy stream makes
// no system calls. In locked mode only Backend is used (the semaphores and
// mutexes park on it, and it must reach every waiter of every word: a
// futex, eventfd or polling backend, or a socket one only where all
// waiters are in the process at its Peer); package sem spins by its own
// rules.
type Wait = notify.Policy

// waker is the publishing side's half of the wake protocol, kept by each
// handle (internal/wakeline).
type waker struct{ wakeline.Waker }

// wakeIfWaiting is called by the publishing side after its store, while l's
// waiter set is not empty: it wakes l's sleepers and sweeps dead
// registrants once per sweepPeriod. e is the caller's registry entry, whose
// wake counter it advances; nil once the caller has detached.
func (w *waker) wakeIfWaiting(q *Queue, l notify.Line, e *ring.Entry) {
	w.Wake(q.seg, l, q.wait.Backend, e, sweepPeriod)
}

// wake wakes l's waiters on behalf of no handle (recovery at attach).
func (q *Queue) wake(l notify.Line) { l.WakeIfWaiting(q.wait.Backend) }

// sweepPeriod is how often a publisher that keeps waking checks its
// waiters for dead ones.
const sweepPeriod = 100 * time.Millisecond

// recheckPeriod bounds each park while the slot word that stopped the
// caller is a claim (W or R): a producer or consumer that died holding a
// slot wakes no one, so a waiter returns this often for its caller to
// re-run the operation, which notices a dead claimant and moves past it.
const recheckPeriod = 5 * time.Millisecond

// idleRecheck bounds each park while the word is not a claim (an empty slot
// at the dequeue cursor, a full one at the enqueue cursor): every change
// that matters then comes with a wake, except the rare ones a death leaves
// behind (a claim made after the waiter parked, whose claimant died), so
// an idle queue costs a waiter one wake-up a second, not two hundred.
const idleRecheck = time.Second

// parkLimit is how long a waiter stopped by slot word w may park.
func parkLimit(w uint64) time.Duration {
	switch layout.SeqState(w) {
	case layout.SlotWriting, layout.SlotReading:
		return recheckPeriod
	}
	return idleRecheck
}

// errRecheck is the check function's answer after each bounded park: it
// ends Await, and waitFor turns it into "retry now".
var errRecheck = errors.New("mpmc: recheck")

func recheck() error { return errRecheck }

// Dead-claimant detection: a slot whose sequence word has not changed for
// suspectAfter is checked against the registry (one fcntl), and then at
// most once every suspectAfter while it stays stuck.
const suspectAfter = 2 * time.Millisecond

// waitFor returns nil once ready reports true or a park of parkLimit(w)
// ended without it, ErrClosed when g closes, or ctx's error when ctx ends.
// w is the slot word that made the operation fail; own is the waiting
// side's registry entry, whose wait counter it advances when it parked.
// limit, if positive, shortens the park (an end-of-stream grace period).
func (q *Queue) waitFor(ctx context.Context, g *gate.Gate, l notify.Line, own *ring.Entry, w uint64, limit time.Duration, ready func() bool) error {
	if wakeline.PreSpin(q.wait, ready) {
		return nil
	}
	if ok, err := wakeline.Spin(ctx, l, q.wait, g, ready); ok || err != nil {
		return closedOr(g.Closed(), err)
	}
	bctx, release := g.Bind(ctx)
	defer release()
	period := parkLimit(w)
	if limit > 0 {
		period = min(period, limit)
	}
	parked, err := l.Park(bctx, q.wait, own.Index(), period, ready, recheck)
	if parked {
		own.Waits.Store(own.Waits.Load() + 1)
	}
	if err == errRecheck {
		return nil
	}
	return closedOr(g.Closed(), err)
}

// suspect tracks one stuck slot word seen by a producer or consumer.
type suspect struct {
	word    uint64
	since   time.Time // when word was first seen
	checked time.Time // last registry check
}

// claimantGone reports whether the slot word w, held in its owner field by
// a claimant, has been stuck long enough and its claimant's registry entry
// is no longer held by a live process. The owner index has been checked to
// be in range by the caller.
func (s *suspect) claimantGone(seg *ring.Segment, w uint64) (bool, error) {
	now := time.Now()
	if w != s.word {
		s.word, s.since, s.checked = w, now, time.Time{}
		return false, nil
	}
	if now.Sub(s.since) < suspectAfter || now.Sub(s.checked) < suspectAfter {
		return false, nil
	}
	s.checked = now
	info, err := seg.Entry(int(layout.SeqOwner(w)))
	if err != nil {
		return false, err
	}
	return !info.Alive, nil
}

// checkOwner validates the owner field of a claimed (W or R) slot word: a
// registry index, or SeqOwnerOrphan.
func (q *Queue) checkOwner(w, pos uint64) error {
	if o := layout.SeqOwner(w); o >= q.hdr.RegistryCount && o != layout.SeqOwnerOrphan {
		return q.corrupt("claimant outside the registry", w, pos)
	}
	return nil
}

// testHook, when set by a test, runs at named points of the recovery paths
// (with the position concerned), so a test can delay a process between two
// steps that another process may interleave with.
var testHook = func(point string, pos uint64) {}
