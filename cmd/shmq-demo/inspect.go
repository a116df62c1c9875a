package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
)

// nameArg returns the single NAME argument of inspect and rm.
func nameArg(cmd string, args []string) (string, error) {
	fs := newFlags(cmd)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", err
		}
		return "", usageError{err.Error()}
	}
	if fs.NArg() != 1 {
		return "", usagef("want exactly one queue name: shmq-demo %s NAME", cmd)
	}
	return fs.Arg(0), nil
}

// openAnyKind maps the segment at loc whatever its kind, without attaching
// to it.
func openAnyKind(loc ring.Location) (*ring.Segment, error) {
	return ring.Open(context.Background(), loc, 0, &ring.Options{ReadyTimeout: time.Second})
}

func runInspect(args []string) (err error) {
	name, err := nameArg("inspect", args)
	if err != nil {
		return err
	}
	seg, err := openAnyKind(ring.Shm(name))
	if err != nil {
		return err
	}
	defer seg.Close()
	// Another process may truncate the file under the mapping: turn the
	// fault into an error (deferred after Close, so it runs first).
	if seg.Shrinkable() {
		defer seg.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	h := seg.Header()
	tailWord, err := seg.Uint64(h.Producer + layout.CursorPosition)
	if err != nil {
		return err
	}
	headWord, err := seg.Uint64(h.Consumer + layout.CursorPosition)
	if err != nil {
		return err
	}
	head, tail := headWord.Load(), tailWord.Load()
	entries, err := seg.Entries()
	if err != nil {
		return err
	}

	var b strings.Builder
	row := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "  %-12s %s\n", label, fmt.Sprintf(format, args...))
	}
	fmt.Fprintf(&b, "queue %v\n", seg.Location())
	row("kind", "%v (layout version %d)", h.Kind, layout.Version)
	row("segment", "%d bytes, data region %d bytes at offset %d", h.TotalSize, h.DataSize, h.Data)
	depth := tail - head
	switch h.Kind {
	case layout.KindSPSC:
		row("capacity", "%d bytes", h.Capacity)
		row("max message", "%d bytes", h.MaxMessage)
		row("head", "%d (ring index %d)", head, head&(h.Capacity-1))
		row("tail", "%d (ring index %d)", tail, tail&(h.Capacity-1))
		if depth > h.Capacity {
			row("depth", "%d bytes: more than the capacity, the cursors are corrupt", depth)
		} else {
			row("depth", "%d bytes (tail-head, %.1f%% of capacity, record headers included)",
				depth, 100*float64(depth)/float64(h.Capacity))
		}
	case layout.KindMPMC:
		if err := inspectMPMC(seg, head, tail, entries, row); err != nil {
			return err
		}
	default:
		row("capacity", "%d slots of %d bytes", h.Capacity, h.SlotSize)
		row("max message", "%d bytes", h.MaxMessage)
		row("head", "%d", head)
		row("tail", "%d", tail)
		row("depth", "%d slots, %d bytes (tail-head)", depth, depth*uint64(h.SlotSize))
	}
	row("creator", "pid %d at %s", h.CreatorPID, time.Unix(0, h.CreatedNano).Format(time.RFC3339Nano))
	// An MPMC registry has many entries (64 by default): list those in use.
	listFree := h.Kind != layout.KindMPMC
	inUse := 0
	for _, e := range entries {
		if e.State != layout.EntryFree {
			inUse++
		}
	}
	if listFree {
		row("registry", "%d entries", len(entries))
	} else {
		row("registry", "%d entries, %d in use (free ones not listed)", len(entries), inUse)
	}
	for _, e := range entries {
		if e.State == layout.EntryFree {
			if listFree {
				fmt.Fprintf(&b, "    [%d] free\n", e.Index)
			}
			continue
		}
		fmt.Fprintf(&b, "    [%d] role=%s pid=%d state=%s %s gen=%d attached=%s messages=%d bytes=%d stalls=%d waits=%d wakes=%d\n",
			e.Index, roleName(e.Role), e.PID, stateName(e.State), liveness(e), e.Gen,
			e.AttachedAt.Format(time.RFC3339), e.Messages, e.Bytes, e.Stalls, e.Waits, e.Wakes)
	}
	fmt.Print(b.String())
	return nil
}

// inspectMPMC prints the rows of an MPMC queue: its mode, slots, cursors
// and depth, then what differs between the modes: in lock-free mode the
// states of the slots (from their sequence words) and the parked waiters,
// in locked mode the semaphores and mutexes. Every word is read through
// the segment's bounds checks, and values no correct peer writes are
// reported, not trusted.
func inspectMPMC(seg *ring.Segment, head, tail uint64, entries []ring.EntryInfo, row func(label, format string, args ...any)) error {
	h := seg.Header()
	locked := h.Flags&layout.FlagLocked != 0
	if locked {
		row("mode", "locked (semaphores and robust mutexes guard the slots)")
	} else {
		row("mode", "lock-free (per-slot sequence words)")
	}
	row("slots", "%d of %d bytes (%d-byte slot header)", h.Capacity, h.SlotSize, layout.SlotHeaderSize)
	row("max message", "%d bytes", h.MaxMessage)
	mask := h.Capacity - 1
	row("head", "%d (dequeue cursor, slot %d)", head, head&mask)
	row("tail", "%d (enqueue cursor, slot %d)", tail, tail&mask)
	switch depth := tail - head; {
	case int64(depth) < 0:
		row("depth", "tail is %d behind head: the cursors are corrupt", -int64(depth))
	case depth > h.Capacity:
		row("depth", "%d slots: more than the slot count, the cursors are corrupt", depth)
	default:
		row("depth", "%d messages (tail-head, %.1f%% of slots, claimed slots included)",
			depth, 100*float64(depth)/float64(h.Capacity))
	}
	word := func(line, off uint64) (uint32, error) {
		w, err := seg.Uint32(line + off)
		if err != nil {
			return 0, err
		}
		return w.Load(), nil
	}
	if locked {
		for _, s := range []struct {
			label, what string
			line        uint64
		}{
			{"free", "slots free, producers take", h.ProducerWake},
			{"filled", "messages, consumers take", h.ConsumerWake},
		} {
			count, err := word(s.line, layout.WakeSemCount)
			if err != nil {
				return err
			}
			waiters, err := word(s.line, layout.WakeSemWaiters)
			if err != nil {
				return err
			}
			note := ""
			if uint64(count) > h.Capacity {
				note = ": more than the slot count, corrupt"
			}
			row(s.label, "semaphore %d (%s), %d waiting%s", count, s.what, waiters, note)
		}
		for _, m := range []struct {
			label, what string
			line        uint64
		}{
			{"mutex P", "producers', guards tail", h.ProducerWake},
			{"mutex C", "consumers', guards head", h.ConsumerWake},
		} {
			state, err := word(m.line, layout.WakeMutexState)
			if err != nil {
				return err
			}
			owner, err := word(m.line, layout.WakeMutexOwner)
			if err != nil {
				return err
			}
			waiters, err := word(m.line, layout.WakeMutexWaiters)
			if err != nil {
				return err
			}
			units, err := word(m.line, layout.WakeMutexUnits)
			if err != nil {
				return err
			}
			if state == 0 {
				row(m.label, "unlocked (%s), %d waiting", m.what, waiters)
			} else {
				row(m.label, "locked by pid %d%s (%s), holding %d semaphore units, %d waiting",
					owner, pidNote(owner), m.what, units, waiters)
			}
		}
		return nil
	}
	// Lock-free: the state of every slot, from its sequence word.
	if h.Capacity*uint64(h.SlotSize) > h.DataSize {
		row("slot states", "unknown: %d slots of %d bytes do not fit the data region, corrupt", h.Capacity, h.SlotSize)
		return nil
	}
	var counts [4]uint64
	var held []string
	for i := uint64(0); i < h.Capacity; i++ {
		w, err := seg.Uint64(h.Data + i*uint64(h.SlotSize) + layout.SlotSeq)
		if err != nil {
			return err
		}
		v := w.Load()
		st := layout.SeqState(v) & 3
		counts[st]++
		if (st == layout.SlotWriting || st == layout.SlotReading) && len(held) < 8 {
			owner := layout.SeqOwner(v)
			who := fmt.Sprintf("entry %d", owner)
			switch {
			case owner == layout.SeqOwnerOrphan:
				who = "no entry (orphaned, being requeued)"
			case int(owner) < len(entries):
				who += fmt.Sprintf(" (pid %d, %s)", entries[owner].PID, liveness(entries[owner]))
			}
			verb := "written by"
			if st == layout.SlotReading {
				verb = "read by"
			}
			held = append(held, fmt.Sprintf("%d %s %s", i, verb, who))
		}
	}
	row("slot states", "empty=%d writing=%d full=%d reading=%d (from the sequence words)",
		counts[layout.SlotEmpty], counts[layout.SlotWriting], counts[layout.SlotFull], counts[layout.SlotReading])
	if len(held) > 0 {
		row("held slots", "%s", strings.Join(held, "; "))
	}
	pw, err := word(h.ProducerWake, layout.WakeWaiters)
	if err != nil {
		return err
	}
	cw, err := word(h.ConsumerWake, layout.WakeWaiters)
	if err != nil {
		return err
	}
	row("parked", "%d producer(s) waiting for space, %d consumer(s) waiting for messages", pw, cw)
	return nil
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

func runRemove(args []string) error {
	name, err := nameArg("rm", args)
	if err != nil {
		return err
	}
	loc := ring.Shm(name)
	// Refuse to remove a file that is not a shmq segment; a segment that is
	// corrupt, abandoned or of an unknown kind may go.
	if seg, err := openAnyKind(loc); err == nil {
		seg.Close()
	} else if errors.Is(err, layout.ErrNotSegment) {
		return err
	}
	if err := ring.Unlink(loc); err != nil {
		return err
	}
	fmt.Printf("removed %v\n", loc)
	return nil
}

// runList prints one line for each shmq segment in /dev/shm: its kind,
// state (ready, initializing or abandoned) and attached processes.
func runList(args []string) error {
	fs := newFlags("list")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("list takes no arguments")
	}
	dir, err := os.ReadDir("/dev/shm")
	if err != nil {
		return err
	}
	fmt.Printf("%-30s %-5s %-13s %12s %s\n", "NAME", "KIND", "STATE", "SIZE", "PROCESSES")
	for _, d := range dir {
		if !d.Type().IsRegular() {
			continue
		}
		loc := ring.Shm(d.Name())
		seg, err := ring.Open(context.Background(), loc, 0, &ring.Options{ReadyTimeout: 100 * time.Millisecond})
		switch {
		case errors.Is(err, layout.ErrNotSegment), errors.Is(err, ring.ErrBadName), errors.Is(err, ring.ErrNotFound):
			continue // not ours, or gone meanwhile
		case errors.Is(err, ring.ErrAbandoned):
			fmt.Printf("%-30s %-5s %-13s %12s %s\n", d.Name(), "-", "abandoned", "-", "creator died during initialization; shmq-demo rm removes it")
			continue
		case errors.Is(err, layout.ErrNotReady):
			fmt.Printf("%-30s %-5s %-13s %12s %s\n", d.Name(), "-", "initializing", "-", "-")
			continue
		case err != nil:
			fmt.Printf("%-30s %-5s %-13s %12s %v\n", d.Name(), "-", "unreadable", "-", err)
			continue
		}
		h := seg.Header()
		entries, err := seg.Entries()
		seg.Close()
		if err != nil {
			return err
		}
		var procs []string
		for _, e := range entries {
			if e.State != layout.EntryAttached {
				continue
			}
			status := "alive"
			if !e.Alive {
				status = "dead"
			}
			procs = append(procs, fmt.Sprintf("%s:%d(%s)", roleName(e.Role), e.PID, status))
		}
		if len(procs) == 0 {
			procs = []string{"-"}
		}
		fmt.Printf("%-30s %-5s %-13s %12d %s\n", d.Name(), h.Kind, "ready", h.TotalSize, strings.Join(procs, " "))
	}
	return nil
}

// runReap frees the registry entries of processes that died attached to
// queue NAME, and prints them.
func runReap(args []string) error {
	name, err := nameArg("reap", args)
	if err != nil {
		return err
	}
	seg, err := openAnyKind(ring.Shm(name))
	if err != nil {
		return err
	}
	defer seg.Close()
	reaped, err := seg.ReapDead()
	for _, e := range reaped {
		fmt.Printf("reaped entry %d: %s pid %d (dead), %d messages, %d bytes\n", e.Index, roleName(e.Role), e.PID, e.Messages, e.Bytes)
	}
	if err == nil && len(reaped) == 0 {
		fmt.Println("no dead processes")
	}
	return err
}
