package main

import (
	"fmt"
	"os"
	"regexp"
)

// Conn carries fixed-size messages in both directions between the two
// peers of a run. Recv fills buf with exactly one message of len(buf) bytes.
type Conn interface {
	Send(msg []byte) error
	Recv(buf []byte) error
	Close() error
}

// Link is what Mechanism.Setup hands the harness: the kernel objects for
// one run, and how each side reaches them.
type Link struct {
	// ChildArg and ChildFiles reach the peer process: the string through the
	// environment, the files as inherited descriptors (via cmd.ExtraFiles).
	// The harness closes ChildFiles in the parent once the child started.
	ChildArg   string
	ChildFiles []*os.File
	// ChildProgram, when set, is run as the peer instead of this binary
	// (a peer written in another language). It gets the spec as arguments:
	// PATTERN SIZE COUNT WARMUP FULLCHECK(0|1), the report pipe as fd 3 and
	// ChildFiles from fd 4, and speaks the same JSON-lines reports.
	ChildProgram string
	// OpenParent returns the parent's end. It runs after the child has
	// started, so it may wait for the child to connect.
	OpenParent func() (Conn, error)
	// InProcessPeer, when set, makes the peer a goroutine in this process
	// instead of a child process (reference mechanisms such as Go channels).
	InProcessPeer func() (Conn, error)
	// Cleanup releases named objects (queues, paths). It must be safe to
	// call after both Conns are closed and may be nil.
	Cleanup func()

	// Config states how this run is set up (buffer sizes, kernel limits,
	// I/O mode), each with the reason; the report prints it next to the
	// rows. The harness adds the GOMAXPROCS setting from the two fields
	// below.
	Config []Setting
	// GOMAXPROCS, when above zero, is applied to both processes for the
	// run (the parent's own value comes back afterwards); zero keeps Go's
	// default. GOMAXPROCSWhy says why, and must be set either way.
	GOMAXPROCS    int
	GOMAXPROCSWhy string
	// CheckPath runs in the parent after a run that delivered every
	// message, and proves the data took the intended path: bytes through
	// the pipe, wakes through the eventfd, no fallback to a socket. A run
	// it rejects is reported as failed, never as the mechanism's speed.
	CheckPath pathCheck
}

// Mechanism is one local IPC transport under test. Add one by writing a
// file with a type implementing it and listing it in registry.go.
type Mechanism interface {
	// Name is the label in tables, charts and -only matching.
	Name() string
	// Check reports why messages of size bytes cannot be carried here
	// (system limits, say), or nil if they can.
	Check(size int) error
	// Setup creates the kernel objects for one run with messages of size bytes.
	Setup(size int) (*Link, error)
	// Attach runs in the child process and rebuilds the child's end from
	// Link.ChildArg and the inherited Link.ChildFiles (in the same order).
	Attach(arg string, files []*os.File, size int) (Conn, error)
}

// lookupMechanism finds a registered mechanism by exact name.
func lookupMechanism(name string) (Mechanism, error) {
	for _, m := range registeredMechanisms() {
		if m.Name() == name {
			return m, nil
		}
	}
	return nil, fmt.Errorf("unknown mechanism %q", name)
}

// selectMechanisms returns the registered mechanisms whose name matches re.
func selectMechanisms(re *regexp.Regexp) []Mechanism {
	var out []Mechanism
	for _, m := range registeredMechanisms() {
		if re == nil || re.MatchString(m.Name()) {
			out = append(out, m)
		}
	}
	return out
}

// Optional interfaces of a Mechanism.
type (
	// selfRunner measures a run by itself, both sides included, instead of
	// through Conns and the peer protocol: the C floors (floor.go).
	selfRunner interface {
		RunSelf(spec runSpec) (Record, error)
	}
	// shapeRunner measures an MPMC shape run (pattern "shape"): several
	// producer and consumer processes on one queue (shape.go).
	shapeRunner interface {
		RunShape(spec runSpec) (Record, error)
	}
	// patternLister limits a mechanism to some patterns; without it, a
	// mechanism runs ping-pong and stream.
	patternLister interface {
		Patterns() []string
	}
	// scaler marks a mechanism that also streams at the plan's
	// ScalingSizes (throughput against message size, up to 1 MiB).
	scaler interface {
		Scales() bool
	}
	// flusher is a Conn that holds messages back (a batch): the harness
	// calls Flush after the last message of a stream.
	flusher interface {
		Flush() error
	}
)

// patternsOf returns the patterns m runs.
func patternsOf(m Mechanism) []string {
	if p, ok := m.(patternLister); ok {
		return p.Patterns()
	}
	return []string{patternPingPong, patternStream}
}

// scales reports whether m streams at the scaling sizes too.
func scales(m Mechanism) bool {
	s, ok := m.(scaler)
	return ok && s.Scales()
}
