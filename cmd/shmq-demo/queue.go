package main

import "context"

// The produce and consume commands work on any queue kind through these
// interfaces. A kind plugs in with a file that opens its queues and adapts
// them to queue (kind_spsc.go, kind_mpmc.go) and an entry in queueKinds.

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
