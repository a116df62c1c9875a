package ring

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// createFile creates the file behind loc with O_EXCL and O_NOFOLLOW, so
// Create never reuses or follows what it did not make, and sets mode exactly.
// remove undoes the creation.
func createFile(loc Location, mode uint32) (f *os.File, remove func(), err error) {
	var fd int
	remove = func() {}
	switch loc.kind {
	case locShm, locFile:
		p, err := loc.path()
		if err != nil {
			return nil, nil, err
		}
		fd, err = unix.Open(p, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
		if err != nil {
			return nil, nil, openError(loc, err)
		}
		remove = func() { unix.Unlink(p) }
	case locMemfd:
		fd, err = memfdCreate(loc.name)
		if err != nil {
			return nil, nil, fmt.Errorf("shmq: create %v: %w", loc, err)
		}
	case locFD:
		return nil, nil, fmt.Errorf("%w: cannot create at %v; use Memfd, Shm or File", ErrBadName, loc)
	default:
		return nil, nil, fmt.Errorf("%w: empty location", ErrBadName)
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		unix.Close(fd)
		remove()
		return nil, nil, fmt.Errorf("shmq: chmod %v: %w", loc, err)
	}
	return os.NewFile(uintptr(fd), loc.String()), remove, nil
}

// openFile opens the file behind loc for reading and writing, refusing
// symbolic links. For an FD location it reopens the descriptor through
// /proc, giving this Segment an open file description of its own: OFD locks
// belong to the description, and sharing the caller's would let two roles
// in different processes pass for one holder.
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
	flags := unix.O_RDWR | unix.O_CLOEXEC
	if loc.kind != locFD {
		flags |= unix.O_NOFOLLOW
	}
	fd, err := unix.Open(p, flags, 0)
	if err != nil {
		return nil, openError(loc, err)
	}
	return os.NewFile(uintptr(fd), loc.String()), nil
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
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err == nil && st.Blocks > 0 {
		if free := uint64(st.Bavail) * uint64(st.Bsize); free < uint64(size) {
			return fmt.Errorf("%w: %v needs %d bytes, %d free", ErrNoSpace, loc, size, free)
		}
	}
	if err := allocate(fd, size); err != nil {
		if err == unix.ENOSPC {
			return fmt.Errorf("%w: %v needs %d bytes", ErrNoSpace, loc, size)
		}
		return fmt.Errorf("shmq: reserve %d bytes for %v: %w", size, loc, err)
	}
	return nil
}
