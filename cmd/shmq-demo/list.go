package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
)

// shmq-demo list: one line for each shmq segment in /dev/shm, with its
// kind, state (ready, initializing or abandoned) and attached processes.

const listFormat = "%-30s %-5s %-13s %12s %s\n"

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
	fmt.Printf(listFormat, "NAME", "KIND", "STATE", "SIZE", "PROCESSES")
	for _, d := range dir {
		if !d.Type().IsRegular() {
			continue
		}
		if err := listOne(d.Name()); err != nil {
			return err
		}
	}
	return nil
}

// listOne prints the line of the file name in /dev/shm, or nothing if it
// is not a shmq segment.
func listOne(name string) error {
	seg, err := ring.Open(context.Background(), ring.Shm(name), 0, &ring.Options{ReadyTimeout: 100 * time.Millisecond})
	switch {
	case errors.Is(err, layout.ErrNotSegment), errors.Is(err, ring.ErrBadName), errors.Is(err, ring.ErrNotFound):
		return nil // not ours, or gone meanwhile
	case errors.Is(err, ring.ErrAbandoned):
		fmt.Printf(listFormat, name, "-", "abandoned", "-", "creator died during initialization; shmq-demo rm removes it")
		return nil
	case errors.Is(err, layout.ErrNotReady):
		fmt.Printf(listFormat, name, "-", "initializing", "-", "-")
		return nil
	case err != nil:
		fmt.Printf(listFormat, name, "-", "unreadable", "-", err)
		return nil
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
	fmt.Printf("%-30s %-5s %-13s %12d %s\n", name, h.Kind, "ready", h.TotalSize, strings.Join(procs, " "))
	return nil
}
