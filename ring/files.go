package ring

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/shmq/shmq/internal/unix"
	"github.com/shmq/shmq/layout"
)

// A creation is a new segment file that no other process can open yet. For
// a name (Shm, File) the file is unnamed (O_TMPFILE) or has a temporary
// name until publish links it at its real name, so whatever sits at a
// queue's name is either a published segment or something shmq did not
// make: Open calls the latter ErrNotSegment and nothing ever deletes it.
type creation struct {
	f       *os.File
	path    string // final name; "" for a memfd
	tmpPath string // temporary name to unlink, when O_TMPFILE was not available
}

// createFile makes the file behind loc with mode exactly (whatever the
// umask), not yet visible at its name.
func createFile(loc Location, mode uint32) (*creation, error) {
	switch loc.kind {
	case locShm, locFile:
	case locMemfd:
		fd, err := memfdCreate(loc.name)
		if err != nil {
			return nil, fmt.Errorf("shmq: create %v: %w", loc, err)
		}
		return &creation{f: os.NewFile(uintptr(fd), loc.String())}, nil
	case locFD:
		return nil, fmt.Errorf("%w: cannot create at %v; use Memfd, Shm or File", ErrBadName, loc)
	default:
		return nil, fmt.Errorf("%w: empty location", ErrBadName)
	}
	p, err := loc.path()
	if err != nil {
		return nil, err
	}
	// Fail early, before reserving memory, when the name is taken; publish
	// settles the race with a creator that gets there in between.
	if _, err := os.Lstat(p); err == nil {
		return nil, fmt.Errorf("%w: %v", ErrExists, loc)
	}
	c := &creation{path: p}
	fd, err := openTmp(filepath.Dir(p), mode)
	if err != nil {
		// No O_TMPFILE here: a temporary name that no queue name can be
		// (queue names do not start with a dot) in the same directory.
		c.tmpPath = filepath.Join(filepath.Dir(p), fmt.Sprintf(".shmq-%d-%d-%s", os.Getpid(), time.Now().UnixNano(), filepath.Base(p)))
		fd, err = unix.Open(c.tmpPath, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
		if err != nil {
			return nil, openError(loc, err)
		}
	}
	c.f = os.NewFile(uintptr(fd), loc.String())
	if err := unix.Fchmod(fd, mode); err != nil {
		c.discard()
		return nil, fmt.Errorf("shmq: chmod %v: %w", loc, err)
	}
	return c, nil
}

// publish makes the file appear at its name, or fails with ErrExists if
// something got there first.
func (c *creation) publish(loc Location) error {
	if c.path == "" {
		return nil
	}
	var err error
	if c.tmpPath != "" {
		err = unix.Link(c.tmpPath, c.path)
		if err == nil {
			unix.Unlink(c.tmpPath)
			c.tmpPath = ""
		}
	} else {
		err = linkTmp(int(c.f.Fd()), c.path)
	}
	if errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("%w: %v", ErrExists, loc)
	}
	if err != nil {
		return fmt.Errorf("shmq: publish %v: %w", loc, err)
	}
	return nil
}

// discard closes the file and removes its temporary name, if any. A
// published file is not removed.
func (c *creation) discard() {
	c.f.Close()
	if c.tmpPath != "" {
		unix.Unlink(c.tmpPath)
	}
}

// openFile opens the file behind loc for reading and writing, refusing
// symbolic links and anything but regular files. For an FD location it
// reopens the descriptor through /proc, so the caller keeps its own
// descriptor and may close it.
func openFile(loc Location) (*os.File, error) {
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
	// O_NONBLOCK: a FIFO at the name must not block the open; it is
	// refused as not a regular file right after.
	flags := unix.O_RDWR | unix.O_CLOEXEC | unix.O_NONBLOCK
	if loc.kind != locFD {
		flags |= unix.O_NOFOLLOW
	}
	fd, err := unix.Open(p, flags, 0)
	if err != nil {
		return nil, openError(loc, err)
	}
	return os.NewFile(uintptr(fd), loc.String()), nil
}

// lockFile returns the description through which a Segment takes its OFD
// locks: a new open of the same file that only this Segment references,
// close-on-exec and never handed out. OFD locks belong to an open file
// description and are dropped only when its last reference closes, so a
// description that holds locks must not reach another process (through
// ExtraFiles, SCM_RIGHTS or fork): there, it would keep a dead process's
// roles alive, and let two processes pass for one holder. File and Fd hand
// out the other description, which never holds a lock.
func lockFile(f *os.File, loc Location) (*os.File, error) {
	if !ofdLocks {
		// Classic record locks belong to the process, not the description:
		// passing the descriptor on transfers nothing.
		return f, nil
	}
	fd, err := unix.Open(reopenPath(int(f.Fd())), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("shmq: open lock description of %v: %w", loc, err)
	}
	return os.NewFile(uintptr(fd), loc.String()+" (locks)"), nil
}

func (l Location) path() (string, error) {
	if l.kind == locShm {
		if err := validShmName(l.name); err != nil {
			return "", err
		}
		if err := os.MkdirAll(shmDir, 0o1777); err != nil {
			return "", fmt.Errorf("shmq: %w", err)
		}
		return filepath.Join(shmDir, l.name), nil
	}
	if l.name == "" {
		return "", fmt.Errorf("%w: empty path", ErrBadName)
	}
	return l.name, nil
}

func openError(loc Location, err error) error {
	switch err {
	case unix.EEXIST:
		return fmt.Errorf("%w: %v", ErrExists, loc)
	case unix.ENOENT:
		return fmt.Errorf("%w: %v", ErrNotFound, loc)
	case unix.ELOOP:
		return fmt.Errorf("%w: %v is a symbolic link", ErrPermission, loc)
	case unix.EISDIR:
		return fmt.Errorf("%w: %v is a directory", layout.ErrNotSegment, loc)
	case unix.EACCES, unix.EPERM:
		return fmt.Errorf("%w: %v: %w (another user's file in a sticky directory such as /dev/shm is refused when fs.protected_regular is set)", ErrPermission, loc, err)
	case unix.ENOSPC:
		return fmt.Errorf("%w: %v", ErrNoSpace, loc)
	}
	return fmt.Errorf("shmq: open %v: %w", loc, err)
}

// reserve sizes f to size bytes and makes the file system commit the space
// now, after checking that it has that much free: on tmpfs an unreserved
// page that cannot be allocated on first touch kills the process with SIGBUS.
func reserve(f *os.File, loc Location, size int64) error {
	fd := int(f.Fd())
	if free, ok := freeSpace(fd); ok && free < uint64(size) {
		return fmt.Errorf("%w: %v needs %d bytes, %d free", ErrNoSpace, loc, size, free)
	}
	if err := allocate(fd, size); err != nil {
		if err == unix.ENOSPC {
			return fmt.Errorf("%w: %v needs %d bytes", ErrNoSpace, loc, size)
		}
		return fmt.Errorf("shmq: reserve %d bytes for %v: %w", size, loc, err)
	}
	return nil
}
