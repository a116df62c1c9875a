package mpmc

import (
	"context"
	"fmt"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/notify"
)

// Waiter returns the consumer as a notify.Waiter, so that a notify.Group
// can wait on it together with other queues: add the Consumer itself with
// Group.Add. While the group's Wait runs, it counts as a blocking call on
// the consumer (no other goroutine may use the consumer meanwhile). The
// group reports the consumer when a message may be there to take (TryRecv
// or TryRecvBatch then take it, or find that another consumer was first),
// every few milliseconds while the slot at the dequeue cursor stays
// claimed by a producer that may have died (TryRecv moves past it), at the
// end of the stream if the consumer opted in (EndOfStream: io.EOF, or an
// error matching ErrPeerDead), and with an error matching ErrClosed once
// the consumer is closed. In locked mode it waits on the filled-slots
// semaphore.
func (c *Consumer) Waiter() notify.Waiter {
	if c == nil || c.g == nil {
		return &consumerWaiter{c: c} // Enter reports the nil handle
	}
	w := &consumerWaiter{c: c, line: c.q.consumerWake}
	if l := c.q.lk; l != nil {
		// The count of filled slots is the word a release wakes; only a
		// Waiter of an open queue (whose Enter succeeds) uses it.
		count, err := c.q.seg.Uint32(c.q.hdr.ConsumerWake + layout.WakeSemCount)
		if err == nil {
			w.line = notify.Line{Seq: count, Waiters: l.sets[1]}
		}
	}
	return w
}

// consumerWaiter implements notify.Waiter for a Consumer.
type consumerWaiter struct {
	c    *Consumer
	line notify.Line

	claim uint64 // the claim word at the dequeue cursor seen by the last Check
	held  bool   // claim is valid
}

func (w *consumerWaiter) Enter() error { return w.c.enter("Wait") }

func (w *consumerWaiter) Exit() { w.c.g.Exit() }

func (w *consumerWaiter) Bind(ctx context.Context) (context.Context, context.CancelFunc) {
	return w.c.g.Bind(ctx)
}

func (w *consumerWaiter) Line() (notify.Line, int, notify.Backend) {
	return w.line, int(w.c.me), w.c.q.wait.Backend
}

// Ready reports whether a take may find something: a message stashed by
// an earlier call, or a slot at the dequeue cursor that is not plainly
// empty (a message, a tombstone to pass, a message being requeued, a
// cursor to help along, or a word that is corrupt, which the take
// reports). In locked mode: a filled unit to take.
func (w *consumerWaiter) Ready() (bool, error) {
	c := w.c
	q := c.q
	if c.stashed {
		return true, nil
	}
	if q.lk != nil {
		return w.line.Seq.Load() > 0, nil
	}
	pos := q.deq.Load()
	sw := q.seqs[pos&q.mask].Load()
	d, lap := layout.SeqDiff(sw, pos), q.lap()
	tomb := layout.SeqOwner(sw) == layout.SeqOwnerTomb
	switch {
	case d == dEmpty, d == dReading-lap, d == dFull-lap && tomb:
		return false, nil
	case d == dWriting && layout.SeqOwner(sw) != layout.SeqOwnerOrphan:
		return false, nil // a producer is writing: its commit wakes the group
	}
	return true, nil
}

// Check does between parks what a blocked Recv does: it asks for a retry
// while the same producer's claim holds the slot at the dequeue cursor for
// a whole park (the take checks whether that producer died), recovers the
// semaphore units of dead processes in locked mode, and looks for the end
// of the stream if the consumer opted in.
func (w *consumerWaiter) Check() (bool, time.Duration, error) {
	c := w.c
	q := c.q
	var limit time.Duration
	if c.eofGrace > 0 {
		var err error
		if q.lk != nil {
			limit, err = c.lockedEndOfStream()
		} else {
			limit, err = c.endOfStream()
		}
		if err != nil {
			return false, 0, opError("Wait", err)
		}
	}
	bounded := func(d time.Duration) time.Duration {
		if limit > 0 {
			return min(d, limit)
		}
		return d
	}
	if q.lk != nil {
		if err := q.recoverUnits(c.units); err != nil {
			return false, 0, opError("Wait", err)
		}
		if q.lk.pmu.Held() {
			return false, bounded(lockedRecheck), nil
		}
		return false, bounded(lockedIdleRecheck), nil
	}
	pos := q.deq.Load()
	sw := q.seqs[pos&q.mask].Load()
	stuck := false
	if layout.SeqDiff(sw, pos) == dWriting && layout.SeqOwner(sw) != layout.SeqOwnerOrphan {
		stuck = w.held && w.claim == sw
		w.claim, w.held = sw, true
	} else {
		w.held = false
	}
	return stuck, bounded(parkLimit(sw)), nil
}

func (w *consumerWaiter) Fault(addr uintptr) error {
	q := w.c.q
	if !q.seg.Contains(addr) {
		return nil
	}
	return opError("Wait", fmt.Errorf("%w: fault at %#x in %v", ErrTruncated, addr, q.seg.Location()))
}
