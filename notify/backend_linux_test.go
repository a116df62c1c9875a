package notify

import (
	"context"
	"github.com/shmq/shmq/internal/shmtest"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func osBackends() []namedBackend {
	return []namedBackend{
		{"futex", true, func(t *testing.T) Backend { return NewFutex() }},
		{"eventfd", true, func(t *testing.T) Backend {
			e, err := NewEventfd()
			if err != nil {
				t.Fatal(err)
			}
			return e
		}},
	}
}

func init() {
	helpers["futex-wait"] = helperFutexWait
	helpers["futex-wake"] = helperFutexWake
}

// Shared segment layout for the futex helpers.
const (
	wFutex = 0 // the futex word
	wReady = 1 // set by the side that parks, just before parking
)

// helperFutexWait parks on the shared word until it becomes 1.
func helperFutexWait(_ string, mem []byte) int {
	w, ready := shmtest.Word(mem, wFutex), shmtest.Word(mem, wReady)
	f := NewFutex()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ready.Store(1)
	for w.Load() == 0 {
		if err := f.Wait(ctx, w, 0); err != nil {
			return 3
		}
	}
	return 0
}

// helperFutexWake waits for the parent to be about to park, gives it time to
// park, then changes the word and wakes it.
func helperFutexWake(_ string, mem []byte) int {
	w, ready := shmtest.Word(mem, wFutex), shmtest.Word(mem, wReady)
	for ready.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	w.Store(1)
	if err := NewFutex().Wake(w, 1); err != nil {
		return 3
	}
	// Stay alive until the parent has seen the wake: exiting would send it
	// SIGCHLD, whose EINTR could end its wait without the futex wake.
	for deadline := time.Now().Add(5 * time.Second); ready.Load() != 2 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	return 0
}

// TestFutexCrossProcessParentWakesChild fails if the futex were private: the
// child would sleep until its 5 s timeout and exit 3.
func TestFutexCrossProcessParentWakesChild(t *testing.T) {
	path, mem := shmtest.MapNew(t)
	cmd := helperEnv.Start(t, "futex-wait", path)
	for shmtest.Word(mem, wReady).Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let it park
	f := NewFutex()
	shmtest.Word(mem, wFutex).Store(1)
	if err := f.Wake(shmtest.Word(mem, wFutex), 1); err != nil {
		t.Fatal(err)
	}
	shmtest.WaitExit(t, cmd, 3*time.Second)
}

// TestFutexCrossProcessChildWakesParent: a helper process wakes the parent,
// parked on a shared futex word.
//
// The helper gives the parent 50 ms to park after it says it is about to;
// a parent that a loaded machine stalls longer than that finds the word
// changed and never parks, which tests nothing, so that try is made again.
func TestFutexCrossProcessChildWakesParent(t *testing.T) {
	for try := 0; !childWakesParent(t); try++ {
		if try == 2 {
			t.Fatal("parent never parked")
		}
		t.Log("the helper changed the word before the parent parked; trying again")
	}
}

// childWakesParent parks on a shared word that a helper process changes and
// wakes, failing t if the wake does not arrive, and reports whether the
// parent parked at all.
func childWakesParent(t *testing.T) bool {
	t.Helper()
	path, mem := shmtest.MapNew(t)
	cmd := helperEnv.Start(t, "futex-wake", path)
	w := shmtest.Word(mem, wFutex)
	f := NewFutex()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	shmtest.Word(mem, wReady).Store(1)
	for w.Load() == 0 {
		if err := f.Wait(ctx, w, 0); err != nil {
			t.Fatalf("after %v: %v", time.Since(start), err)
		}
	}
	shmtest.Word(mem, wReady).Store(2)
	shmtest.WaitExit(t, cmd, 3*time.Second)
	return f.Stats().Waits != 0
}

// TestFutexWakeWithoutWaiterIsOneSyscall checks the counter the queues use to
// show that streaming makes no wake syscalls: only Wake calls count.
func TestFutexWakeCounter(t *testing.T) {
	f := NewFutex()
	var w atomic.Uint32
	for range 3 {
		w.Add(1)
		if err := f.Wake(&w, 1); err != nil {
			t.Fatal(err)
		}
	}
	_ = f.Wake(&w, 0)
	if s := f.Stats(); s.WakeSyscalls != 3 || s.Wakes != 3 {
		t.Fatalf("stats = %+v, want 3 wakes and 3 syscalls", s)
	}
}

// TestEventfdPassedOverSocket sends the eventfd with SCM_RIGHTS and checks a
// wake through the received descriptor reaches a waiter on the original.
func TestEventfdPassedOverSocket(t *testing.T) {
	e, err := NewEventfd()
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := unixConn(t, fds[0]), unixConn(t, fds[1])
	if err := e.SendTo(a); err != nil {
		t.Fatal(err)
	}
	fd, err := RecvFD(b)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := EventfdFromFD(fd)
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()

	var w atomic.Uint32
	done := make(chan error, 1)
	go func() { done <- e.Wait(context.Background(), &w, 0) }()
	time.Sleep(parkDelay)
	if err := e2.Wake(&w, 1); err != nil { // word unchanged: only the wake can end the Wait
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("wake through passed descriptor lost")
	}
}

func unixConn(t *testing.T, fd int) *net.UnixConn {
	t.Helper()
	f := os.NewFile(uintptr(fd), "sock")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.UnixConn)
}
