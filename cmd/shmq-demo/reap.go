package main

import (
	"context"
	"fmt"
	"time"

	"github.com/shmq/shmq/ring"
)

// shmq-demo reap QUEUE: free the registry entries of processes that died
// attached to a queue, and print them.

func runReap(args []string) error {
	loc, err := locationArg("reap", args)
	if err != nil {
		return err
	}
	reaped, err := ring.Reap(context.Background(), loc, &ring.Options{ReadyTimeout: time.Second})
	for _, e := range reaped {
		fmt.Printf("reaped entry %d: %s pid %d (dead), %d messages, %d bytes\n", e.Index, roleName(e.Role), e.PID, e.Messages, e.Bytes)
	}
	if err == nil && len(reaped) == 0 {
		fmt.Println("no dead processes")
	}
	return err
}
