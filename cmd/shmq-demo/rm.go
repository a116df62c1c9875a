package main

import (
	"errors"
	"fmt"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
)

// shmq-demo rm NAME: remove a queue's name from /dev/shm.

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
