package sem

import (
	"context"
	"errors"
	"github.com/shmq/shmq/internal/shmtest"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shmq/shmq/notify"
)

func init() {
	helpers["pingpong"] = helperPingPong
	helpers["mutex-hold"] = helperMutexHold
}

// Shared segment layout.
const (
	wPing, wPingWaiters = 0, 1
	wPong, wPongWaiters = 2, 3
	wRounds             = 4 // rounds the helper completed
	wState, wOwner      = 8, 9
	wMutexWaiters       = 10
	wReady              = 11
	lockByte            = 1 << 20 // OFD byte naming the mutex (beyond EOF is fine)
)

func pingPongRounds() int {
	if testing.Short() {
		return 500
	}
	return 3000
}

func semsOver(mem []byte) (ping, pong *Semaphore, err error) {
	if ping, err = New(shmtest.Word(mem, wPing), waiterSet(mem, wPingWaiters), 1, notify.Default()); err != nil {
		return nil, nil, err
	}
	pong, err = New(shmtest.Word(mem, wPong), waiterSet(mem, wPongWaiters), 1, notify.Default())
	return ping, pong, err
}

func helperPingPong(_ string, mem []byte) int {
	ping, pong, err := semsOver(mem)
	if err != nil {
		return 3
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n := int(shmtest.Word(mem, wRounds).Load()) // parent passes the round count here
	shmtest.Word(mem, wRounds).Store(0)
	shmtest.Word(mem, wReady).Store(1)
	for range n {
		if ping.Acquire(ctx, 1) != nil {
			return 4
		}
		shmtest.Word(mem, wRounds).Add(1)
		if pong.Release(1) != nil {
			return 5
		}
	}
	return 0
}

// TestSemaphorePingPongAcrossProcesses bounces a unit between this process
// and a helper through two semaphores in a shared mapping; a lost wake-up
// stalls a side until its timeout.
func TestSemaphorePingPongAcrossProcesses(t *testing.T) {
	path, mem := shmtest.MapNew(t)
	n := pingPongRounds()
	shmtest.Word(mem, wRounds).Store(uint32(n))
	cmd := helperEnv.Start(t, "pingpong", path)
	ping, pong, err := semsOver(mem)
	if err != nil {
		t.Fatal(err)
	}
	for shmtest.Word(mem, wReady).Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range n {
		if err := ping.Release(1); err != nil {
			t.Fatal(err)
		}
		if err := pong.Acquire(ctx, 0); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if got := shmtest.Word(mem, wRounds).Load(); got != uint32(i+1) {
			t.Fatalf("round %d: helper at %d", i, got)
		}
	}
	shmtest.WaitExit(t, cmd, 5*time.Second)
}

func mutexOver(t testing.TB, path string, mem []byte) (*Mutex, *os.File) {
	f, err := os.OpenFile(path, os.O_RDWR, 0) // own open file description
	if err != nil {
		if t != nil {
			t.Fatal(err)
		}
		return nil, nil
	}
	m, err := NewMutex(MutexWords{State: shmtest.Word(mem, wState), Owner: shmtest.Word(mem, wOwner), Waiters: waiterSet(mem, wMutexWaiters)},
		MutexConfig{Lock: fileLock{f, lockByte}, Backend: notify.Default()})
	if err != nil {
		if t != nil {
			t.Fatal(err)
		}
		return nil, nil
	}
	return m, f
}

// helperMutexHold locks the mutex, says so, and holds it until killed.
func helperMutexHold(path string, mem []byte) int {
	m, _ := mutexOver(nil, path, mem)
	if m == nil {
		return 3
	}
	if err := m.Lock(context.Background(), 1); err != nil {
		return 4
	}
	shmtest.Word(mem, wReady).Store(1)
	time.Sleep(time.Minute)
	return 0
}

// TestMutexOwnerKilled: the helper dies (SIGKILL) holding the mutex while
// this process is parked in Lock; Lock must return ErrOwnerDead, holding the
// lock, within a bounded time although nobody wakes it.
func TestMutexOwnerKilled(t *testing.T) {
	path, mem := shmtest.MapNew(t)
	cmd := helperEnv.Start(t, "mutex-hold", path)
	m, f := mutexOver(t, path, mem)
	defer f.Close()
	deadline := time.Now().Add(5 * time.Second)
	for shmtest.Word(mem, wReady).Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("helper never locked")
		}
		time.Sleep(time.Millisecond)
	}
	if got := m.Owner(); got != uint32(cmd.Process.Pid) {
		t.Fatalf("Owner() = %d, want helper pid %d", got, cmd.Process.Pid)
	}
	if ok, err := m.TryLock(); ok || err != nil {
		t.Fatalf("TryLock while helper holds it = %v, %v", ok, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.Lock(ctx, 0) }()
	time.Sleep(50 * time.Millisecond) // let Lock park
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	select {
	case err := <-done:
		if !errors.Is(err, ErrOwnerDead) {
			t.Fatalf("Lock = %v, want ErrOwnerDead", err)
		}
		if d := time.Since(killed); d > time.Second {
			t.Fatalf("takeover took %v", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Lock did not notice the dead owner")
	}
	if got := m.Owner(); got != uint32(os.Getpid()) {
		t.Fatalf("Owner() = %d after takeover", got)
	}
	if err := m.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := m.Lock(ctx, 0); err != nil {
		t.Fatalf("clean Lock after recovery: %v", err)
	}
	if err := m.Unlock(); err != nil {
		t.Fatal(err)
	}
}

// waiterSet is a one-word waiter set at the 64-bit word after 32-bit word i.
func waiterSet(mem []byte, i int) notify.WaiterSet {
	return notify.NewWaiterSet([]*atomic.Uint64{shmtest.Word64(mem, 16+i)})
}
