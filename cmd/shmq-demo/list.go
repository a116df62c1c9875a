package main

import (
	"fmt"
	"strings"

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
	infos, err := ring.List("")
	if err != nil {
		return err
	}
	fmt.Printf(listFormat, "NAME", "KIND", "STATE", "SIZE", "PROCESSES")
	for _, info := range infos {
		listOne(&info)
	}
	return nil
}

// listOne prints the line of one file of /dev/shm, or nothing if it is
// not a shmq segment.
func listOne(info *ring.SegmentInfo) {
	name := info.Name
	if info.Location != ring.Shm(name) {
		// Not a valid shm name (a creator's temporary file): the path,
		// which inspect and rm accept.
		name = info.Location.String()
	}
	switch info.State {
	case ring.StateNotSegment:
		return // not ours
	case ring.StateAbandoned:
		fmt.Printf(listFormat, name, "-", "abandoned", "-", "creator died during initialization; shmq-demo rm removes it")
		return
	case ring.StateInitializing:
		fmt.Printf(listFormat, name, "-", "initializing", "-", "-")
		return
	case ring.StateUnreadable:
		fmt.Printf(listFormat, name, "-", "unreadable", "-", info.Err)
		return
	}
	var procs []string
	for _, e := range info.Entries {
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
	fmt.Printf("%-30s %-5s %-13s %12d %s\n", name, info.Header.Kind, "ready", info.Header.TotalSize, strings.Join(procs, " "))
}
