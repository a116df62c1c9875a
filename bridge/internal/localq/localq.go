// Package localq is the bridges' view of a local shmq queue: a Source that
// hands out messages in order and frees them only when told (shmq-bridge
// out), and a Sink that commits messages (shmq-bridge in). Each queue kind
// implements both in a file of its own (spsc.go, mpmc.go), so that a new
// kind (pubsub) or new library calls (PeekWait) are local edits there.
package localq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/shmq/shmq/ring"
)

// ErrEmpty is returned, unwrapped, by Source.Next when no message is ready.
var ErrEmpty = errors.New("localq: no message ready")

// ErrFull is returned, unwrapped, by Sink.TrySend when the queue has no room.
var ErrFull = errors.New("localq: queue is full")

// ErrUnsupported: the queue cannot be bridged the way it is configured (an
// MPMC queue in locked mode has no Peek, so it cannot hold a message until
// JetStream acknowledges it).
var ErrUnsupported = errors.New("localq: queue mode not supported by the bridge")

// Config is what a bridge asks of a queue it creates; an existing queue is
// used as it is. Zero values mean the same defaults as shmq-demo's, so the
// bridges and shmq-demo create the same queue whoever starts first.
type Config struct {
	Capacity   uint64 // SPSC: ring bytes; MPMC: slots
	MaxMessage int    // MPMC: largest payload a slot holds
}

// Source is the consuming side of a local queue, for shmq-bridge out. It is
// not safe for concurrent use.
//
// Next copies the next message not yet handed out into buf and returns it
// with its message id; the message stays in the queue, held, until
// ReleasePrefix frees it. A process that dies holding messages leaves them
// for the next consumer, so a restarted bridge sends them again, with the
// same ids where the kind can tell them (see MsgID).
type Source interface {
	// Next returns the next message not yet handed out, copied into buf,
	// or ErrEmpty.
	Next(buf []byte) ([]byte, MsgID, error)
	// Wait blocks until a message is ready for Next, or ctx ends. Call it
	// only while no message is held.
	Wait(ctx context.Context) error
	// ReleasePrefix frees the first n held messages, in the order Next
	// returned them, and reports whether it could: a kind that can free
	// only everything held at once returns false unless n is all of them.
	ReleasePrefix(n int) (bool, error)
	// Held returns how many messages are held.
	Held() int
	// Redelivered counts messages handed out that a consumer that died had
	// taken before: deliveries that may repeat one already sent.
	Redelivered() uint64
	// MaxMessage is the largest payload the queue holds.
	MaxMessage() int
	// Close detaches; held messages stay in the queue for the next consumer.
	Close() error
}

// Sink is the producing side of a local queue, for shmq-bridge in. It is not
// safe for concurrent use.
type Sink interface {
	// TrySend commits msg or returns ErrFull without blocking.
	TrySend(msg []byte) error
	// Send commits msg, waiting while the queue is full until ctx ends.
	Send(ctx context.Context, msg []byte) error
	MaxMessage() int
	Close() error
}

// Kind opens queues of one kind.
type Kind struct {
	OpenSource func(ctx context.Context, loc ring.Location, name string, cfg Config) (Source, error)
	OpenSink   func(ctx context.Context, loc ring.Location, cfg Config) (Sink, error)
}

// Kinds maps the values of -kind to their implementations.
var Kinds = map[string]Kind{
	"spsc": {OpenSource: openSPSCSource, OpenSink: openSPSCSink},
	"mpmc": {OpenSource: openMPMCSource, OpenSink: openMPMCSink},
}

// KindNames lists the known kinds, sorted.
func KindNames() string {
	var names []string
	for k := range Kinds {
		names = append(names, k)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// Lookup returns the kind named name.
func Lookup(name string) (Kind, error) {
	k, ok := Kinds[name]
	if !ok {
		return Kind{}, fmt.Errorf("unknown queue kind %q (known: %s)", name, KindNames())
	}
	return k, nil
}

// MsgID identifies a message of a queue for JetStream's deduplication
// (the Nats-Msg-Id header): the queue's name, its creation time from the
// segment header (so a queue removed and created again under the same name
// does not reuse ids), and the message's position in the queue (SPSC: the
// byte cursor of its record; MPMC: the slot position it was committed at).
type MsgID struct {
	Queue   string
	Created int64
	Pos     uint64
}

// String formats the id as shmq:QUEUE:CREATED:POS, CREATED in hex.
func (id MsgID) String() string {
	b := make([]byte, 0, 5+len(id.Queue)+1+16+1+20)
	b = append(b, "shmq:"...)
	b = append(b, id.Queue...)
	b = append(b, ':')
	b = strconv.AppendInt(b, id.Created, 16)
	b = append(b, ':')
	b = strconv.AppendUint(b, id.Pos, 10)
	return string(b)
}
