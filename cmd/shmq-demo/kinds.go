package main

import (
	"context"
	"slices"
	"strings"

	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/spsc"
)

// The produce and consume commands work on any queue kind through these
// interfaces. A kind plugs in with an opener in queueKinds and, where its
// Producer and Consumer methods return concrete types, a small adapter like
// spscQueue below.

// queueConfig is what produce and consume ask of a queue they create.
type queueConfig struct {
	// Capacity is the queue's size in the kind's unit (SPSC: ring bytes,
	// a power of two); 0 means the kind's default.
	Capacity uint64
	// MaxMessage is the largest payload the command will send, or 0 if it
	// does not know. Kinds with fixed-size slots need it to size them.
	MaxMessage int
}

// openFunc opens the queue of one kind named name, or creates it with cfg
// if there is none, so that either side may start first.
type openFunc func(ctx context.Context, name string, cfg queueConfig) (queue, error)

type queue interface {
	Producer() (producer, error)
	Consumer() (consumer, error)
	MaxMessage() int // largest payload the queue accepts
	Close() error    // detaches any producer or consumer and unmaps the queue
}

type producer interface {
	Send(ctx context.Context, msg []byte) error
	Close() error
}

type consumer interface {
	Recv(ctx context.Context, buf []byte) (int, error)
	Close() error
}

// queueKinds maps the values of -kind to openers.
var queueKinds = map[string]openFunc{
	"spsc": openSPSC,
}

func kindNames() string {
	var names []string
	for k := range queueKinds {
		names = append(names, k)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// spscQueue adapts *spsc.Queue to queue.
type spscQueue struct{ *spsc.Queue }

func openSPSC(ctx context.Context, name string, cfg queueConfig) (queue, error) {
	// The ring holds variable-length records up to half its size, so the
	// SPSC queue needs no message size hint.
	q, err := spsc.OpenOrCreate(ctx, ring.Shm(name), spsc.Config{Capacity: cfg.Capacity})
	if err != nil {
		return nil, err
	}
	return spscQueue{q}, nil
}

func (q spscQueue) Producer() (producer, error) { return q.Queue.Producer() }
func (q spscQueue) Consumer() (consumer, error) { return q.Queue.Consumer() }
