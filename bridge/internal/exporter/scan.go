package exporter

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
)

// This file is the exporter's only view of the library: listing the queues
// of a directory and reading their headers, cursors and registries. It is
// built on ring.Open (kind 0 maps any segment without attaching) and will be
// replaced by the library's listing API when it lands.

// Queue states.
const (
	StateReady        = "ready"
	StateInitializing = "initializing"
	StateAbandoned    = "abandoned"
	StateUnreadable   = "unreadable"
)

// QueueInfo is a snapshot of one queue. The values come from shared memory
// and are only as trustworthy as the processes that write it.
type QueueInfo struct {
	Name  string
	State string // one of the State constants; the fields below are set only when ready
	Kind  string // spsc, mpmc
	Mode  string // mpmc: lock-free or locked; spsc: ""

	DataBytes  uint64 // size of the data region
	Slots      uint64 // mpmc: number of slots
	Head, Tail uint64 // consumer and producer cursors (spsc: bytes, mpmc: slots)
	Depth      uint64 // messages committed and not yet released
	UsedBytes  uint64 // spsc: ring bytes in use; mpmc: bytes of the slots in use
	Created    time.Time
	Entries    []ring.EntryInfo // registry entries in use (not free)
}

// Options tune Scan.
type Options struct {
	// AllowOtherOwner reads segments owned by other users.
	AllowOtherOwner bool
}

// Scan lists the shmq segments in dir (not recursing): every regular file
// that is a segment, with its state; files that are not segments are
// skipped.
func Scan(dir string, opts Options) ([]QueueInfo, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	shm := filepath.Clean(dir) == "/dev/shm"
	var out []QueueInfo
	for _, d := range ents {
		if !d.Type().IsRegular() {
			continue
		}
		loc := ring.File(filepath.Join(dir, d.Name()))
		if shm {
			loc = ring.Shm(d.Name())
		}
		qi, ok := inspect(loc, d.Name(), opts)
		if ok {
			out = append(out, qi)
		}
	}
	return out, nil
}

// inspect reads one segment; ok is false for a file that is not a segment
// or that vanished.
func inspect(loc ring.Location, name string, opts Options) (qi QueueInfo, ok bool) {
	qi = QueueInfo{Name: name}
	seg, err := ring.Open(context.Background(), loc, 0, &ring.Options{
		ReadyTimeout: 50 * time.Millisecond, AllowOtherOwner: opts.AllowOtherOwner,
	})
	switch {
	case errors.Is(err, layout.ErrNotSegment), errors.Is(err, ring.ErrBadName), errors.Is(err, ring.ErrNotFound):
		return qi, false
	case errors.Is(err, ring.ErrAbandoned):
		qi.State = StateAbandoned
		return qi, true
	case errors.Is(err, layout.ErrNotReady):
		qi.State = StateInitializing
		return qi, true
	case err != nil:
		qi.State = StateUnreadable
		return qi, true
	}
	defer seg.Close()
	if err := read(seg, &qi); err != nil {
		return QueueInfo{Name: name, State: StateUnreadable}, true
	}
	qi.State = StateReady
	return qi, true
}

func read(seg *ring.Segment, qi *QueueInfo) (err error) {
	if seg.Shrinkable() {
		defer seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	h := seg.Header()
	tail, err := seg.Uint64(h.Producer + layout.CursorPosition)
	if err != nil {
		return err
	}
	head, err := seg.Uint64(h.Consumer + layout.CursorPosition)
	if err != nil {
		return err
	}
	all, err := seg.Entries()
	if err != nil {
		return err
	}
	qi.Kind = h.Kind.String()
	qi.DataBytes = h.DataSize
	qi.Head, qi.Tail = head.Load(), tail.Load()
	qi.Created = time.Unix(0, h.CreatedNano)
	for _, e := range all {
		if e.State != layout.EntryFree {
			qi.Entries = append(qi.Entries, e)
		}
	}
	switch h.Kind {
	case layout.KindSPSC:
		if used := qi.Tail - qi.Head; used <= h.Capacity {
			qi.UsedBytes = used
		}
		// Messages committed minus released, from the two roles' counters.
		var committed, released uint64
		for _, e := range all {
			switch e.Role {
			case layout.RoleProducer:
				committed += e.Messages
			case layout.RoleConsumer:
				released += e.Messages
			}
		}
		if committed > released {
			qi.Depth = committed - released
		}
	case layout.KindMPMC:
		qi.Slots = h.Capacity
		qi.Mode = "lock-free"
		if h.Flags&layout.FlagLocked != 0 {
			qi.Mode = "locked"
		}
		if d := qi.Tail - qi.Head; int64(d) > 0 && d <= h.Capacity {
			qi.Depth = d
			qi.UsedBytes = d * uint64(h.SlotSize)
		}
	}
	return nil
}
