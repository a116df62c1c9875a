package ring

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"runtime/debug"

	"github.com/shmq/shmq/internal/unix"
	"github.com/shmq/shmq/layout"
)

// Cleanup for operator tools: freeing what dead processes left in a
// registry, and removing segments, never anything shmq did not make.

// Reap frees the registry entries of the processes that died attached to
// the segment at loc, whatever its kind, and returns those entries as they
// were (Segment.ReapDead, which also clears their waiter registrations).
// Unlike Inspect it maps the segment for writing (Open with kind 0), so it
// needs write permission on the file, and opts.AllowOtherOwner for
// another user's segment. It returns the entries it reaped even when it
// fails part way.
func Reap(ctx context.Context, loc Location, opts *Options) (reaped []EntryInfo, err error) {
	s, err := Open(ctx, loc, 0, opts)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	// Deferred after Close, so it runs first.
	if s.Shrinkable() {
		defer s.CatchFault(&err, debug.SetPanicOnFault(true))
	}
	return s.ReapDead()
}

// Remove removes the name of the segment at loc (a Shm name or a File)
// after checking that the file is shmq's: a regular file that starts with
// shmq's magic. Anything else (a foreign file, an empty or zero-filled
// one, a directory, a FIFO) is left alone with an error wrapping
// layout.ErrNotSegment, and a symbolic link with ErrPermission. A segment
// goes whatever its state: ready (processes that have it mapped keep
// using it; none can open it any more), being initialized, abandoned,
// corrupt or truncated. It needs read permission on the file to check it,
// and the directory's permission to remove it. Unlink, which queues use
// on names they created, removes without checking.
func Remove(loc Location) error {
	if loc.kind != locShm && loc.kind != locFile {
		return fmt.Errorf("%w: %v has no name to remove", ErrBadName, loc)
	}
	p, err := loc.path()
	if err != nil {
		return err
	}
	// Remove the very file checked: if another one replaced it meanwhile,
	// check that one instead.
	for range 3 {
		var checked unix.Stat_t
		if err := checkMagic(loc, &checked); err != nil {
			return err
		}
		var named unix.Stat_t
		if err := unix.Lstat(p, &named); err != nil {
			return openError(loc, err)
		}
		if named.Dev != checked.Dev || named.Ino != checked.Ino {
			continue
		}
		switch err := unix.Unlink(p); err {
		case nil:
			return nil
		case unix.ENOENT:
			return fmt.Errorf("%w: %v", ErrNotFound, loc)
		case unix.EACCES, unix.EPERM:
			return fmt.Errorf("%w: remove %v: %w", ErrPermission, loc, err)
		default:
			return fmt.Errorf("shmq: remove %v: %w", loc, err)
		}
	}
	return fmt.Errorf("%w: %v keeps being replaced", ErrExists, loc)
}

// checkMagic returns an error unless loc is a regular file that starts
// with shmq's magic, and fills st with its status.
func checkMagic(loc Location, st *unix.Stat_t) error {
	f, err := openReadOnly(loc)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Fstat(int(f.Fd()), st); err != nil {
		return fmt.Errorf("shmq: stat %v: %w", loc, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%w: %v is not a regular file", layout.ErrNotSegment, loc)
	}
	var magic [8]byte
	n, err := f.ReadAt(magic[:], layout.OffMagic)
	if err != nil && err != io.EOF {
		return fmt.Errorf("shmq: read %v: %w", loc, err)
	}
	if m := binary.LittleEndian.Uint64(magic[:]); n < len(magic) || m != layout.Magic {
		return fmt.Errorf("%w: %v (%d bytes, magic %#016x); not removed", layout.ErrNotSegment, loc, st.Size, m)
	}
	return nil
}
