package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
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

func runInspect(args []string) error {
	name, err := nameArg("inspect", args)
	if err != nil {
		return err
	}
	seg, err := openAnyKind(ring.Shm(name))
	if err != nil {
		return err
	}
	defer seg.Close()
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
	default:
		row("capacity", "%d slots of %d bytes", h.Capacity, h.SlotSize)
		row("max message", "%d bytes", h.MaxMessage)
		row("head", "%d", head)
		row("tail", "%d", tail)
		row("depth", "%d slots, %d bytes (tail-head)", depth, depth*uint64(h.SlotSize))
	}
	row("creator", "pid %d at %s", h.CreatorPID, time.Unix(0, h.CreatedNano).Format(time.RFC3339Nano))
	row("registry", "%d entries", len(entries))
	for _, e := range entries {
		if e.State == layout.EntryFree {
			fmt.Fprintf(&b, "    [%d] free\n", e.Index)
			continue
		}
		fmt.Fprintf(&b, "    [%d] role=%s pid=%d state=%s %s gen=%d attached=%s messages=%d bytes=%d stalls=%d waits=%d wakes=%d\n",
			e.Index, roleName(e.Role), e.PID, stateName(e.State), liveness(e), e.Gen,
			e.AttachedAt.Format(time.RFC3339), e.Messages, e.Bytes, e.Stalls, e.Waits, e.Wakes)
	}
	fmt.Print(b.String())
	return nil
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
