package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
)

// shmq-demo inspect QUEUE: print a queue's kind, geometry, cursors, depth,
// creator and registry, and for an MPMC queue its mode and the state of
// its slots or of its semaphores and mutexes. QUEUE is a shm name, or a
// file as file:PATH or a path with a slash. The queue is read through a
// read-only view (ring.OpenView): inspect needs no write permission and
// changes nothing. Every word is read through the view's bounds checks,
// and values no correct peer writes are reported, not trusted.

func runInspect(args []string) error {
	loc, err := locationArg("inspect", args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	v, err := ring.OpenView(ctx, loc)
	if err != nil {
		return err
	}
	defer v.Close()
	// The view turns a fault (the file truncated under it) into an error.
	info, err := v.Info()
	if err != nil {
		return err
	}
	var r report
	if err := r.inspect(v, &info); err != nil {
		return err
	}
	fmt.Print(r.String())
	return nil
}

// report is inspect's output, built whole before it is printed so that
// an error leaves none of it.
type report struct{ strings.Builder }

// row adds a line of label and value.
func (r *report) row(label, format string, args ...any) {
	fmt.Fprintf(r, "  %-12s %s\n", label, fmt.Sprintf(format, args...))
}

func (r *report) inspect(v *ring.View, info *ring.SegmentInfo) error {
	h := &info.Header
	head, tail := info.Head, info.Tail
	fmt.Fprintf(r, "queue %v\n", info.Location)
	r.row("kind", "%v (layout version %d)", h.Kind, layout.Version)
	r.row("segment", "%d bytes, data region %d bytes at offset %d", h.TotalSize, h.DataSize, h.Data)
	switch h.Kind {
	case layout.KindSPSC:
		r.spsc(h, head, tail)
	case layout.KindMPMC:
		if err := r.mpmc(v, info); err != nil {
			return err
		}
	case layout.KindPubSub:
		rows, err := pubsubRows(v, info)
		if err != nil {
			return err
		}
		for _, row := range rows {
			r.row(row[0], "%s", row[1])
		}
	default:
		depth := tail - head
		r.row("capacity", "%d slots of %d bytes", h.Capacity, h.SlotSize)
		r.row("max message", "%d bytes", h.MaxMessage)
		r.row("head", "%d", head)
		r.row("tail", "%d", tail)
		r.row("depth", "%d slots, %d bytes (tail-head)", depth, depth*uint64(h.SlotSize))
	}
	r.row("creator", "pid %d at %s", h.CreatorPID, time.Unix(0, h.CreatedNano).Format(time.RFC3339Nano))
	r.registry(h.Kind, info.Entries)
	return nil
}

// registry adds the registry's entries; for an MPMC or pub/sub queue,
// which have many (64 by default), only those in use.
func (r *report) registry(kind layout.Kind, entries []ring.EntryInfo) {
	listFree := kind == layout.KindSPSC
	inUse := 0
	for _, e := range entries {
		if e.State != layout.EntryFree {
			inUse++
		}
	}
	if listFree {
		r.row("registry", "%d entries", len(entries))
	} else {
		r.row("registry", "%d entries, %d in use (free ones not listed)", len(entries), inUse)
	}
	for _, e := range entries {
		if e.State == layout.EntryFree {
			if listFree {
				fmt.Fprintf(r, "    [%d] free\n", e.Index)
			}
			continue
		}
		fmt.Fprintf(r, "    [%d] role=%s pid=%d state=%s %s gen=%d attached=%s messages=%d bytes=%d stalls=%d waits=%d wakes=%d\n",
			e.Index, roleName(e.Role), e.PID, stateName(e.State), liveness(e), e.Gen,
			e.AttachedAt.Format(time.RFC3339), e.Messages, e.Bytes, e.Stalls, e.Waits, e.Wakes)
	}
}

// spsc adds the rows of an SPSC queue: its ring, cursors and depth.
func (r *report) spsc(h *layout.Header, head, tail uint64) {
	r.row("capacity", "%d bytes", h.Capacity)
	r.row("max message", "%d bytes", h.MaxMessage)
	r.row("head", "%d (ring index %d)", head, head&(h.Capacity-1))
	r.row("tail", "%d (ring index %d)", tail, tail&(h.Capacity-1))
	if depth := tail - head; depth > h.Capacity {
		r.row("depth", "%d bytes: more than the capacity, the cursors are corrupt", depth)
	} else {
		r.row("depth", "%d bytes (tail-head, %.1f%% of capacity, record headers included)",
			depth, 100*float64(depth)/float64(h.Capacity))
	}
}

// mpmc adds the rows of an MPMC queue: its mode, slots, cursors and
// depth, then what differs between the modes.
func (r *report) mpmc(v *ring.View, info *ring.SegmentInfo) error {
	h := &info.Header
	head, tail := info.Head, info.Tail
	locked := h.Flags&layout.FlagLocked != 0
	if locked {
		r.row("mode", "locked (semaphores and robust mutexes guard the slots)")
	} else {
		r.row("mode", "lock-free (per-slot sequence words)")
	}
	r.row("slots", "%d of %d bytes (%d-byte slot header)", h.Capacity, h.SlotSize, layout.SlotHeaderSize)
	r.row("max message", "%d bytes", h.MaxMessage)
	mask := h.Capacity - 1
	r.row("head", "%d (dequeue cursor, slot %d)", head, head&mask)
	r.row("tail", "%d (enqueue cursor, slot %d)", tail, tail&mask)
	switch depth := tail - head; {
	case int64(depth) < 0:
		r.row("depth", "tail is %d behind head: the cursors are corrupt", -int64(depth))
	case depth > h.Capacity:
		r.row("depth", "%d slots: more than the slot count, the cursors are corrupt", depth)
	default:
		r.row("depth", "%d messages (tail-head, %.1f%% of slots, claimed slots included)",
			depth, 100*float64(depth)/float64(h.Capacity))
	}
	if locked {
		return r.mpmcLocked(v, info)
	}
	return r.mpmcLockFree(v, info)
}

// mpmcLocked adds the semaphores and mutexes of a locked MPMC queue.
func (r *report) mpmcLocked(v *ring.View, info *ring.SegmentInfo) error {
	h := &info.Header
	for _, s := range []struct {
		label, what string
		line        uint64
		set         int
	}{
		{"free", "slots free, producers take", h.ProducerWake, layout.WaiterSetFree},
		{"filled", "messages, consumers take", h.ConsumerWake, layout.WaiterSetFilled},
	} {
		count, err := v.Load32(s.line + layout.WakeSemCount)
		if err != nil {
			return err
		}
		note := ""
		if uint64(count) > h.Capacity {
			note = ": more than the slot count, corrupt"
		}
		r.row(s.label, "semaphore %d (%s), %d waiting%s", count, s.what, info.Waiters[s.set], note)
	}
	for _, m := range []struct {
		label, what string
		line        uint64
		set         int
	}{
		{"mutex P", "producers', guards tail", h.ProducerWake, layout.WaiterSetMutexP},
		{"mutex C", "consumers', guards head", h.ConsumerWake, layout.WaiterSetMutexC},
	} {
		state, err := v.Load32(m.line + layout.WakeMutexState)
		if err != nil {
			return err
		}
		owner, err := v.Load32(m.line + layout.WakeMutexOwner)
		if err != nil {
			return err
		}
		waiters := info.Waiters[m.set]
		if state == 0 {
			r.row(m.label, "unlocked (%s), %d waiting", m.what, waiters)
		} else {
			r.row(m.label, "locked by pid %d%s (%s), %d waiting", owner, pidNote(owner), m.what, waiters)
		}
	}
	var units []string
	for i := 0; i < int(h.RegistryCount); i++ {
		u, err := v.Load32(h.Entry(i) + layout.EntryUnits)
		if err != nil {
			return err
		}
		if u != 0 {
			units = append(units, fmt.Sprintf("entry %d: %d", i, u))
		}
	}
	if len(units) > 0 {
		r.row("units held", "%s (semaphore units recorded in registry entries)", strings.Join(units, ", "))
	}
	return nil
}

// mpmcLockFree adds the states of a lock-free MPMC queue's slots, from
// their sequence words, and its parked waiters.
func (r *report) mpmcLockFree(v *ring.View, info *ring.SegmentInfo) error {
	h := &info.Header
	if h.Capacity*uint64(h.SlotSize) > h.DataSize {
		r.row("slot states", "unknown: %d slots of %d bytes do not fit the data region, corrupt", h.Capacity, h.SlotSize)
		return nil
	}
	var counts [4]uint64
	var held []string
	for i := uint64(0); i < h.Capacity; i++ {
		w, err := v.Load64(h.Data + i*uint64(h.SlotSize) + layout.SlotSeq)
		if err != nil {
			return err
		}
		st := layout.SeqState(w) & 3
		counts[st]++
		if (st == layout.SlotWriting || st == layout.SlotReading) && len(held) < 8 {
			held = append(held, heldSlot(i, w, info.Entries))
		}
	}
	r.row("slot states", "empty=%d writing=%d full=%d reading=%d (from the sequence words)",
		counts[layout.SlotEmpty], counts[layout.SlotWriting], counts[layout.SlotFull], counts[layout.SlotReading])
	if len(held) > 0 {
		r.row("held slots", "%s", strings.Join(held, "; "))
	}
	r.row("parked", "%d producer(s) waiting for space, %d consumer(s) waiting for messages",
		info.Waiters[layout.WaiterSetProducers], info.Waiters[layout.WaiterSetConsumers])
	return nil
}

// heldSlot describes slot i, which a process is writing or reading, from
// its sequence word seq: who holds it.
func heldSlot(i, seq uint64, entries []ring.EntryInfo) string {
	owner := layout.SeqOwner(seq)
	who := fmt.Sprintf("entry %d", owner)
	switch {
	case owner == layout.SeqOwnerOrphan:
		who = "no entry (orphaned, being requeued)"
	case owner == layout.SeqOwnerTomb:
		who = "no entry (a tombstone)"
	case int(owner) < len(entries):
		who += fmt.Sprintf(" (pid %d, %s)", entries[owner].PID, liveness(entries[owner]))
	}
	verb := "written by"
	if layout.SeqState(seq)&3 == layout.SlotReading {
		verb = "read by"
	}
	return fmt.Sprintf("%d %s %s", i, verb, who)
}
