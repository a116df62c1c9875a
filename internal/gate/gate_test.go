package gate

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestCloseWaitsForCallsInFlight(t *testing.T) {
	g := New()
	if !g.Enter() {
		t.Fatal("Enter on an open gate failed")
	}
	closed := make(chan bool)
	go func() { closed <- g.Close(nil) }()
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
	g := New()
	ctx, release := g.Bind(context.Background())
	defer release()
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

// TestCloseWaitsForTeardown: a Close that loses the race returns only after
// the winner's teardown has run.
func TestCloseWaitsForTeardown(t *testing.T) {
	g := New()
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
