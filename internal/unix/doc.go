// Package unix is the part of golang.org/x/sys/unix that shmq's portable
// code (ring, internal/ofd) calls, so that this code compiles on every
// platform Go supports.
//
// On Unix systems every identifier is golang.org/x/sys/unix's own (type
// aliases, constants, forwarding functions that the compiler inlines). On
// systems without the Unix system interface (windows, plan9, js, wasip1)
// the types and constants are placeholders and every function fails with
// an error wrapping [errors.ErrUnsupported]: shared memory segments need
// mmap and byte-range locks on files, which these systems do not offer to
// Go programs the same way. Callers therefore fail at their first system
// call, with an error that errors.Is(err, errors.ErrUnsupported) reports.
//
// Code that only runs on one system (Linux's memfd, futex and OFD lock
// commands, say) imports golang.org/x/sys/unix directly.
package unix
