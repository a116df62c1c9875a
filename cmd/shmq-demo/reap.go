package main

import (
	"fmt"

	"github.com/shmq/shmq/ring"
)

// shmq-demo reap NAME: free the registry entries of processes that died
// attached to a queue, and print them.

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
