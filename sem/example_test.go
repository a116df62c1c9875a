package sem_test

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/shmq/shmq/notify"
	"github.com/shmq/shmq/sem"
)

// A counting semaphore over two shared words (here in process memory; in
// shmq, in a segment that several processes map). Waiters register with
// their registry entry index, so a waiter that dies can be told apart.
func ExampleSemaphore() {
	var count atomic.Uint32
	waiters := notify.NewWaiterSet([]*atomic.Uint64{new(atomic.Uint64)})
	s, _ := sem.New(&count, waiters, 2, notify.Default())
	s.Release(2)
	s.Acquire(context.Background(), 0)
	fmt.Println(s.Value(), s.TryAcquire(), s.TryAcquire())
	// Output: 1 true false
}
