package sem

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmq/shmq/internal/ofd"
	"github.com/shmq/shmq/notify"
)

// mutexHandles returns n Mutex handles over the same in-process words, each
// with its own open file description of one lock file.
func mutexHandles(t *testing.T, n int, words MutexWords) []*Mutex {
	t.Helper()
	p := filepath.Join(t.TempDir(), "lock")
	var ms []*Mutex
	for range n {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		m, err := NewMutex(words, MutexConfig{Lock: fileLock{f, 3}, Backend: notify.Default()})
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	return ms
}

func newWords() MutexWords {
	return MutexWords{State: new(atomic.Uint32), Owner: new(atomic.Uint32),
		Waiters: notify.NewWaiterSet([]*atomic.Uint64{new(atomic.Uint64)})}
}

func TestMutexBasics(t *testing.T) {
	ms := mutexHandles(t, 2, newWords())
	a, b := ms[0], ms[1]
	ctx := context.Background()
	if err := a.Lock(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.TryLock(); ok || err != nil {
		t.Fatalf("TryLock on held mutex = %v, %v", ok, err)
	}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if err := b.Lock(tctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock on held mutex = %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Lock(ctx, 1) }()
	time.Sleep(20 * time.Millisecond)
	if err := a.Unlock(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("waiter not handed the mutex")
	}
	if err := a.Unlock(); !errors.Is(err, ErrNotLocked) {
		t.Fatalf("Unlock of unheld handle = %v", err)
	}
	if err := b.Unlock(); err != nil {
		t.Fatal(err)
	}
}

// TestMutexGarbageStateMeansDeadOwner: State says locked but no process
// holds the byte, as a crashed owner (or a hostile peer) leaves it.
func TestMutexGarbageStateMeansDeadOwner(t *testing.T) {
	w := newWords()
	w.State.Store(0xdeadbeef)
	w.Owner.Store(12345)
	m := mutexHandles(t, 1, w)[0]
	ok, err := m.TryLock()
	if !ok || !errors.Is(err, ErrOwnerDead) {
		t.Fatalf("TryLock = %v, %v; want true, ErrOwnerDead", ok, err)
	}
	if err := m.Unlock(); err != nil {
		t.Fatal(err)
	}
	if ok, err := m.TryLock(); !ok || err != nil {
		t.Fatalf("TryLock after recovery = %v, %v", ok, err)
	}
}

// TestMutexHammer: goroutines on several handles (separate open file
// descriptions, as separate processes would have) increment a plain counter
// under the mutex; -race and the final count check mutual exclusion.
func TestMutexHammer(t *testing.T) {
	iters := 300
	if testing.Short() {
		iters = 100
	}
	ms := mutexHandles(t, 3, newWords())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var counter int
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i, m := range ms {
		for range 2 {
			wg.Go(func() {
				for range iters {
					if err := m.Lock(ctx, i); err != nil {
						errs <- err
						return
					}
					counter++
					if err := m.Unlock(); err != nil {
						errs <- err
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if want := len(ms) * 2 * iters; counter != want {
		t.Fatalf("counter = %d, want %d", counter, want)
	}
}

// fileLock is a Locker over byte b of f's own open file description.
type fileLock struct {
	f *os.File
	b int64
}

func (l fileLock) TryLock() (bool, error) {
	err := ofd.TryLock(int(l.f.Fd()), l.b)
	if errors.Is(err, ofd.ErrLocked) {
		return false, nil
	}
	return err == nil, err
}

func (l fileLock) Unlock() error { return ofd.Unlock(int(l.f.Fd()), l.b) }
