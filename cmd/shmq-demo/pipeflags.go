package main

import (
	"context"
	"flag"
	"time"
)

// pipeFlags are the flags produce and consume share.
type pipeFlags struct {
	queue      string
	count      uint64
	capacity   uint64
	kind       string
	maxMessage int
	locked     bool
	keep       bool
	timeout    time.Duration
}

func (pf *pipeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&pf.queue, "queue", "", "")
	fs.Uint64Var(&pf.count, "count", 0, "")
	fs.Uint64Var(&pf.capacity, "capacity", 0, "")
	fs.StringVar(&pf.kind, "kind", "spsc", "")
	fs.IntVar(&pf.maxMessage, "max-message", 0, "")
	fs.BoolVar(&pf.locked, "locked", false, "")
	fs.BoolVar(&pf.keep, "keep", false, "")
	fs.DurationVar(&pf.timeout, "timeout", 0, "")
}

// check validates the shared flags and returns the queue kind they name.
func (pf *pipeFlags) check() (queueKind, error) {
	if pf.queue == "" {
		return queueKind{}, usagef("-queue NAME is required")
	}
	if pf.count == 0 {
		return queueKind{}, usagef("-count N is required and must be positive")
	}
	kind, ok := queueKinds[pf.kind]
	if !ok {
		return queueKind{}, usagef("unknown -kind %q (known: %s)", pf.kind, kindNames())
	}
	switch {
	case pf.timeout < 0:
		return queueKind{}, usagef("-timeout must not be negative")
	case pf.maxMessage < 0:
		return queueKind{}, usagef("-max-message must be positive")
	case !kind.slotted && (pf.maxMessage != 0 || pf.locked):
		return queueKind{}, usagef("-max-message and -locked apply to -kind mpmc only")
	}
	return kind, nil
}

// config returns the configuration of a queue that the command creates,
// sending messages of up to size bytes (0: unknown).
func (pf *pipeFlags) config(size int) queueConfig {
	return queueConfig{Capacity: pf.capacity, MaxMessage: size, SlotMessage: pf.maxMessage, Locked: pf.locked}
}

// context returns the command's context: ended by a signal or -timeout.
func (pf *pipeFlags) context() (context.Context, context.CancelFunc) {
	ctx, stop := signalContext()
	if pf.timeout <= 0 {
		return ctx, stop
	}
	ctx, cancel := context.WithTimeout(ctx, pf.timeout)
	return ctx, func() { cancel(); stop() }
}
