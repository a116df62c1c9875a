package unix

import "syscall"

// Link is link(2); golang.org/x/sys/unix has no Link for AIX, the standard
// library's syscall package has.
func Link(oldpath, newpath string) error { return syscall.Link(oldpath, newpath) }
