package ring

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/bits"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/shmq/shmq/internal/unix"
	"github.com/shmq/shmq/layout"
)

// Listing and inspecting segments for operator tools and exporters. Both
// read through a View: they need read permission only, never write to a
// segment, and never open a file that is not a regular one.

// SegmentState says what List or Inspect found at a location.
type SegmentState uint8

const (
	// StateReady: a published segment; its header, cursors and registry
	// are in the SegmentInfo.
	StateReady SegmentState = iota + 1
	// StateInitializing: shmq's magic, not yet published, and its creator
	// (holding the init lock) still at work.
	StateInitializing
	// StateAbandoned: shmq's magic, never published, and no creator: it
	// died during initialization. Remove removes it.
	StateAbandoned
	// StateNotSegment: something shmq did not make (a foreign file, an
	// empty or zero-filled one, a FIFO, a symbolic link). Nothing in this
	// package modifies or removes it.
	StateNotSegment
	// StateUnreadable: it could not be read; Err says why (permission,
	// a corrupt or truncated segment, an unsupported layout version).
	StateUnreadable
)

func (s SegmentState) String() string {
	switch s {
	case StateReady:
		return "ready"
	case StateInitializing:
		return "initializing"
	case StateAbandoned:
		return "abandoned"
	case StateNotSegment:
		return "not a segment"
	case StateUnreadable:
		return "unreadable"
	}
	return fmt.Sprintf("SegmentState(%d)", uint8(s))
}

// stateOf classifies the error of opening a view.
func stateOf(err error) SegmentState {
	switch {
	case err == nil:
		return StateReady
	case errors.Is(err, layout.ErrNotSegment):
		return StateNotSegment
	case errors.Is(err, ErrAbandoned):
		return StateAbandoned
	case errors.Is(err, layout.ErrNotReady):
		return StateInitializing
	}
	return StateUnreadable
}

// SegmentInfo describes one file of a directory, or one segment. The
// values read from shared memory are only as trustworthy as the processes
// that write it, and are loaded one word at a time while those processes
// run: each is a value the word held, together they are not a snapshot of
// one instant.
type SegmentInfo struct {
	// Location opens the segment: a Shm name for a valid shm name in the
	// shm directory, a File otherwise.
	Location Location
	// Name is the file's name in its directory ("" for an FD location).
	Name  string
	State SegmentState
	// Err says why State is not StateReady; nil when it is. It wraps
	// layout.ErrNotSegment, ErrAbandoned, layout.ErrNotReady,
	// ErrPermission, ErrTruncated, layout.ErrCorrupt, layout.ErrVersion...
	Err error

	// The file, as fstat (or, when it could not be opened, lstat) saw it;
	// zero if neither could.
	Size int64
	UID  uint32
	Mode fs.FileMode // permission bits

	// The rest is set only when State is StateReady.

	Header layout.Header
	// Head and Tail are the consumer and producer cursor words
	// (layout.CursorPosition of Header.Consumer and Header.Producer),
	// loaded in that order: bytes of the stream for SPSC, slot positions
	// for MPMC. See Depth.
	Head, Tail uint64
	// Entries holds every registry entry, free ones included, with its
	// liveness as the kernel's locks tell it now.
	Entries []EntryInfo
	// Waiters[k] is the number of registry entries registered in waiter
	// set k (layout.WaiterSetProducers, layout.WaiterSetConsumers, and in
	// MPMC queues the locked mode's sets): processes parked, or about to
	// park, or that died parked and were not swept yet.
	Waiters []int
}

// Depth returns Tail - Head: what the queue holds, in the unit of its
// cursors. For SPSC that is bytes of the ring, records with their 8-byte
// headers and alignment and any padding record at the wrap, not a count
// of messages. For MPMC it is slots: messages committed and not yet
// taken, plus slots that producers have claimed and not yet committed
// (slots taken by consumers and not yet released are not counted). ok is
// false when the difference is no depth: Tail behind Head, or more than
// Header.Capacity ahead of it; the cursors are then corrupt, or moved a
// lot between the two loads.
func (i *SegmentInfo) Depth() (depth uint64, ok bool) {
	if i.State != StateReady {
		return 0, false
	}
	d := i.Tail - i.Head
	return d, int64(d) >= 0 && d <= i.Header.Capacity
}

// Info returns the view's header, cursors, registry and waiter sets.
func (v *View) Info() (SegmentInfo, error) {
	if err := v.enter(); err != nil {
		return SegmentInfo{}, err
	}
	v.seg.mu.Unlock() // the loads below take it word by word
	info := SegmentInfo{
		Location: v.seg.loc,
		Name:     baseName(v.seg.loc),
		State:    StateReady,
		Header:   v.seg.hdr,
	}
	info.setStat(&v.st)
	if err := v.load(&info); err != nil {
		return SegmentInfo{}, err
	}
	return info, nil
}

func (v *View) load(info *SegmentInfo) (err error) {
	h := &v.seg.hdr
	if info.Head, err = v.Load64(h.Consumer + layout.CursorPosition); err != nil {
		return err
	}
	if info.Tail, err = v.Load64(h.Producer + layout.CursorPosition); err != nil {
		return err
	}
	if info.Entries, err = v.entries(); err != nil {
		return err
	}
	info.Waiters = make([]int, h.WaiterSets)
	for k := range info.Waiters {
		for j := 0; j < layout.WaiterSetLen(h.RegistryCount); j++ {
			w, err := v.Load64(h.WaiterSet(k) + uint64(8*j))
			if err != nil {
				return err
			}
			// Bits past the registry stand for no entry.
			if rest := int(h.RegistryCount) - 64*j; rest < 64 {
				w &= 1<<rest - 1
			}
			info.Waiters[k] += bits.OnesCount64(w)
		}
	}
	return nil
}

func (v *View) entries() (_ []EntryInfo, err error) {
	defer v.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	return v.seg.Entries()
}

func (i *SegmentInfo) setStat(st *unix.Stat_t) {
	i.Size = st.Size
	i.UID = st.Uid
	i.Mode = fs.FileMode(st.Mode) & fs.ModePerm
}

func baseName(loc Location) string {
	switch loc.kind {
	case locShm:
		return loc.name
	case locFile:
		return filepath.Base(loc.name)
	}
	return ""
}

// Inspect describes the segment at loc (a Shm name, a File or an FD)
// through a View: it needs read permission only, whatever the segment's
// owner. A segment being initialized is waited for, as OpenView does. If
// loc holds no ready segment, Inspect returns an error (wrapping
// ErrNotFound, layout.ErrNotSegment, ErrAbandoned, layout.ErrNotReady,
// ErrPermission, ...) and a SegmentInfo whose State and Err say what it
// found.
func Inspect(ctx context.Context, loc Location) (SegmentInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, viewReadyTimeout)
	defer cancel()
	return inspect(ctx, loc, true)
}

func inspect(ctx context.Context, loc Location, wait bool) (SegmentInfo, error) {
	v, err := openView(ctx, loc, wait)
	if err != nil {
		return SegmentInfo{Location: loc, Name: baseName(loc), State: stateOf(err), Err: err}, err
	}
	defer v.Close()
	info, err := v.Info()
	if err != nil {
		info = SegmentInfo{Location: loc, Name: baseName(loc), State: StateUnreadable, Err: err}
		info.setStat(&v.st)
	}
	return info, err
}

// List describes every file in dir, sorted by name; dir "" means the
// directory of shm names (/dev/shm on Linux). Subdirectories are left
// out. Each file is looked at through a View and its SegmentInfo says what
// it is: ready, initializing (not waited for), abandoned, not a segment, or
// unreadable, with Err saying why; an error about one file (another user's
// that this one may not read, say) does not fail the listing. Files that
// are not regular are not opened. Only a directory that cannot be read
// fails List; a missing shm directory is an empty list.
func List(dir string) ([]SegmentInfo, error) {
	if dir == "" {
		dir = shmDir
	}
	shm := filepath.Clean(dir) == filepath.Clean(shmDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		if shm && errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("shmq: list %s: %w", dir, err)
	}
	var out []SegmentInfo
	for _, d := range ents {
		if d.IsDir() {
			continue
		}
		path := filepath.Join(dir, d.Name())
		loc := File(path)
		if shm && validShmName(d.Name()) == nil {
			loc = Shm(d.Name())
		}
		var info SegmentInfo
		if d.Type().IsRegular() {
			info, err = inspect(context.Background(), loc, false)
			if errors.Is(err, ErrNotFound) {
				continue // removed since the directory was read
			}
		} else {
			info = SegmentInfo{Location: loc, State: StateNotSegment,
				Err: fmt.Errorf("%w: %v is not a regular file", layout.ErrNotSegment, loc)}
		}
		info.Name = d.Name()
		if info.Size == 0 && info.UID == 0 && info.Mode == 0 {
			var st unix.Stat_t
			if unix.Lstat(path, &st) == nil {
				info.setStat(&st)
			}
		}
		out = append(out, info)
	}
	return out, nil
}
