package ring

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseLocation reads a location as a command line gives it: the forms
// that Location.String writes (shm:NAME, file:PATH, fd:N, memfd:LABEL), a
// bare PATH that contains a slash (a file: ./q, /var/lib/q), or a bare
// NAME (a shm name). Errors wrap ErrBadName.
func ParseLocation(s string) (Location, error) {
	scheme, rest, ok := strings.Cut(s, ":")
	switch {
	case ok && scheme == "shm":
		return parseShm(rest)
	case ok && scheme == "file":
		if rest == "" {
			return Location{}, fmt.Errorf("%w: %q names no file", ErrBadName, s)
		}
		return File(rest), nil
	case ok && scheme == "fd":
		fd, err := strconv.Atoi(rest)
		if err != nil || fd < 0 {
			return Location{}, fmt.Errorf("%w: %q: want fd:N, N a descriptor number", ErrBadName, s)
		}
		return FD(fd), nil
	case ok && scheme == "memfd":
		return Memfd(rest), nil
	case strings.Contains(s, "/"):
		return File(s), nil
	}
	return parseShm(s)
}

func parseShm(name string) (Location, error) {
	loc := Shm(name)
	if err := validShmName(loc.name); err != nil {
		return Location{}, err
	}
	return loc, nil
}
