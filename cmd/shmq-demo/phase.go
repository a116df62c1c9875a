package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
)

// A phase is one part of the demo run, on one queue kind, in a file of its
// own with both of its ends: the parent's side, which creates the phase's
// queues, starts its peers as child processes and checks what they report,
// and the peers' side, which those processes run as hidden commands. A new
// phase is a new file and an entry in demoPhases.
type phase interface {
	// name prefixes the phase's errors, as it does its output lines.
	name() string
	// register adds the phase's flags to the demo's.
	register(fs *flag.FlagSet)
	// check validates the phase's flags once they are parsed, with the
	// demo's common flags in f.
	check(f *demoFlags) error
	// run runs the phase, or returns nil at once if its flags skip it.
	run(ctx context.Context, env *demoEnv) error
	// peers maps the hidden commands of the phase's child processes to
	// what they run.
	peers() map[string]peerFunc
}

// peerFunc runs a phase's child process with the arguments after its
// hidden command and returns its exit status.
type peerFunc func(args []string) int

// demoFlags are the demo's flags that every phase reads.
type demoFlags struct {
	size    int           // -size: payload bytes per message (streamPhase.check checks it)
	timeout time.Duration // -timeout: for the whole run (pingPongPhase.check checks it)
}

// demoEnv is what runDemo hands each phase.
type demoEnv struct {
	demoFlags
	exe  string // this program, which the phase re-executes for its peers
	base string // shmq-demo-PID: the phase's queue names start with it
}

// createDemoQueue creates a queue named name with create, failing if the
// name exists, and registers the name for removal on exit (removeAll) or
// by closeAndRemove.
func createDemoQueue[Q any](name string, create func(ring.Location) (Q, error)) (Q, error) {
	loc := ring.Shm(name)
	q, err := create(loc)
	if errors.Is(err, ring.ErrExists) {
		return q, fmt.Errorf("%w (left by an earlier run? remove it with: shmq-demo rm %s)", err, name)
	}
	if err != nil {
		return q, err
	}
	removeOnExit(name, func() error { return ring.Unlink(loc) })
	return q, nil
}

// closeAndRemove closes q and removes its name, reporting a failure to.
func closeAndRemove(q io.Closer, name string) {
	q.Close()
	if err := removeNow(name); err != nil {
		fmt.Fprintf(os.Stderr, "shmq-demo: removing %s: %v\n", name, err)
	}
}

// attached reports whether a live process holds registry entry e.
func attached(e ring.EntryInfo) bool { return e.State == layout.EntryAttached && e.Alive }
