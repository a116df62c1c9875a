package main

import (
	"fmt"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
)

// What inspect, list, reap and rm share: the queue argument and the names
// of registry values. They look at queues of any kind through the ring
// package's listing API, without attaching to them.

// locationArg returns the single QUEUE argument of inspect, reap and rm:
// a shm name, file:PATH or a path with a slash (see ring.ParseLocation).
func locationArg(cmd string, args []string) (ring.Location, error) {
	arg, err := nameArg(cmd, args)
	if err != nil {
		return ring.Location{}, err
	}
	return ring.ParseLocation(arg)
}

func roleName(r uint32) string {
	switch r {
	case layout.RoleProducer:
		return "producer"
	case layout.RoleConsumer:
		return "consumer"
	}
	return fmt.Sprintf("unknown(%d)", r)
}

func stateName(s uint32) string {
	switch s {
	case layout.EntryFree:
		return "free"
	case layout.EntryAttached:
		return "attached"
	case layout.EntryDetached:
		return "detached"
	}
	return fmt.Sprintf("unknown(%d)", s)
}

// liveness says whether a process holds the entry now: alive, dead (it
// attached and died without detaching) or released (it detached).
func liveness(e ring.EntryInfo) string {
	switch {
	case e.Alive:
		return "alive"
	case e.Dead():
		return "dead"
	}
	return "released"
}
