package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// Signals and cleanup. The first SIGINT or SIGTERM cancels the context that
// every blocking call of a command runs under, so the command unwinds and
// its deferred cleanup removes what it created; a second signal removes the
// registered names at once and exits.

var (
	cleanupMu    sync.Mutex
	cleanupNames = map[string]func() error{}
	gotSignal    = make(chan os.Signal, 1)
)

// removeOnExit registers fn to remove name on a second signal or when the
// command calls removeNow or removeAll.
func removeOnExit(name string, fn func() error) {
	cleanupMu.Lock()
	defer cleanupMu.Unlock()
	cleanupNames[name] = fn
}

// removeNow runs and unregisters the removal registered for name, if any.
func removeNow(name string) error {
	cleanupMu.Lock()
	fn := cleanupNames[name]
	delete(cleanupNames, name)
	cleanupMu.Unlock()
	if fn == nil {
		return nil
	}
	return fn()
}

func removeAll() {
	cleanupMu.Lock()
	names := make([]string, 0, len(cleanupNames))
	for n := range cleanupNames {
		names = append(names, n)
	}
	cleanupMu.Unlock()
	for _, n := range names {
		removeNow(n)
	}
}

// signalContext returns a context that ends on the first SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-ch
		gotSignal <- sig
		fmt.Fprintf(os.Stderr, "shmq-demo: %v: stopping and cleaning up (again to exit at once)\n", sig)
		cancel()
		<-ch
		removeAll()
		os.Exit(exitInterrupted)
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}

// interrupted reports whether a signal arrived.
func interrupted() bool {
	select {
	case sig := <-gotSignal:
		gotSignal <- sig
		return true
	default:
		return false
	}
}
