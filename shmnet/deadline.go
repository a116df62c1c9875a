package shmnet

import (
	"context"
	"sync"
	"time"
)

// deadline is the deadline of one direction of a Conn. Calls in that
// direction wait on its context, which is cancelled when the deadline
// passes; moving the deadline re-arms the timer of the same context, so a
// call already blocked on it sees the change. Its methods are safe for
// concurrent use.
type deadline struct {
	mu sync.Mutex
	// ctx is cancelled exactly when the deadline has passed; timer, if not
	// nil, cancels it at the deadline. Both guarded by mu.
	ctx    context.Context
	cancel context.CancelFunc
	timer  *time.Timer
}

func (d *deadline) init() {
	d.ctx, d.cancel = context.WithCancel(context.Background())
}

// context returns the context that calls wait on.
func (d *deadline) context() context.Context {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ctx
}

// set moves the deadline to t; the zero time removes it.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopLocked()
	if !t.IsZero() && !time.Now().Before(t) {
		d.cancel()
		return
	}
	if d.ctx.Err() != nil {
		// Expired earlier: calls that saw it have returned; later ones get a
		// fresh context.
		d.init()
	}
	if !t.IsZero() {
		d.timer = time.AfterFunc(time.Until(t), d.cancel)
	}
}

// stop disarms the timer, for Close.
func (d *deadline) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopLocked()
}

func (d *deadline) stopLocked() {
	if d.timer != nil && !d.timer.Stop() {
		// The timer fired: its cancel (of this very context, as the timer
		// is replaced whenever the context is) may still be running.
		<-d.ctx.Done()
	}
	d.timer = nil
}
