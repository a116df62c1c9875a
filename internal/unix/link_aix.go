package unix

import "syscall"

// golang.org/x/sys/unix has neither Link nor Rename for AIX; the standard
// library's syscall package has both.

func Link(oldpath, newpath string) error { return syscall.Link(oldpath, newpath) }
func Rename(from, to string) error       { return syscall.Rename(from, to) }
