package ring_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
)

// Package ring is the layer under the queues: it creates, opens and
// validates segments and keeps the registry of attached processes. Most
// programs use it only to name where a queue lives.
func Example() {
	for _, loc := range []ring.Location{
		ring.Shm("jobs"),            // /dev/shm/jobs
		ring.File("/var/lib/app/q"), // a file that survives a reboot
		ring.Memfd("private"),       // anonymous: pass its descriptor on
		ring.FD(3),                  // an inherited descriptor
	} {
		fmt.Println(loc)
	}
	// Output:
	// shm:jobs
	// file:/var/lib/app/q
	// memfd:private
	// fd:3
}

// Whatever is at a queue's name that shmq did not create is refused, and
// never deleted.
func ExampleOpen_notASegment() {
	path := filepath.Join(os.TempDir(), fmt.Sprintf("not-a-queue-%d", os.Getpid()))
	os.WriteFile(path, []byte("hello"), 0o600)
	defer os.Remove(path)
	_, err := ring.Open(context.Background(), ring.File(path), layout.KindSPSC, nil)
	fmt.Println(errors.Is(err, layout.ErrNotSegment))
	// Output: true
}

// Guard turns a fault caused by another process truncating a segment's
// file into an error, instead of a SIGBUS that kills the process.
func ExampleSegment_Guard() {
	h, _ := layout.PlanSPSC(4096, 0)
	path := filepath.Join(os.TempDir(), fmt.Sprintf("guard-example-%d", os.Getpid()))
	defer os.Remove(path)
	seg, err := ring.Create(ring.File(path), h, nil, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer seg.Close()
	data := seg.Data()
	os.Truncate(path, 0) // another process does this
	var b [8]byte
	err = seg.Guard(func() error {
		copy(b[:], data) // faults: the page is gone
		return nil
	})
	fmt.Println(errors.Is(err, ring.ErrTruncated))
	// Output: true
}
