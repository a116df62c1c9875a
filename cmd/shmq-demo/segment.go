package main

import (
	"context"
	"fmt"
	"math"
	"syscall"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
)

// Reading a queue's segment without attaching to it, for inspect, list,
// reap and rm, which look at queues of any kind.

// openAnyKind maps the segment at loc whatever its kind, without attaching
// to it.
func openAnyKind(loc ring.Location) (*ring.Segment, error) {
	return ring.Open(context.Background(), loc, 0, &ring.Options{ReadyTimeout: time.Second})
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

// pidNote says if pid names no running process.
func pidNote(pid uint32) string {
	if pid == 0 || pid > math.MaxInt32 {
		return ""
	}
	if err := syscall.Kill(int(pid), 0); err == syscall.ESRCH {
		return " (not running)"
	}
	return ""
}
