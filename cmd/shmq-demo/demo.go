package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

// shmq-demo with no command (or demo, or run): the self-checking demo. It
// runs its phases one after the other, each on queues of its own named
// after this process, and exits 0 only if every check of every phase held.

// demoPhases returns the demo's phases in the order they run.
func demoPhases() []phase {
	return []phase{&streamPhase{}, &pingPongPhase{}, &mpmcPhase{}, &fanoutPhase{}}
}

// demoPeer returns what the hidden command cmd runs in a phase's child
// process, or nil if cmd is none.
func demoPeer(cmd string) peerFunc {
	for _, ph := range demoPhases() {
		if p := ph.peers()[cmd]; p != nil {
			return p
		}
	}
	return nil
}

func runDemo(args []string) error {
	phases := demoPhases()
	var f demoFlags
	fs := newFlags("demo")
	fs.IntVar(&f.size, "size", 64, "")
	fs.DurationVar(&f.timeout, "timeout", 55*time.Second, "")
	for _, ph := range phases {
		ph.register(fs)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	for _, ph := range phases {
		if err := ph.check(&f); err != nil {
			return err
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find my executable to start the child: %w", err)
	}
	ctx, stop := signalContext()
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	defer removeAll()

	env := &demoEnv{demoFlags: f, exe: exe, base: "shmq-demo-" + strconv.Itoa(os.Getpid())}
	fmt.Printf("shmq-demo: pid %d, GOMAXPROCS %d, %s/%s\n", os.Getpid(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH)
	for _, ph := range phases {
		if err := ph.run(ctx, env); err != nil {
			return fmt.Errorf("%s: %w", ph.name(), err)
		}
	}
	fmt.Println("ok: every check held")
	return nil
}
