package spsc

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/notify"
)

// Waiter returns the consumer as a notify.Waiter, so that a notify.Group
// can wait on it together with other queues: add the Consumer itself with
// Group.Add. While the group's Wait runs, it counts as a blocking call on
// the consumer (no other goroutine may use the consumer meanwhile). The
// group reports the consumer when a message is committed, io.EOF at the
// end of the stream, an error matching ErrPeerDead when the producer died
// attached and the ring is empty, and one matching ErrClosed once the
// consumer is closed.
func (c *Consumer) Waiter() notify.Waiter { return consumerWaiter{c} }

// consumerWaiter implements notify.Waiter for a Consumer.
type consumerWaiter struct{ c *Consumer }

func (w consumerWaiter) Enter() error { return w.c.enter("Wait") }

func (w consumerWaiter) Exit() { w.c.g.Exit() }

func (w consumerWaiter) Bind(ctx context.Context) (context.Context, context.CancelFunc) {
	return w.c.g.Bind(ctx)
}

func (w consumerWaiter) Line() (notify.Line, int, notify.Backend) {
	return w.c.q.consumerWake, w.c.e.Index(), w.c.q.wait.Backend
}

// Ready is waitData's condition: the tail moved past what the consumer
// has peeked, or the producer detached (the end of the stream, once the
// ring is drained).
func (w consumerWaiter) Ready() (bool, error) {
	c := w.c
	if c.q.tail.Load() != c.pos {
		return true, nil
	}
	if c.ended() {
		return true, io.EOF
	}
	return false, nil
}

// Check looks for a producer that died attached, as a blocked Recv does
// after each park.
func (w consumerWaiter) Check() (bool, time.Duration, error) {
	return false, livenessPeriod, opError("Wait", w.c.q.peerDead(layout.SPSCProducerEntry))
}

func (w consumerWaiter) Fault(addr uintptr) error {
	q := w.c.q
	if !q.seg.Contains(addr) {
		return nil
	}
	return opError("Wait", fmt.Errorf("%w: fault at %#x in %v", ErrTruncated, addr, q.seg.Location()))
}
