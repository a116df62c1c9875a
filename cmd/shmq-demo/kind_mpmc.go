package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/mpmc"
	"github.com/shmq/shmq/ring"
)

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
		AcceptExisting: true, // the flags set up a queue this command creates; an existing one is used as it is
	})
	if err != nil {
		return nil, err
	}
	return mpmcQueue{q}, nil
}

func (q mpmcQueue) Producer() (producer, error) { return q.Queue.Producer() }
func (q mpmcQueue) Consumer() (consumer, error) { return q.Queue.Consumer() }

// mpmcMode names an MPMC queue's mode.
func mpmcMode(locked bool) string {
	if locked {
		return "locked"
	}
	return "lock-free"
}

// removeIfLast removes the name of MPMC queue q if it is empty and no live
// process is attached to it: the last producer or consumer out removes the
// queue it leaves empty. A process still attached (a producer with more to
// send, another consumer) keeps the name for those that have not opened
// the queue yet.
func removeIfLast(q *mpmc.Queue, cmd, name string) {
	st, err := q.Stats()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: reading the registry of %s: %v\n", cmd, name, err)
		return
	}
	if st.Used > 0 {
		return
	}
	for _, e := range st.Entries {
		if e.State == layout.EntryAttached && e.Alive {
			return
		}
	}
	if err := ring.Unlink(ring.Shm(name)); err != nil && !errors.Is(err, ring.ErrNotFound) {
		fmt.Fprintf(os.Stderr, "%s: removing %s: %v\n", cmd, name, err)
	}
}
