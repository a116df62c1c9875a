// Package ring manages shmq segments: creating, opening, mapping and
// removing them, their registry of attached processes, and typed atomic
// access to validated offsets of the mapping. It knows the header format
// (package layout) but no queue protocol.
package ring

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/shmq/shmq/internal/ofd"
	"github.com/shmq/shmq/internal/unix"
	"github.com/shmq/shmq/layout"
)

// Options tune Create and Open. The zero value is ready to use.
type Options struct {
	// Mode is the permission of a new segment file; 0 means 0600. It is
	// applied exactly, regardless of the umask. Only permission bits are
	// allowed (setuid, setgid and sticky bits are refused with ErrInvalid).
	Mode fs.FileMode
	// AllowOtherOwner lets Open map a segment owned by another uid. Off by
	// default: a segment is writable by every peer that maps it, so trusting
	// another user's segment is a decision to make explicitly.
	AllowOtherOwner bool
	// ReadyTimeout bounds how long Open waits for the creator to publish the
	// header; 0 means 5 seconds. The context passed to Open can end it sooner.
	ReadyTimeout time.Duration
}

func (o *Options) mode() (uint32, error) {
	if o == nil || o.Mode == 0 {
		return 0o600, nil
	}
	if o.Mode&^fs.ModePerm != 0 {
		return 0, fmt.Errorf("%w: mode %v has bits other than permissions", ErrInvalid, o.Mode)
	}
	return uint32(o.Mode), nil
}

// Segment is one mapping of a shmq segment. Its methods are safe for
// concurrent use; the memory it maps is shared with other processes and is
// accessed through the typed atomics that Uint32 and Uint64 return and the
// byte slices that Data returns.
type Segment struct {
	loc Location
	// file is the description the mapping was made from; File and Fd hand
	// it out (to pass a memfd to a child), so it never holds a lock.
	file *os.File
	// lock is a description private to this Segment (see lockFile): every
	// OFD lock of this Segment (init, registry entries, mutexes) is taken
	// through it. It is file itself where locks belong to the process.
	lock *os.File
	mem  []byte // the whole mapping; nil after Close
	hdr  layout.Header
	// shrinkable: the file is not sealed against shrinking, so another
	// process can truncate it and make accesses to the mapping fault.
	shrinkable bool

	mu     sync.Mutex
	closed bool
	held   map[int]bool // registry entries whose lock this Segment holds
}

// Create makes a new segment at loc laid out as h describes, maps it, runs
// init (which may set cursors and other fields), publishes the ready state,
// and only then gives the file its name (Shm, File), so that whatever an
// opener finds at a queue's name is either complete or not shmq's. Its
// whole size is reserved up front, so a full file system fails here with
// ErrNoSpace rather than with SIGBUS later. On failure nothing is left
// behind. It fails with ErrExists if something is at the name already.
func Create(loc Location, h layout.Header, opts *Options, init func(*Segment) error) (_ *Segment, err error) {
	if h.TotalSize == 0 || h.TotalSize%layout.PageSize != 0 {
		return nil, fmt.Errorf("%w: segment size %d", layout.ErrInvalidConfig, h.TotalSize)
	}
	mode, err := opts.mode()
	if err != nil {
		return nil, err
	}
	c, err := createFile(loc, mode)
	if err != nil {
		return nil, err
	}
	f := c.f
	defer func() {
		if err != nil {
			c.discard()
		}
	}()
	lk, err := lockFile(f, loc)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil && lk != f {
			lk.Close()
		}
	}()
	// Hold the init lock until the header is published: an opener that
	// finds an unpublished header and this lock free knows the creator died
	// (only possible for a descriptor passed on before Create returned).
	if err := ofd.TryLock(int(lk.Fd()), layout.InitLockByte); err != nil {
		return nil, fmt.Errorf("shmq: create %v: %w", loc, err)
	}
	if err := reserve(f, loc, int64(h.TotalSize)); err != nil {
		return nil, err
	}
	if loc.kind == locMemfd {
		if err := sealSize(f); err != nil {
			return nil, fmt.Errorf("shmq: seal %v: %w", loc, err)
		}
	}
	mem, err := mmap(f, h.TotalSize)
	if err != nil {
		return nil, fmt.Errorf("shmq: map %v: %w", loc, err)
	}
	s := &Segment{loc: loc, file: f, lock: lk, mem: mem, hdr: h, shrinkable: shrinkable(f)}
	defer func() {
		if err != nil {
			unix.Munmap(mem)
		}
	}()
	h.CreatorPID = uint32(os.Getpid())
	h.CreatedNano = time.Now().UnixNano()
	layout.Encode(mem, &h)
	if init != nil {
		if err := init(s); err != nil {
			return nil, err
		}
	}
	// Validate what we wrote, exactly as an opener will, on a copy marked
	// ready, so that no opener ever sees a published header withdrawn.
	check := make([]byte, h.HeaderSize)
	copy(check, mem)
	binary.LittleEndian.PutUint32(check[layout.OffState:], layout.StateReady)
	hdr, err := layout.Decode(check, h.TotalSize)
	if err != nil {
		return nil, fmt.Errorf("shmq: create %v: %w", loc, err)
	}
	s.hdr = hdr
	s.mustUint32(layout.OffState).Store(layout.StateReady)
	if err := c.publish(loc); err != nil {
		return nil, err
	}
	if err := ofd.Unlock(int(lk.Fd()), layout.InitLockByte); err != nil {
		return nil, err
	}
	return s, nil
}

// Open maps the existing segment at loc, waiting (bounded by ctx and
// opts.ReadyTimeout) for its creator to publish it, and validates its header
// against the mapped size. kind is the queue kind the caller implements;
// a segment of another kind fails with layout.ErrKind. Kind 0 accepts any
// kind, for tools that inspect segments. Anything at loc that is not a
// shmq segment (an empty or zero-filled file, a directory, a FIFO, a file
// that does not start with the magic) fails with layout.ErrNotSegment.
func Open(ctx context.Context, loc Location, kind layout.Kind, opts *Options) (*Segment, error) {
	f, err := openFile(loc)
	if err != nil {
		return nil, err
	}
	s, err := waitReady(ctx, f, loc, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	if kind != 0 && s.hdr.Kind != kind {
		s.Close()
		return nil, fmt.Errorf("%w: %v holds a %v queue, not %v", layout.ErrKind, loc, s.hdr.Kind, kind)
	}
	return s, nil
}

func waitReady(ctx context.Context, f *os.File, loc Location, opts *Options) (*Segment, error) {
	timeout := 5 * time.Second
	if opts != nil && opts.ReadyTimeout > 0 {
		timeout = opts.ReadyTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("shmq: stat %v: %w", loc, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%w: %v is not a regular file", layout.ErrNotSegment, loc)
	}
	if int(st.Uid) != os.Geteuid() && (opts == nil || !opts.AllowOtherOwner) {
		return nil, fmt.Errorf("%w: %v is owned by uid %d (set AllowOtherOwner to trust it)", ErrPermission, loc, st.Uid)
	}
	lk, err := lockFile(f, loc)
	if err != nil {
		return nil, err
	}
	backoff := 50 * time.Microsecond
	var s *Segment
	for {
		s, err = tryMap(f, loc)
		if err == nil {
			s.lock = lk
			return s, nil
		}
		if !errors.Is(err, layout.ErrNotReady) {
			break
		}
		// Our magic, not yet published: the creator may still be working
		// (it holds the init lock) or may have died.
		held, herr := ofd.Held(int(lk.Fd()), layout.InitLockByte)
		if herr != nil {
			err = fmt.Errorf("shmq: open %v: %w", loc, herr)
			break
		}
		if !held {
			// Re-check: the creator unlocks only after publishing.
			if s, err = tryMap(f, loc); err == nil {
				s.lock = lk
				return s, nil
			}
			if errors.Is(err, layout.ErrNotReady) {
				err = fmt.Errorf("%w: %v", ErrAbandoned, loc)
			}
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
	if lk != f {
		lk.Close()
	}
	return nil, err
}

func fileSize(f *os.File) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, err
	}
	return uint64(st.Size), nil
}

// tryMap maps f if it holds a published header, validates it, and returns
// the segment (without its lock description). It returns
// layout.ErrNotReady for a segment whose creator has written the magic but
// not yet published it, and layout.ErrNotSegment for anything that does
// not start with the magic: a creator writes the magic before the file can
// be opened by anyone (LAYOUT.md section 9).
func tryMap(f *os.File, loc Location) (*Segment, error) {
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
	mem, err := mmap(f, size)
	if err != nil {
		return nil, fmt.Errorf("shmq: map %v: %w", loc, err)
	}
	s := &Segment{loc: loc, file: f, mem: mem}
	// The load of the state word orders every read of the header after the
	// creator's writes (the creator stores it last).
	if s.mustUint32(layout.OffState).Load() == layout.StateInit {
		unix.Munmap(mem)
		return nil, layout.ErrNotReady
	}
	h, err := layout.Decode(mem, size)
	if err != nil {
		unix.Munmap(mem)
		return nil, fmt.Errorf("shmq: open %v: %w", loc, err)
	}
	s.hdr = h
	s.shrinkable = shrinkable(f)
	return s, nil
}

// Header returns the validated header, a private copy made at Open or Create.
func (s *Segment) Header() layout.Header { return s.hdr }

// Location returns where the segment lives.
func (s *Segment) Location() Location { return s.loc }

// Fd returns the descriptor of the segment's mapping, valid until Close.
// Pass it to a child process (exec.Cmd.ExtraFiles) or over a Unix socket to
// share a memfd segment; the receiver opens it with FD. It never holds a
// lock, so handing it on (or forking) cannot make this process's roles
// outlive it.
func (s *Segment) Fd() int { return int(s.file.Fd()) }

// File returns the open file of the segment's mapping, valid until Close;
// see Fd.
func (s *Segment) File() *os.File { return s.file }

// Data returns the data region, or nil after Close. Its capacity is its
// length, so appends cannot run into other regions.
func (s *Segment) Data() []byte {
	if s.mem == nil {
		return nil // closed
	}
	d, n := s.hdr.Data, s.hdr.DataSize
	return s.mem[d : d+n : d+n]
}

// Shrinkable reports whether another process could truncate the segment's
// file under the mapping, making accesses fault: true for shm names and
// files, false for memfds sealed against shrinking (as Create seals them).
func (s *Segment) Shrinkable() bool { return s.shrinkable }

// Bytes returns the whole mapping, for inspection and corruption tests.
func (s *Segment) Bytes() []byte { return s.mem }

// Close unmaps the segment and closes its file, which releases every OFD
// lock (role, registry entry) taken through it. It does not remove the
// segment. Slices and atomics obtained from s must not be used afterwards.
func (s *Segment) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := unix.Munmap(s.mem)
	s.mem = nil
	if s.lock != nil && s.lock != s.file {
		if cerr := s.lock.Close(); err == nil {
			err = cerr
		}
	}
	if cerr := s.file.Close(); err == nil {
		err = cerr
	}
	return err
}

// Unlink removes the segment named by loc, so no new process can open it;
// processes that have it mapped keep using it. Memfd and FD locations have
// no name and Unlink on them does nothing.
func Unlink(loc Location) error {
	var p string
	switch loc.kind {
	case locShm:
		if err := validShmName(loc.name); err != nil {
			return err
		}
		p = filepath.Join(shmDir, loc.name)
	case locFile:
		p = loc.name
	default:
		return nil
	}
	if err := unix.Unlink(p); err != nil {
		if err == unix.ENOENT {
			return fmt.Errorf("%w: %v", ErrNotFound, loc)
		}
		return fmt.Errorf("shmq: unlink %v: %w", loc, err)
	}
	return nil
}

func mmap(f *os.File, size uint64) ([]byte, error) {
	if size > uint64(int(^uint(0)>>1)) {
		return nil, fmt.Errorf("%w: %d bytes do not fit the address space", layout.ErrInvalidConfig, size)
	}
	return unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
}

// RemoveAbandoned removes the segment at loc (a Shm or File name) if it is
// abandoned: it starts with shmq's magic, was never published, and no
// creator holds its init lock. It fails with ErrNotSegment for anything
// that is not a shmq segment, and with ErrExists for a segment that is
// ready or still being created: OpenOrCreate recreates only what a shmq
// creator left half made, and never removes what it did not make.
func RemoveAbandoned(loc Location) error {
	if loc.kind != locShm && loc.kind != locFile {
		return fmt.Errorf("%w: %v has no name", ErrBadName, loc)
	}
	f, err := openFile(loc)
	if err != nil {
		return err
	}
	defer f.Close()
	s, err := waitReady(context.Background(), f, loc, &Options{ReadyTimeout: time.Millisecond})
	if err == nil {
		s.lock.Close()
		unix.Munmap(s.mem)
		return fmt.Errorf("%w: %v is a published segment", ErrExists, loc)
	}
	if !errors.Is(err, ErrAbandoned) {
		if errors.Is(err, layout.ErrNotReady) {
			return fmt.Errorf("%w: %v is being created", ErrExists, loc)
		}
		return err
	}
	// Remove the very file found abandoned, not one that a creator linked
	// at the name since: move whatever is at the name aside first (one
	// atomic rename to a name no queue can have), then look at what moved.
	var opened, moved unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &opened); err != nil {
		return fmt.Errorf("shmq: stat %v: %w", loc, err)
	}
	p, err := loc.path()
	if err != nil {
		return err
	}
	aside := filepath.Join(filepath.Dir(p), fmt.Sprintf(".shmq-rm-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err := unix.Rename(p, aside); err != nil {
		return openError(loc, err)
	}
	if err := unix.Lstat(aside, &moved); err == nil && (moved.Dev != opened.Dev || moved.Ino != opened.Ino) {
		// A new segment replaced the abandoned one meanwhile: put it back.
		if err := renameNoReplace(aside, p); err != nil {
			return fmt.Errorf("shmq: %v was replaced while being removed, and putting the new segment back failed (it is at %s): %w", loc, aside, err)
		}
		return nil
	}
	if err := unix.Unlink(aside); err != nil {
		return fmt.Errorf("shmq: remove %v: %w", loc, err)
	}
	return nil
}
