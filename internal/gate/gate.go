// Package gate lets a handle's Close wait for the calls in flight on it, so
// that a queue can unmap its segment only once no call of another
// goroutine is still touching the mapping, and makes blocked calls return
// when the handle closes.
//
// Every exported call of a queue handle brackets its work with Enter and
// Exit. Close marks the gate closed (later Enters fail), cancels the
// contexts that Bind made (blocked waits return), waits until the calls in
// flight have exited, and then runs the handle's teardown, once: every
// Close, the first and any concurrent or later one, returns only after the
// teardown finished. In the terms of the Go memory model, every Exit is
// synchronized before the teardown, and the teardown before the return of
// every Close: whatever a call or the teardown did to the mapping happens
// before a closer that then unmaps it.
//
// A gate made by New admits calls from any number of goroutines at once
// and counts them with an atomic read-modify-write at Enter and at Exit. A
// gate made by NewSingle is for a handle that one goroutine at a time
// calls (a Producer or Consumer), with Close from anywhere: where the
// kernel offers membarrier(2), its Enter and Exit are plain stores and
// loads, and Close pays for the ordering they skip (see single.go).
package gate

import (
	"context"
	"sync"
	"sync/atomic"
)

// closedBit marks a closed gate in the state word; the bits below count the
// calls in flight.
const closedBit = 1 << 62

// Gate is the lifecycle of one handle. The zero value is not ready; use
// New or NewSingle. Its methods are safe for concurrent use, except that
// the calls a single gate admits must not overlap (see NewSingle).
type Gate struct {
	state atomic.Int64 // New: calls in flight, plus closedBit once closed
	solo  bool         // NewSingle, with membarrier: single.go's protocol over own
	own   single

	ctx      context.Context
	cancel   context.CancelFunc
	once     sync.Once
	done     chan struct{} // closed when the gate is closed and drained
	finished chan struct{} // closed when the teardown has run
	_        [64]byte      // keep state and own off the line of the next allocation: they are written per call
}

// New returns an open gate for calls from any number of goroutines.
func New() *Gate {
	g := &Gate{done: make(chan struct{}), finished: make(chan struct{})}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	return g
}

// Enter admits a call and reports whether the gate is open. A call that
// was admitted must Exit; one that was not must not touch the handle.
func (g *Gate) Enter() bool {
	if g.solo { // inlined: a plain increment and load (single.go)
		g.own.depth++
		if g.own.closed == 0 {
			return true
		}
	}
	return g.enterSlow()
}

func (g *Gate) enterSlow() bool {
	if g.solo {
		g.own.exited()
		return false
	}
	if g.state.Add(1)&closedBit != 0 {
		g.Exit()
		return false
	}
	return true
}

// Exit ends a call admitted by Enter.
func (g *Gate) Exit() {
	if g.solo {
		g.own.depth--
		if g.own.closed == 0 {
			return
		}
	}
	g.exitSlow()
}

func (g *Gate) exitSlow() {
	if g.solo {
		g.own.drain()
		return
	}
	if g.state.Add(-1) == closedBit {
		g.once.Do(func() { close(g.done) })
	}
}

// Close closes the gate, cancels the waits of blocked calls, waits for the
// calls in flight to exit, and then runs teardown, if this is the first
// Close; any other Close waits until that teardown has finished. It reports
// whether this call ran the teardown. Close must not be called from inside
// a call on the same gate (a callback passed to the handle), which it
// would wait for forever.
func (g *Gate) Close(teardown func()) bool {
	if g.solo {
		return g.closeSolo(teardown)
	}
	old := g.state.Or(closedBit)
	if old&closedBit != 0 {
		<-g.finished
		return false
	}
	g.cancel()
	if old == 0 {
		g.once.Do(func() { close(g.done) })
	}
	<-g.done
	defer close(g.finished)
	if teardown != nil {
		teardown()
	}
	return true
}

// Closed reports whether Close has been called.
func (g *Gate) Closed() bool {
	if g.solo {
		return atomic.LoadUint32(&g.own.closed) != 0
	}
	return g.state.Load()&closedBit != 0
}

// Bind returns a context that ends when ctx does or when the gate closes,
// for a call about to block, and a function to release it, which the call
// must run when it stops waiting. The context must not be used after that.
//
// A ctx that can never end (context.Background or TODO), or that Bind
// returned for this gate with nothing derived, needs nothing derived: the
// gate's own context is the bound one, and binding is free.
// Otherwise it costs a derived context and an AfterFunc, about 0.6 µs and
// seven allocations, which a wait that parks at once would pay at every
// message.
func (g *Gate) Bind(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx == context.Background() || ctx == context.TODO() || ctx == g.ctx {
		return g.ctx, func() {}
	}
	c, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(g.ctx, cancel)
	return c, func() { stop(); cancel() }
}
