package main

import (
	"fmt"

	"github.com/shmq/shmq/ring"
)

// shmq-demo rm QUEUE: remove a queue's name from /dev/shm (or its file).
// ring.Remove refuses a file that is not a shmq segment; a segment that is
// corrupt, abandoned or of an unknown kind may go.

func runRemove(args []string) error {
	loc, err := locationArg("rm", args)
	if err != nil {
		return err
	}
	if err := ring.Remove(loc); err != nil {
		return err
	}
	fmt.Printf("removed %v\n", loc)
	return nil
}
