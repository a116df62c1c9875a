package notify

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmq/shmq/internal/futex"
	"github.com/shmq/shmq/internal/shmtest"
)

// The raw futex ping-pong: the floor under any blocking round trip between
// two processes. The parent bumps the ping word and wakes it; the child,
// parked on ping, bumps pong and wakes it; the parent, parked on pong,
// starts the next round. Compare spsc's BenchmarkPingPongBlocking with it.

const (
	wPing   = 8
	wPong   = 9
	wRounds = 10
)

func init() { helpers["futex-pong"] = helperFutexPong }

func helperFutexPong(_ string, mem []byte) int {
	ping, pong := shmtest.Word(mem, wPing), shmtest.Word(mem, wPong)
	rounds := int(shmtest.Word(mem, wRounds).Load())
	seen := uint32(0)
	for i := 0; i < rounds; i++ {
		for ping.Load() == seen {
			futex.Wait(ping, seen, time.Second)
		}
		seen = ping.Load()
		pong.Add(1)
		futex.Wake(pong, 1)
	}
	return 0
}

func BenchmarkFutexPingPongProcesses(b *testing.B) {
	path := shmtest.NewFile(b)
	mem, err := shmtest.Map(path)
	if err != nil {
		b.Fatal(err)
	}
	ping, pong := shmtest.Word(mem, wPing), shmtest.Word(mem, wPong)
	shmtest.Word(mem, wRounds).Store(uint32(b.N))
	cmd := helperEnv.Start(b, "futex-pong", path)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		want := pong.Load() + 1
		ping.Add(1)
		futex.Wake(ping, 1)
		for {
			v := pong.Load()
			if v == want {
				break
			}
			futex.Wait(pong, v, time.Second)
		}
	}
	b.StopTimer()
	if err := cmd.Wait(); err != nil {
		b.Fatal(err)
	}
}

// TestWaitAtMost: the bound ends a wait that no one wakes, without an
// error, and a cancelled context still ends it early with one.
//
// A futex wait with a timeout returns EINTR whenever a signal handler runs
// on its thread (the kernel does not restart it, SA_RESTART or not), and
// the Go runtime's preemption signal lands there now and then (about one
// 20 ms wait in a hundred here): a spurious return, which Wait allows. So
// each measurement gets a few tries; a wrong bound or a lost cancellation
// fails them all.
func TestWaitAtMost(t *testing.T) {
	f := NewFutex()
	shmtest.Retry(t, func() string {
		var w atomic.Uint32
		start := time.Now()
		if err := f.WaitAtMost(context.Background(), &w, 0, 20*time.Millisecond); err != nil {
			t.Fatalf("bounded wait: %v", err)
		}
		if d := time.Since(start); d < 15*time.Millisecond || d > time.Second {
			return fmt.Sprintf("a 20ms bound ended the wait after %v", d)
		}
		return ""
	})
	shmtest.Retry(t, func() string {
		var w atomic.Uint32
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		time.AfterFunc(10*time.Millisecond, cancel)
		start := time.Now()
		err := f.WaitAtMost(ctx, &w, 0, time.Minute)
		d := time.Since(start)
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled bounded wait: %v", err)
		}
		if err == nil || d > 500*time.Millisecond {
			return fmt.Sprintf("cancelled bounded wait: %v after %v", err, d)
		}
		return ""
	})
}
