//go:build unix && !aix

package unix

import "golang.org/x/sys/unix"

func Link(oldpath, newpath string) error { return unix.Link(oldpath, newpath) }
func Rename(from, to string) error       { return unix.Rename(from, to) }
