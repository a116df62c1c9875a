package main

import (
	"context"

	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/spsc"
)

// spscQueue adapts *spsc.Queue to queue.
type spscQueue struct{ *spsc.Queue }

func openSPSC(ctx context.Context, name string, cfg queueConfig) (queue, error) {
	// The ring holds variable-length records up to half its size, so the
	// SPSC queue needs no message size hint.
	q, err := spsc.OpenOrCreate(ctx, ring.Shm(name), spsc.Config{
		Capacity:       cfg.Capacity,
		AcceptExisting: true, // the flags set up a queue this command creates; an existing one is used as it is
	})
	if err != nil {
		return nil, err
	}
	return spscQueue{q}, nil
}

func (q spscQueue) Producer() (producer, error) { return q.Queue.Producer() }
func (q spscQueue) Consumer() (consumer, error) { return q.Queue.Consumer() }
