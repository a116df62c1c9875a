package notify

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// lateTimer is a context whose deadline has passed while its timer has not
// fired yet, as a real one is for a moment on a loaded machine.
type lateTimer struct {
	context.Context
	deadline time.Time
}

func (c lateTimer) Deadline() (time.Time, bool) { return c.deadline, true }

// TestParkPastDeadlineReturnsCtxErr: a park whose deadline has passed
// returns the context's error only once the context says so too, so that
// a caller that checks ctx.Err() after the call (shmnet's Write, the
// bridge's Wait) sees it set.
func TestParkPastDeadlineReturnsCtxErr(t *testing.T) {
	var seq atomic.Uint32
	l := Line{Seq: &seq, Waiters: NewWaiterSet([]*atomic.Uint64{new(atomic.Uint64)})}
	timer, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	ctx := lateTimer{Context: timer, deadline: time.Now().Add(-time.Millisecond)}
	_, err := l.Park(ctx, Policy{Backend: Default(), Spin: -1}, 1, time.Second, func() bool { return false }, nil)
	if err != context.DeadlineExceeded || ctx.Err() == nil {
		t.Fatalf("Park = %v with ctx.Err() = %v; want DeadlineExceeded with the context done", err, ctx.Err())
	}
}

// TestWaitPastDeadlineReturnsCtxErr: the same for every backend's Wait,
// which the queues' locked mode and the semaphores call directly.
func TestWaitPastDeadlineReturnsCtxErr(t *testing.T) {
	forEach(t, func(t *testing.T, _ namedBackend, b Backend) {
		var w atomic.Uint32
		timer, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		ctx := lateTimer{Context: timer, deadline: time.Now().Add(-time.Millisecond)}
		err := b.Wait(ctx, &w, 0)
		if !isCtxErr(err, context.DeadlineExceeded) || ctx.Err() == nil {
			t.Fatalf("Wait = %v with ctx.Err() = %v; want DeadlineExceeded with the context done", err, ctx.Err())
		}
	})
}
