package ring

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/shmq/shmq/internal/ofd"
	"github.com/shmq/shmq/internal/unix"
	"github.com/shmq/shmq/layout"
)

// A View is a read-only mapping of a segment, for tools that look at queues
// without taking part in them (list, inspect, a metrics exporter). It
// attaches to nothing and takes no lock, so it needs only read permission
// on the file: a tool run by another user can see a queue it may not
// write, and a view cannot change what it looks at, even by mistake.
//
// Values are loaded with the same atomic loads as a Segment's, from
// memory other processes write while the view looks: each load is a
// consistent word, but two loads are not a snapshot of one instant. Every
// method turns a fault (the file truncated under the mapping) into an
// error wrapping ErrTruncated.
type View struct {
	// seg maps the file PROT_READ. Its lock description is its own file,
	// opened read-only, through which the view only queries locks
	// (F_OFD_GETLK); it is never handed out. Only the loads of Segment
	// are used on it: a store would fault.
	seg *Segment
	st  unix.Stat_t // the file as it was opened
}

// viewReadyTimeout bounds OpenView's wait for a creator to publish, like
// Options.ReadyTimeout's default for Open.
const viewReadyTimeout = 5 * time.Second

// OpenView maps the segment at loc (a Shm name, a File or an FD) read-only,
// whatever its kind and owner. A segment whose creator is still
// initializing it is waited for, up to 5 seconds or until ctx ends
// (layout.ErrNotReady); one whose creator died doing so fails with
// ErrAbandoned; anything that is not a shmq segment with
// layout.ErrNotSegment. Close the view when done.
func OpenView(ctx context.Context, loc Location) (*View, error) {
	ctx, cancel := context.WithTimeout(ctx, viewReadyTimeout)
	defer cancel()
	return openView(ctx, loc, true)
}

// openView is OpenView; with wait false it reports a segment being
// initialized at once.
func openView(ctx context.Context, loc Location, wait bool) (*View, error) {
	f, err := openReadOnly(loc)
	if err != nil {
		return nil, err
	}
	v := &View{}
	if err := unix.Fstat(int(f.Fd()), &v.st); err != nil {
		f.Close()
		return nil, fmt.Errorf("shmq: stat %v: %w", loc, err)
	}
	if v.st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, fmt.Errorf("%w: %v is not a regular file", layout.ErrNotSegment, loc)
	}
	backoff := 50 * time.Microsecond
	for {
		v.seg, err = mapView(f, loc)
		if err == nil {
			return v, nil
		}
		if !errors.Is(err, layout.ErrNotReady) {
			break
		}
		held, herr := ofd.Held(int(f.Fd()), layout.InitLockByte)
		if herr != nil {
			err = fmt.Errorf("shmq: open %v: %w", loc, herr)
			break
		}
		if !held {
			// The creator unlocks only after publishing: look once more.
			if v.seg, err = mapView(f, loc); err == nil {
				return v, nil
			}
			if errors.Is(err, layout.ErrNotReady) {
				err = fmt.Errorf("%w: %v", ErrAbandoned, loc)
			}
			break
		}
		if !wait {
			err = fmt.Errorf("%w: %v is being initialized", layout.ErrNotReady, loc)
			break
		}
		select {
		case <-ctx.Done():
			err = fmt.Errorf("%w: %v: %w", layout.ErrNotReady, loc, ctx.Err())
		case <-time.After(backoff):
			backoff = min(2*backoff, 10*time.Millisecond)
			continue
		}
		break
	}
	f.Close()
	return nil, err
}

// openReadOnly opens the file behind loc for reading, refusing symbolic
// links; see openFile.
func openReadOnly(loc Location) (*os.File, error) {
	var p string
	switch loc.kind {
	case locShm, locFile:
		var err error
		if p, err = loc.path(); err != nil {
			return nil, err
		}
	case locFD:
		if loc.fd < 0 {
			return nil, fmt.Errorf("%w: %v", ErrBadName, loc)
		}
		p = reopenPath(loc.fd)
	case locMemfd:
		return nil, fmt.Errorf("%w: a memfd has no name to open; open its descriptor with FD", ErrBadName)
	default:
		return nil, fmt.Errorf("%w: empty location", ErrBadName)
	}
	// O_NONBLOCK and O_NOCTTY: whatever sits at the name (a FIFO, a
	// terminal) must neither block the open nor be changed by it; it is
	// refused as not a regular file right after.
	flags := unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_NOCTTY
	if loc.kind != locFD {
		flags |= unix.O_NOFOLLOW
	}
	fd, err := unix.Open(p, flags, 0)
	if err != nil {
		return nil, openError(loc, err)
	}
	return os.NewFile(uintptr(fd), loc.String()), nil
}

// mapView maps f read-only if it holds a published header and validates
// it, as tryMap does for a writable mapping. A fault while it reads (the
// file shrunk since it was sized) is an error wrapping ErrTruncated.
func mapView(f *os.File, loc Location) (_ *Segment, err error) {
	size, err := fileSize(f)
	if err != nil {
		return nil, fmt.Errorf("shmq: stat %v: %w", loc, err)
	}
	var magic [8]byte
	if size >= 8 {
		if _, err := f.ReadAt(magic[:], layout.OffMagic); err != nil {
			return nil, fmt.Errorf("shmq: read %v: %w", loc, err)
		}
	}
	if m := binary.LittleEndian.Uint64(magic[:]); size < layout.PageSize || size%layout.PageSize != 0 || m != layout.Magic {
		return nil, fmt.Errorf("%w: %v (%d bytes, magic %#016x)", layout.ErrNotSegment, loc, size, m)
	}
	if size > uint64(int(^uint(0)>>1)) {
		return nil, fmt.Errorf("%w: %d bytes do not fit the address space", layout.ErrInvalidConfig, size)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("shmq: map %v: %w", loc, err)
	}
	s := &Segment{loc: loc, file: f, lock: f, mem: mem, shrinkable: shrinkable(f)}
	defer func() {
		if err != nil {
			unix.Munmap(mem)
		}
	}()
	defer s.CatchFault(&err, debug.SetPanicOnFault(true))
	// The load of the state word orders the reads of the header after the
	// creator's writes (the creator stores it last).
	if s.mustUint32(layout.OffState).Load() == layout.StateInit {
		return nil, layout.ErrNotReady
	}
	if s.hdr, err = layout.Decode(mem, size); err != nil {
		return nil, fmt.Errorf("shmq: open %v: %w", loc, err)
	}
	return s, nil
}

// Header returns the validated header, a private copy made when the view
// was opened.
func (v *View) Header() layout.Header { return v.seg.hdr }

// Location returns where the segment lives.
func (v *View) Location() Location { return v.seg.loc }

// Load64 loads the 64-bit word at byte offset off of the segment, an
// offset from the header (a cursor line, a slot's sequence word).
func (v *View) Load64(off uint64) (_ uint64, err error) {
	if err := v.enter(); err != nil {
		return 0, err
	}
	defer v.seg.mu.Unlock()
	defer v.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	w, err := v.seg.Uint64(off)
	if err != nil {
		return 0, err
	}
	return w.Load(), nil
}

// Load32 loads the 32-bit word at byte offset off of the segment.
func (v *View) Load32(off uint64) (_ uint32, err error) {
	if err := v.enter(); err != nil {
		return 0, err
	}
	defer v.seg.mu.Unlock()
	defer v.seg.CatchFault(&err, debug.SetPanicOnFault(true))
	w, err := v.seg.Uint32(off)
	if err != nil {
		return 0, err
	}
	return w.Load(), nil
}

// enter locks the segment's mutex, which Close takes to unmap, unless
// the view is closed (or nil).
func (v *View) enter() error {
	if v == nil || v.seg == nil {
		return fmt.Errorf("%w: nil view", ErrInvalid)
	}
	v.seg.mu.Lock()
	if v.seg.closed {
		v.seg.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// Close unmaps the segment and closes its file. The view's other methods
// fail with ErrClosed afterwards.
func (v *View) Close() error {
	if v == nil || v.seg == nil {
		return fmt.Errorf("%w: nil view", ErrInvalid)
	}
	return v.seg.Close()
}
