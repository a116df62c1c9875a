package mpmc

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
)

func le32put(b []byte, v uint32) { binary.LittleEndian.PutUint32(b, v) }
func le32(b []byte) uint32       { return binary.LittleEndian.Uint32(b) }

// wakeLine is one side's parking place: a sequence word to wait on and a
// count of registered waiters. The waiting side registers (waiters++),
// re-checks the queue, and parks only if it still has nothing to do; the
// other side publishes, then loads waiters and wakes only if it is non-zero.
// Both pairs of steps are sequentially consistent atomics, so either the
// publisher sees the waiter or the waiter sees the publication.
//
// Until package notify is wired in, parking is a sleep with exponential
// back-off that ends early when the sequence word moves.
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

// wakeIfWaiting is called by the publishing side after its slot store. With
// no waiter registered it costs one load of a line that stays shared.
func (w *wakeLine) wakeIfWaiting(e *ring.Entry) {
	if w.waiters.Load() == 0 {
		return
	}
	w.seq.Add(1)
	e.Wakes.Store(e.Wakes.Load() + 1)
}

// wake is wakeIfWaiting without a registry entry to count it in.
func (w *wakeLine) wake() {
	if w.waiters.Load() != 0 {
		w.seq.Add(1)
	}
}

// Waiting parameters: spin briefly, then sleep with exponential back-off.
// A wait also ends every recheckPeriod, so that the caller re-runs its
// operation, which checks whether the holder of a stuck slot has died.
const (
	spinChecks    = 200
	minSleep      = time.Microsecond
	maxSleep      = time.Millisecond
	recheckPeriod = 5 * time.Millisecond
)

// Dead-claimant detection: a slot whose sequence word has not changed for
// suspectAfter is checked against the registry (one fcntl), and then at
// most once every suspectAfter while it stays stuck.
const suspectAfter = 2 * time.Millisecond

// waitFor returns nil once ready reports true or recheckPeriod has passed,
// or ctx's error when ctx ends. own is the waiting side's registry entry,
// whose wait counter it advances.
func waitFor(ctx context.Context, w *wakeLine, own *ring.Entry, ready func() bool) error {
	for i := 0; i < spinChecks; i++ {
		if ready() {
			return nil
		}
	}
	own.Waits.Store(own.Waits.Load() + 1)
	w.waiters.Add(1)
	defer w.waiters.Add(^uint32(0))
	sleep := minSleep
	deadline := time.Now().Add(recheckPeriod)
	for {
		seq := w.seq.Load()
		if ready() {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("mpmc: wait: %w", err)
		}
		if time.Now().After(deadline) {
			return nil
		}
		if w.seq.Load() == seq {
			time.Sleep(sleep)
			sleep = min(2*sleep, maxSleep)
		}
	}
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

// checkOwner validates the owner field of a claimed slot word.
func (q *Queue) checkOwner(w, pos uint64) error {
	if layout.SeqOwner(w) >= q.hdr.RegistryCount {
		return q.corrupt("claimant outside the registry", w, pos)
	}
	return nil
}
