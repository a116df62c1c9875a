//go:build linux

package notify_test

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/shmq/shmq/notify"
)

// The futex protocol: a waiter passes the value it saw; a waker changes the
// word first, then wakes. In shmq the word lives in shared memory and the
// two sides are different processes.
func ExampleFutex() {
	var word atomic.Uint32
	f := notify.NewFutex()
	done := make(chan struct{})
	go func() {
		for word.Load() == 0 { // re-check after every (possibly spurious) return
			f.Wait(context.Background(), &word, 0)
		}
		close(done)
	}()
	word.Store(1)
	f.Wake(&word, 1)
	<-done
	fmt.Println("woken")
	// Output: woken
}
