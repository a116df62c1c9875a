package sem

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/shmq/shmq/notify"
)

// MutexWords are the shared words of a Mutex. The creator of the shared
// memory zeroes them.
type MutexWords struct {
	State   *atomic.Uint32   // 0 unlocked, anything else locked; written only by the holder of the lock
	Owner   *atomic.Uint32   // pid of the owner, for display only
	Waiters notify.WaiterSet // the registered waiters
}

// A Locker is an exclusive lock that the kernel drops when its holder dies,
// such as an OFD lock on a byte of a file (ring.ByteLock), taken through a
// description that this Mutex's process alone references: on Linux OFD
// locks conflict between open file descriptions, not between goroutines
// sharing one, and a description shared with another process would share
// the lock with it. Elsewhere record locks are per process, so use one
// Mutex handle per process per lock.
type Locker interface {
	// TryLock takes the lock if it is free and reports whether it did.
	TryLock() (bool, error)
	// Unlock releases it.
	Unlock() error
}

// MutexConfig configures a Mutex.
type MutexConfig struct {
	// Lock marks the owner as alive.
	Lock Locker
	// Backend parks waiters on State; it may serve other words too (see
	// New).
	Backend notify.Backend
	// Liveness is how often a parked waiter re-checks whether the owner
	// died (a dead owner wakes nobody). Default 20ms.
	Liveness time.Duration
}

// Mutex is a mutual-exclusion lock shared between processes that survives
// the death of its owner, like a robust pthread mutex.
//
// Ownership is an exclusive lock that the kernel releases when the owner
// dies (a Locker, typically an OFD lock on one byte of the segment file). The State
// word only records that the lock is taken: because it is written by the
// OFD holder alone, after taking the byte and before releasing it, finding
// the byte free while State says locked can only mean the owner died
// inside its critical section. The next locker then takes over and is told
// so with ErrOwnerDead. A locker that dies between taking the byte and
// writing State never entered its critical section, and is not reported.
//
// Each Lock and Unlock makes one fcntl system call (the OFD lock) even when
// uncontended; Unlock makes a wake call only when a waiter is registered.
//
// An Unlock is synchronized before the Lock that next acquires the mutex.
// A Mutex value may be used by multiple goroutines of one process: they
// exclude each other on a local lock before contending across processes.
type Mutex struct {
	w        MutexWords
	lk       Locker
	be       notify.Backend
	liveness time.Duration
	pid      uint32
	local    chan struct{} // one slot, full while a goroutine of this process holds or is acquiring the mutex
	held     atomic.Bool   // the holder of local owns the mutex
	// WakeErrors counts wake calls of Unlock that failed.
	WakeErrors atomic.Uint64
}

// NewMutex returns a Mutex over the shared words w.
func NewMutex(w MutexWords, cfg MutexConfig) (*Mutex, error) {
	if w.State == nil || w.Owner == nil || cfg.Backend == nil || cfg.Lock == nil {
		return nil, fmt.Errorf("%w: NewMutex", ErrInvalid)
	}
	if cfg.Liveness <= 0 {
		cfg.Liveness = 20 * time.Millisecond
	}
	return &Mutex{
		w: w, lk: cfg.Lock, be: cfg.Backend, liveness: cfg.Liveness,
		pid: uint32(os.Getpid()), local: make(chan struct{}, 1),
	}, nil
}

// Owner returns the pid recorded by the current owner, 0 if none; a
// snapshot for display.
func (m *Mutex) Owner() uint32 { return m.w.Owner.Load() }

// Held reports whether the state word says the mutex is locked, by a live
// owner or by one that died holding it; a snapshot, for deciding whether
// to look for a dead owner (TryLock tells which).
func (m *Mutex) Held() bool { return m.w.State.Load() != 0 }

// Lock acquires the mutex, blocking until it is available or ctx is done,
// registering as waiter me (a registry entry the caller holds) while it
// parks. If the previous owner died holding it, Lock returns an error
// wrapping ErrOwnerDead and the caller holds the mutex (and must Unlock it,
// after repairing whatever the dead owner left half done). Any other error
// means the mutex is not held.
func (m *Mutex) Lock(ctx context.Context, me int) error {
	select {
	case m.local <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("sem: lock: %w", ctx.Err())
	}
	err := m.lock(ctx, me)
	if err != nil && !errors.Is(err, ErrOwnerDead) {
		<-m.local
		return err
	}
	m.held.Store(true)
	return err
}

// TryLock acquires the mutex if that needs no waiting. It reports whether
// the caller now holds it; err wraps ErrOwnerDead (with ok true) as for Lock,
// or reports a failure (with ok false).
func (m *Mutex) TryLock() (ok bool, err error) {
	select {
	case m.local <- struct{}{}:
	default:
		return false, nil
	}
	ok, err = m.tryOFD()
	if !ok {
		<-m.local
		return false, err
	}
	m.held.Store(true)
	return true, err
}

// tryOFD takes the lock and, having it, marks State locked.
func (m *Mutex) tryOFD() (bool, error) {
	if ok, err := m.lk.TryLock(); !ok || err != nil {
		if err != nil {
			return false, fmt.Errorf("sem: lock: %w", err)
		}
		return false, nil
	}
	prev := m.w.State.Swap(1)
	pid := m.w.Owner.Swap(m.pid)
	if prev != 0 {
		return true, fmt.Errorf("%w (pid %d)", ErrOwnerDead, pid)
	}
	return true, nil
}

func (m *Mutex) lock(ctx context.Context, me int) error {
	registered := false
	defer func() {
		if registered {
			m.w.Waiters.Remove(me)
		}
	}()
	for {
		if ok, err := m.tryOFD(); ok || err != nil {
			return err
		}
		if !registered { // register, then re-check before parking
			m.w.Waiters.Add(me)
			registered = true
			continue
		}
		s := m.w.State.Load()
		var err error
		if s == 0 {
			// The owner is between taking the byte and writing State, or
			// between clearing State and releasing the byte: brief.
			err = sleepCtx(ctx, 100*time.Microsecond)
		} else {
			wctx, cancel := context.WithTimeout(ctx, m.liveness)
			err = m.be.Wait(wctx, m.w.State, s)
			cancel()
		}
		if ctx.Err() != nil || (err != nil && !errors.Is(err, context.DeadlineExceeded)) {
			if err == nil || ctx.Err() != nil {
				err = ctx.Err()
			}
			m.w.Waiters.Remove(me)
			registered = false
			// Pass on a wake this waiter may have taken from another.
			if m.w.State.Load() == 0 && m.w.Waiters.Any() {
				_ = m.be.Wake(m.w.State, 1)
			}
			return fmt.Errorf("sem: lock: %w", err)
		}
		// Woken, spurious, or liveness interval over: try again.
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Unlock releases the mutex, which must be held through this handle, and
// wakes one waiter if any is registered. A failed wake is not an error (the
// mutex is released; waiters re-check at their liveness period); it is
// counted in WakeErrors.
func (m *Mutex) Unlock() error {
	if !m.held.CompareAndSwap(true, false) {
		return ErrNotLocked
	}
	// Clear State before releasing the byte: a free byte with State set
	// means a dead owner.
	m.w.Owner.Store(0)
	m.w.State.Store(0)
	err := m.lk.Unlock()
	<-m.local
	if m.w.Waiters.Any() {
		if werr := m.be.Wake(m.w.State, 1); werr != nil {
			m.WakeErrors.Add(1)
		}
	}
	if err != nil {
		return fmt.Errorf("sem: unlock: %w", err)
	}
	return nil
}
