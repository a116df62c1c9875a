package gate

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// kinds are the two gates, for tests that hold for both.
var kinds = []struct {
	name string
	new  func() *Gate
}{{"New", New}, {"NewSingle", NewSingle}}

func TestCloseWaitsForCallsInFlight(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) { testCloseWaitsForCallsInFlight(t, k.new) })
	}
}

func testCloseWaitsForCallsInFlight(t *testing.T, newGate func() *Gate) {
	g := newGate()
	if !g.Enter() {
		t.Fatal("Enter on an open gate failed")
	}
	closed := make(chan bool)
	go func() { closed <- g.Close(nil) }()
	// Close has begun once the gate says so; a goroutine a loaded machine
	// started late has not, and its gate still admits calls.
	for deadline := time.Now().Add(10 * time.Second); !g.Closed(); runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatal("Close never marked the gate closed")
		}
	}
	select {
	case <-closed:
		t.Fatal("Close returned while a call was in flight")
	case <-time.After(20 * time.Millisecond):
	}
	if g.Enter() {
		t.Fatal("Enter succeeded on a closing gate")
	}
	g.Exit()
	if !<-closed {
		t.Fatal("the first Close did not report closing")
	}
	if g.Close(nil) {
		t.Fatal("a second Close reported closing")
	}
	if !g.Closed() {
		t.Fatal("Closed false after Close")
	}
}

func TestBindEndsAtClose(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) { testBindEndsAtClose(t, k.new) })
	}
}

func testBindEndsAtClose(t *testing.T, newGate func() *Gate) {
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, c := range []struct {
		name string
		ctx  context.Context
	}{{"background", context.Background()}, {"todo", context.TODO()}, {"cancellable", parent}} {
		t.Run(c.name, func(t *testing.T) { testBindOfEndsAtClose(t, newGate(), c.ctx) })
	}
}

func testBindOfEndsAtClose(t *testing.T, g *Gate, parent context.Context) {
	ctx, release := g.Bind(parent)
	defer release()
	// Bind again what Bind returned, as mpmc's locked calls do.
	ctx, release2 := g.Bind(ctx)
	defer release2()
	if !g.Enter() {
		t.Fatal("Enter failed")
	}
	go func() {
		<-ctx.Done()
		g.Exit()
	}()
	done := make(chan struct{})
	go func() { g.Close(nil); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the bound context")
	}
}

// TestBindEndsWithContext: a bound cancellable context ends when its
// parent does, without closing the gate, and when it is released.
func TestBindEndsWithContext(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			g := k.new()
			parent, cancel := context.WithCancel(context.Background())
			ctx, release := g.Bind(parent)
			cancel()
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("the bound context outlived its parent")
			}
			release()
			if g.Closed() {
				t.Fatal("ending the parent closed the gate")
			}
			parent2, cancel2 := context.WithCancel(context.Background())
			defer cancel2()
			ctx2, release2 := g.Bind(parent2)
			release2()
			g.Close(nil)
			if ctx2.Err() != context.Canceled {
				t.Fatalf("a released bound context: %v, want it ended by release", ctx2.Err())
			}
		})
	}
}

// TestHammer: many goroutines entering and exiting while another closes;
// Close returns only after every admitted call exited.
func TestHammer(t *testing.T) {
	for range 50 {
		g := New()
		var inside sync.WaitGroup
		var mu sync.Mutex
		active := 0
		for range 8 {
			inside.Go(func() {
				for g.Enter() {
					mu.Lock()
					active++
					mu.Unlock()
					mu.Lock()
					active--
					mu.Unlock()
					g.Exit()
				}
			})
		}
		time.Sleep(time.Millisecond)
		g.Close(nil)
		mu.Lock()
		if active != 0 {
			t.Fatalf("%d calls active after Close returned", active)
		}
		mu.Unlock()
		inside.Wait()
	}
}

// TestSingleMode: NewSingle takes the membarrier path wherever it can, so
// that the tests below exercise it (and the race detector the fallback).
func TestSingleMode(t *testing.T) {
	g := NewSingle()
	want := !raceEnabled && membarrierReady()
	if g.solo != want {
		t.Fatalf("solo = %v, want %v (race %v)", g.solo, want, raceEnabled)
	}
	if runtime.GOOS == "linux" && !raceEnabled && !g.solo {
		t.Log("this kernel lacks MEMBARRIER_CMD_PRIVATE_EXPEDITED: single gates count like New's")
	}
}

// TestSingleNested: a call made from inside a call (a callback that calls
// the handle) keeps the gate busy until the outer one exits.
func TestSingleNested(t *testing.T) {
	g := NewSingle()
	for range 2 {
		if !g.Enter() {
			t.Fatal("Enter failed")
		}
	}
	g.Exit()
	closed := make(chan struct{})
	go func() { g.Close(nil); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while the outer call was in flight")
	case <-time.After(20 * time.Millisecond):
	}
	g.Exit()
	<-closed
}

// TestSingleHammer: one goroutine calls in a loop, as a Producer's owner
// does, while another closes the gate at a random moment and then frees
// the resource the calls use. No admitted call may see it freed, and
// every call after Close must be refused.
func TestSingleHammer(t *testing.T) {
	rounds := 2000
	if testing.Short() {
		rounds = 200
	}
	for i := range rounds {
		g := NewSingle()
		var freed atomic.Bool
		var calls atomic.Int64
		bad := make(chan string, 1)
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			for g.Enter() {
				if freed.Load() {
					bad <- "a call was admitted after Close returned"
				}
				calls.Add(1)
				for range i % 7 {
					runtime.Gosched()
				}
				if freed.Load() {
					bad <- "a call was still in flight when Close returned"
				}
				g.Exit()
			}
		}()
		for calls.Load() < int64(i%5) {
			runtime.Gosched()
		}
		if !g.Close(nil) {
			t.Fatal("Close did not report closing")
		}
		freed.Store(true)
		<-stopped
		select {
		case msg := <-bad:
			t.Fatalf("round %d: %s", i, msg)
		default:
		}
		if g.Enter() {
			t.Fatal("Enter admitted a call after Close")
		}
	}
}

// BenchmarkEnterExit is the cost of the gate around one call.
func BenchmarkEnterExit(b *testing.B) {
	for _, k := range kinds {
		b.Run(k.name, func(b *testing.B) {
			g := k.new()
			for range b.N {
				if !g.Enter() {
					b.Fatal("closed")
				}
				g.Exit()
			}
		})
	}
}

// TestCloseWaitsForTeardown: a Close that loses the race returns only after
// the winner's teardown has run.
func TestCloseWaitsForTeardown(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) { testCloseWaitsForTeardown(t, k.new) })
	}
}

func testCloseWaitsForTeardown(t *testing.T, newGate func() *Gate) {
	g := newGate()
	inTeardown, release := make(chan struct{}), make(chan struct{})
	go g.Close(func() { close(inTeardown); <-release })
	<-inTeardown
	second := make(chan bool)
	go func() { second <- g.Close(func() { t.Error("teardown ran twice") }) }()
	select {
	case <-second:
		t.Fatal("the second Close returned during the first one's teardown")
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	if <-second {
		t.Fatal("the second Close reported running the teardown")
	}
}

// TestTeardownAfterCalls: the teardown runs only once the call in flight
// when Close began has exited, and a call refused after it began does not
// delay it.
func TestTeardownAfterCalls(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			g := k.new()
			if !g.Enter() {
				t.Fatal("Enter failed")
			}
			var exited atomic.Bool
			tornDown := make(chan bool)
			go g.Close(func() { tornDown <- exited.Load() })
			for !g.Closed() {
				runtime.Gosched()
			}
			if g.Enter() {
				t.Fatal("Enter admitted a call during Close")
			}
			select {
			case <-tornDown:
				t.Fatal("the teardown ran while a call was in flight")
			case <-time.After(20 * time.Millisecond):
			}
			exited.Store(true)
			g.Exit()
			if !<-tornDown {
				t.Fatal("the teardown did not see the call's exit")
			}
		})
	}
}
