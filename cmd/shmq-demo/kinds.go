package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/mpmc"
	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/spsc"
)

// The produce and consume commands work on any queue kind through these
// interfaces. A kind plugs in with an entry in queueKinds and, where its
// Producer and Consumer methods return concrete types, a small adapter like
// spscQueue below.

// queueConfig is what produce and consume ask of a queue they create.
type queueConfig struct {
	// Capacity is the queue's size in the kind's unit (SPSC: ring bytes,
	// a power of two; MPMC: slots, a power of two); 0 means the kind's
	// default.
	Capacity uint64
	// MaxMessage is the largest payload the command will send, or 0 if it
	// does not know. Kinds with fixed-size slots need it to size them.
	MaxMessage int
	// SlotMessage is the largest payload a slot must hold, as -max-message
	// asks (fixed-size slots only); 0 means the kind's default, which is at
	// least MaxMessage.
	SlotMessage int
	// Locked asks for an MPMC queue in locked mode.
	Locked bool
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

// queueKind describes one value of -kind.
type queueKind struct {
	open openFunc
	// shared: any number of producers and consumers share the queue.
	// Payloads then carry a producer id after the sequence number (see
	// payload.PutProducer), and consume checks each producer's numbers apart
	// and stops when the producers are done (consumeShared).
	shared bool
	// slotted: the queue has fixed-size slots, so -max-message and
	// -locked apply.
	slotted bool
}

// queueKinds maps the values of -kind to their implementations.
var queueKinds = map[string]queueKind{
	"spsc": {open: openSPSC},
	"mpmc": {open: openMPMC, shared: true, slotted: true},
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

// mpmcQueue adapts *mpmc.Queue to queue.
type mpmcQueue struct{ *mpmc.Queue }

// mpmcDefaultMessage is the payload an MPMC slot holds when the command
// line does not say: mpmc's default slot of 256 bytes. Producers and
// consumers that create the queue then agree on its geometry whoever
// starts first, as long as -size stays within it.
const mpmcDefaultMessage = mpmc.DefaultSlotSize - layout.SlotHeaderSize

func openMPMC(ctx context.Context, name string, cfg queueConfig) (queue, error) {
	mm := cfg.SlotMessage
	if mm == 0 {
		mm = max(cfg.MaxMessage, mpmcDefaultMessage)
	}
	if mm > int(layout.MPMCMaxMessage(layout.MaxSlotSize)) {
		return nil, fmt.Errorf("a message of %d bytes does not fit the largest MPMC slot (%d bytes)", mm, layout.MaxSlotSize)
	}
	q, err := mpmc.OpenOrCreate(ctx, ring.Shm(name), mpmc.Config{
		Slots: cfg.Capacity, MaxMessage: uint32(mm), Locked: cfg.Locked,
	})
	if err != nil {
		return nil, err
	}
	return mpmcQueue{q}, nil
}

func (q mpmcQueue) Producer() (producer, error) { return q.Queue.Producer() }
func (q mpmcQueue) Consumer() (consumer, error) { return q.Queue.Consumer() }

// mode names an MPMC queue's mode.
func mpmcMode(locked bool) string {
	if locked {
		return "locked"
	}
	return "lock-free"
}
