package ring

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/shmq/shmq/internal/ofd"
	"github.com/shmq/shmq/layout"
)

// ErrRegistryFull: every registry entry is held by a live process.
var ErrRegistryFull = errors.New("shmq: registry is full")

// An Entry is this process's hold on one registry entry: the OFD lock on the
// entry's lock byte, which the kernel drops if the process dies, and the
// entry's line, which only the holder writes. The counters are plain
// single-writer values: the holder updates them with atomic stores (cheaper
// than read-modify-write on a line no one else writes) and any process may
// load them.
type Entry struct {
	seg   *Segment
	index int

	Messages *atomic.Uint64
	Bytes    *atomic.Uint64
	Stalls   *atomic.Uint64
	Waits    *atomic.Uint64
	Wakes    *atomic.Uint64

	state *atomic.Uint32
}

// Index returns the entry's position in the registry.
func (e *Entry) Index() int { return e.index }

// Attach takes registry entry i for role, failing with ErrRoleTaken if a
// live holder (in this or another process) has it. A dead holder's entry is
// taken over; its counters start again at zero, like a new entry's.
func (s *Segment) Attach(i int, role uint32) (*Entry, error) {
	return s.attach(i, role, true)
}

// attach is Attach; patient retries, for a while, a lock that the entry's
// recorded holder does not seem to hold (see lockEntry).
func (s *Segment) attach(i int, role uint32, patient bool) (*Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if i < 0 || i >= int(s.hdr.RegistryCount) {
		return nil, fmt.Errorf("%w: registry entry %d of %d", layout.ErrInvalidConfig, i, s.hdr.RegistryCount)
	}
	if s.held[i] {
		return nil, fmt.Errorf("%w: entry %d is already held through this handle", ErrRoleTaken, i)
	}
	base := s.hdr.Entry(i)
	if err := s.lockEntry(i, patient); err != nil {
		if errors.Is(err, ofd.ErrLocked) {
			pid := s.mustUint32(base + layout.EntryPID).Load()
			return nil, fmt.Errorf("%w: entry %d held by pid %d", ErrRoleTaken, i, pid)
		}
		return nil, err
	}
	// Registrations a dead predecessor left in the waiter sets are ours to
	// clear now: only the holder of an entry's lock writes its bits.
	s.clearWaiters(i)
	e := &Entry{
		seg:      s,
		index:    i,
		Messages: s.mustUint64(base + layout.EntryMessages),
		Bytes:    s.mustUint64(base + layout.EntryBytes),
		Stalls:   s.mustUint64(base + layout.EntryStalls),
		Waits:    s.mustUint64(base + layout.EntryWaits),
		Wakes:    s.mustUint64(base + layout.EntryWakes),
		state:    s.mustUint32(base + layout.EntryState),
	}
	for _, c := range []*atomic.Uint64{e.Messages, e.Bytes, e.Stalls, e.Waits, e.Wakes} {
		c.Store(0)
	}
	s.mustUint32(base + layout.EntryRole).Store(role)
	s.mustUint32(base + layout.EntryPID).Store(uint32(os.Getpid()))
	gen := s.mustUint32(base + layout.EntryGen)
	gen.Store(gen.Load() + 1)
	s.mustUint64(base + layout.EntryAttachNano).Store(uint64(time.Now().UnixNano()))
	e.state.Store(layout.EntryAttached)
	if s.held == nil {
		s.held = make(map[int]bool)
	}
	s.held[i] = true
	return e, nil
}

// AttachAny takes the first registry entry that no live process holds, at
// or after entry first, for role. It fails with ErrRegistryFull if there is
// none.
func (s *Segment) AttachAny(first int, role uint32) (*Entry, error) {
	// One quick pass, then a patient one: an entry whose lock a process
	// repairing it holds for a moment is worth waiting for only if no other
	// entry is free.
	for _, patient := range []bool{false, true} {
		for i := first; i < int(s.hdr.RegistryCount); i++ {
			e, err := s.attach(i, role, patient)
			if err == nil || !errors.Is(err, ErrRoleTaken) {
				return e, err
			}
		}
	}
	return nil, fmt.Errorf("%w: all %d entries are held", ErrRegistryFull, int(s.hdr.RegistryCount)-first)
}

// Detach marks the entry as cleanly closed and releases it.
func (e *Entry) Detach() error {
	s := e.seg
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.held[e.index] {
		return nil
	}
	s.clearWaiters(e.index)
	e.state.Store(layout.EntryDetached)
	delete(s.held, e.index)
	return ofd.Unlock(s.lockFd(), layout.EntryLockByte(e.index))
}

// EntryInfo is a snapshot of one registry entry. The fields other than
// Alive are read from shared memory and are only as trustworthy as the
// peers that write them.
type EntryInfo struct {
	Index      int
	State      uint32 // layout.EntryFree, EntryAttached or EntryDetached
	Role       uint32 // layout.RoleProducer or RoleConsumer
	PID        uint32 // holder's pid as it recorded it, for display
	Gen        uint32
	AttachedAt time.Time
	Alive      bool // a live process holds the entry's lock now
	Messages   uint64
	Bytes      uint64
	Stalls     uint64
	Waits      uint64
	Wakes      uint64
}

// Dead reports whether the entry was attached and its holder died without
// detaching.
func (i EntryInfo) Dead() bool { return i.State == layout.EntryAttached && !i.Alive }

// Entry returns a snapshot of registry entry i.
func (s *Segment) Entry(i int) (EntryInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return EntryInfo{}, ErrClosed
	}
	if i < 0 || i >= int(s.hdr.RegistryCount) {
		return EntryInfo{}, fmt.Errorf("%w: registry entry %d of %d", layout.ErrInvalidConfig, i, s.hdr.RegistryCount)
	}
	alive := s.held[i]
	if !alive {
		held, err := ofd.Held(s.lockFd(), layout.EntryLockByte(i))
		if err != nil {
			return EntryInfo{}, err
		}
		alive = held
	}
	base := s.hdr.Entry(i)
	return EntryInfo{
		Index:      i,
		State:      s.mustUint32(base + layout.EntryState).Load(),
		Role:       s.mustUint32(base + layout.EntryRole).Load(),
		PID:        s.mustUint32(base + layout.EntryPID).Load(),
		Gen:        s.mustUint32(base + layout.EntryGen).Load(),
		AttachedAt: time.Unix(0, int64(s.mustUint64(base+layout.EntryAttachNano).Load())),
		Alive:      alive,
		Messages:   s.mustUint64(base + layout.EntryMessages).Load(),
		Bytes:      s.mustUint64(base + layout.EntryBytes).Load(),
		Stalls:     s.mustUint64(base + layout.EntryStalls).Load(),
		Waits:      s.mustUint64(base + layout.EntryWaits).Load(),
		Wakes:      s.mustUint64(base + layout.EntryWakes).Load(),
	}, nil
}

// Entries returns a snapshot of every registry entry.
func (s *Segment) Entries() ([]EntryInfo, error) {
	out := make([]EntryInfo, 0, s.hdr.RegistryCount)
	for i := 0; i < int(s.hdr.RegistryCount); i++ {
		e, err := s.Entry(i)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// ReapDead marks as free every registry entry whose holder died without
// detaching, and returns the entries it reaped as they were. It takes each
// such entry's lock while it rewrites the entry, so it never touches one
// that a live process holds or attaches meanwhile. Queue-specific state the
// dead holder left (an MPMC slot it had claimed) is recovered by the queue,
// whose checks treat a free entry like a dead one.
func (s *Segment) ReapDead() ([]EntryInfo, error) {
	var reaped []EntryInfo
	for i := 0; i < int(s.hdr.RegistryCount); i++ {
		info, err := s.Entry(i)
		if err != nil {
			return reaped, err
		}
		if !info.Dead() {
			continue
		}
		ok, err := s.reap(i)
		if err != nil {
			return reaped, err
		}
		if ok {
			reaped = append(reaped, info)
		}
	}
	return reaped, nil
}

func (s *Segment) reap(i int) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, ErrClosed
	}
	if s.held[i] {
		return false, nil
	}
	if err := ofd.TryLock(s.lockFd(), layout.EntryLockByte(i)); err != nil {
		if errors.Is(err, ofd.ErrLocked) {
			return false, nil // attached meanwhile
		}
		return false, err
	}
	defer ofd.Unlock(s.lockFd(), layout.EntryLockByte(i))
	s.clearWaiters(i)
	state := s.mustUint32(s.hdr.Entry(i) + layout.EntryState)
	if state.Load() != layout.EntryAttached {
		return false, nil
	}
	state.Store(layout.EntryFree)
	return true, nil
}

// lockEntry takes the lock of entry i. A process that repairs a dead
// holder's entry (ReapWaiter, WithDeadEntry, ReapDead) holds its lock for a
// few system calls, or longer if it is descheduled meanwhile, and must not
// make an attach fail as if a live process held the role. So a patient
// caller that finds the lock taken while the entry's recorded holder is not
// a running process (or no holder is recorded) tries again for up to
// lockPatience. A lock found taken while the recorded holder runs fails at
// once: that is the live holder (or, in another pid namespace, something
// this check cannot see, which then fails as before).
func (s *Segment) lockEntry(i int, patient bool) error {
	deadline := time.Now().Add(lockPatience)
	for wait := 50 * time.Microsecond; ; wait = min(2*wait, 5*time.Millisecond) {
		err := ofd.TryLock(s.lockFd(), layout.EntryLockByte(i))
		if err == nil || !errors.Is(err, ofd.ErrLocked) || !patient || time.Now().After(deadline) {
			return err
		}
		base := s.hdr.Entry(i)
		if s.mustUint32(base+layout.EntryState).Load() == layout.EntryAttached &&
			processRuns(s.mustUint32(base+layout.EntryPID).Load()) {
			return err
		}
		time.Sleep(wait)
	}
}

// lockPatience bounds lockEntry's retries.
const lockPatience = 100 * time.Millisecond

// WaiterSet returns the words of waiter set k (layout.WaiterSetProducers,
// ...): as many as the registry needs, one per 64 entries.
func (s *Segment) WaiterSet(k int) ([]*atomic.Uint64, error) {
	if k < 0 || k >= int(s.hdr.WaiterSets) {
		return nil, fmt.Errorf("%w: waiter set %d of %d", layout.ErrInvalidConfig, k, s.hdr.WaiterSets)
	}
	n := layout.WaiterSetLen(s.hdr.RegistryCount)
	ws := make([]*atomic.Uint64, n)
	for j := range ws {
		w, err := s.Uint64(s.hdr.WaiterSet(k) + uint64(8*j))
		if err != nil {
			return nil, err
		}
		ws[j] = w
	}
	return ws, nil
}

// clearWaiters removes entry i from every waiter set. The caller holds
// entry i's lock (see notify.WaiterSet for why that makes it exact).
func (s *Segment) clearWaiters(i int) {
	bit := uint64(1) << (i % 64)
	for k := 0; k < int(s.hdr.WaiterSets); k++ {
		s.mustUint64(s.hdr.WaiterSet(k) + uint64(8*(i/64))).And(^bit)
	}
}

// ReapWaiter removes entry i from every waiter set if no live process holds
// the entry, and reports whether it did. A publisher that keeps finding a
// registered waiter calls it for each one now and then: a waiter killed
// while parked leaves its registration behind, and every later publish
// would pay a wake system call for it. It takes the entry's lock while it
// clears, so it never touches the registration of a live holder, even one
// that attaches meanwhile.
func (s *Segment) ReapWaiter(i int) (bool, error) {
	return s.WithDeadEntry(i, func() { s.clearWaiters(i) })
}

// WithDeadEntry runs fn while it holds the lock of registry entry i, if no
// live process (this one included) holds the entry, and reports whether it
// ran fn. It is how a process repairs, exactly once and without racing a
// new holder, what a dead holder left in its entry.
func (s *Segment) WithDeadEntry(i int, fn func()) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, ErrClosed
	}
	if i < 0 || i >= int(s.hdr.RegistryCount) || s.held[i] {
		return false, nil
	}
	if err := ofd.TryLock(s.lockFd(), layout.EntryLockByte(i)); err != nil {
		if errors.Is(err, ofd.ErrLocked) {
			return false, nil
		}
		return false, err
	}
	fn()
	return true, ofd.Unlock(s.lockFd(), layout.EntryLockByte(i))
}

// lockFd is the descriptor of the private lock description; see lockFile.
func (s *Segment) lockFd() int { return int(s.lock.Fd()) }

// A ByteLock is an exclusive lock on one byte of the segment file, taken
// through the Segment's private lock description: the kernel drops it when
// this process dies (or the Segment is closed), and no other process can
// come to share it. Byte numbers are names, not file contents (LAYOUT.md
// section 8). It implements sem.Locker for robust mutexes.
type ByteLock struct {
	seg *Segment
	b   int64
}

// ByteLock returns the lock on byte b of the segment file.
func (s *Segment) ByteLock(b int64) ByteLock { return ByteLock{s, b} }

// TryLock takes the lock without waiting and reports whether it did.
func (l ByteLock) TryLock() (bool, error) {
	err := ofd.TryLock(l.seg.lockFd(), l.b)
	if errors.Is(err, ofd.ErrLocked) {
		return false, nil
	}
	return err == nil, err
}

// Unlock releases the lock.
func (l ByteLock) Unlock() error { return ofd.Unlock(l.seg.lockFd(), l.b) }
