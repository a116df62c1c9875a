package ring

import (
	"fmt"
	"strings"
)

// A Location names where a segment lives: a POSIX shared memory name, a file
// path, an anonymous memfd (Create only) or an open file descriptor (Open
// only).
type Location struct {
	kind locKind
	name string // shm name without the leading slash, file path, or memfd label
	fd   int
}

type locKind uint8

const (
	locShm locKind = iota + 1
	locFile
	locMemfd
	locFD
)

// MaxNameLen bounds shm names (without the leading slash) so that the same
// names work on macOS, whose limit is 31 bytes including the slash.
const MaxNameLen = 30

// Shm names a POSIX shared memory object, the file /dev/shm/NAME on Linux.
// A leading slash is accepted and ignored. Names have 1 to MaxNameLen
// characters from [A-Za-z0-9._-] and start with neither a dot nor a dash.
func Shm(name string) Location { return Location{kind: locShm, name: strings.TrimPrefix(name, "/")} }

// File names a regular file that persists the segment on its file system.
func File(path string) Location { return Location{kind: locFile, name: path} }

// Memfd asks Create for an anonymous memory file; label is shown in
// /proc/PID/fd and maps. Share the segment by passing Segment.Fd to another
// process (inheritance or SCM_RIGHTS) and opening it there with FD.
func Memfd(label string) Location { return Location{kind: locMemfd, name: label} }

// FD names an open file descriptor of an existing segment, typically an
// inherited memfd. Open reopens it, so the caller keeps ownership of fd.
func FD(fd int) Location { return Location{kind: locFD, fd: fd} }

func (l Location) String() string {
	switch l.kind {
	case locShm:
		return "shm:" + l.name
	case locFile:
		return "file:" + l.name
	case locMemfd:
		return "memfd:" + l.name
	case locFD:
		return fmt.Sprintf("fd:%d", l.fd)
	}
	return "invalid location"
}

// IsZero reports whether l names nothing.
func (l Location) IsZero() bool { return l.kind == 0 }

// validShmName reports why name is not a valid shm name, or nil.
func validShmName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("%w: %q must have 1 to %d characters", ErrBadName, name, MaxNameLen)
	}
	if name[0] == '.' || name[0] == '-' {
		// A leading dot hides the file (and is kept for shmq's temporary
		// names); a leading dash reads as a flag on every command line.
		return fmt.Errorf("%w: %q starts with %q", ErrBadName, name, name[0])
	}
	for _, c := range []byte(name) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("%w: %q may hold only letters, digits, '.', '_' and '-'", ErrBadName, name)
		}
	}
	return nil
}
