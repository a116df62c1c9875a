//go:build unix && !aix

package unix

import "golang.org/x/sys/unix"

func Link(oldpath, newpath string) error { return unix.Link(oldpath, newpath) }
