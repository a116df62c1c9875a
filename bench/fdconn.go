package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// fdConn moves messages over raw blocking descriptors with plain
// read/write syscalls, so the numbers show the kernel path rather than Go's
// netpoller. Stream descriptors (pipes, stream sockets) may split a message,
// so they loop; message descriptors must deliver it whole.
//
// It counts its calls and bytes for the path check; the counters belong to
// the goroutine driving the Conn.
type fdConn struct {
	rfd, wfd int
	stream   bool
	// extra, when set, adds mechanism-specific counters (kernel buffer
	// sizes, TCP_INFO) to PathCounters.
	extra func() pathCounters

	writeCalls, writeBytes, readCalls, readBytes int64
}

func (c *fdConn) Send(msg []byte) error {
	for len(msg) > 0 {
		n, err := unix.Write(c.wfd, msg)
		c.writeCalls++
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		c.writeBytes += int64(n)
		if !c.stream && n != len(msg) {
			return fmt.Errorf("short datagram write: %d of %d bytes", n, len(msg))
		}
		msg = msg[n:]
	}
	return nil
}

func (c *fdConn) Recv(buf []byte) error {
	for got := 0; got < len(buf); {
		n, err := unix.Read(c.rfd, buf[got:])
		c.readCalls++
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("read: %w", io.ErrUnexpectedEOF)
		}
		if !c.stream && n != len(buf) {
			return fmt.Errorf("datagram of %d bytes, want %d", n, len(buf))
		}
		got += n
		c.readBytes += int64(n)
	}
	return nil
}

// PathCounters reports the calls and bytes that crossed the descriptors,
// how many of them are non-blocking (Go's netpoller would set O_NONBLOCK),
// and their file type.
func (c *fdConn) PathCounters() pathCounters {
	pc := pathCounters{
		"write_calls": c.writeCalls, "write_bytes": c.writeBytes,
		"read_calls": c.readCalls, "read_bytes": c.readBytes,
		"nonblocking_fds": 0, "fd_type": fdType(c.rfd),
	}
	if fdType(c.wfd) != pc["fd_type"] {
		pc["fd_type"] = -1 // the two directions differ
	}
	for _, fd := range slices.Compact([]int{c.rfd, c.wfd}) {
		if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK != 0 {
			pc["nonblocking_fds"]++
		}
	}
	if c.extra != nil {
		maps.Copy(pc, c.extra())
	}
	return pc
}

// fdType returns the S_IFMT bits of fd's file type, or -1.
func fdType(fd int) int64 {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return -1
	}
	return int64(st.Mode & unix.S_IFMT)
}

// checkFDPath checks that every message crossed the descriptors of an
// fdConn pair in blocking calls: each side's descriptors are of fdType and
// blocking, and each side read exactly the bytes the other wrote for the
// harness. more adds mechanism-specific checks.
func checkFDPath(r pathRun, fdType uint32, more func(*counterChecks)) (string, error) {
	var c counterChecks
	down, up := int64(r.ToChild*r.Size), int64(r.ToParent*r.Size)
	parent, child := r.sides()[0], r.sides()[1]
	c.equal(parent, "write_bytes", down)
	c.equal(child, "read_bytes", down)
	c.equal(child, "write_bytes", up)
	c.equal(parent, "read_bytes", up)
	for _, s := range r.sides() {
		c.equal(s, "nonblocking_fds", 0)
		c.equal(s, "fd_type", int64(fdType))
	}
	if more != nil {
		more(&c)
	}
	calls := r.Parent["write_calls"] + r.Parent["read_calls"] + r.Child["write_calls"] + r.Child["read_calls"]
	return fmt.Sprintf("blocking, %s syscalls/msg", perMessage(calls, r.ToChild)), c.err()
}

func (c *fdConn) Close() error {
	err := unix.Close(c.rfd)
	if c.wfd != c.rfd {
		err = errors.Join(err, unix.Close(c.wfd))
	}
	return err
}

// fileFromFD wraps a raw descriptor for cmd.ExtraFiles without making it
// non-blocking (os.NewFile leaves a blocking descriptor blocking).
func fileFromFD(fd int, name string) *os.File {
	return os.NewFile(uintptr(fd), name)
}

// fdsOf takes the raw descriptors out of inherited files: it duplicates each
// and closes the *os.File, so fdConn alone owns what it closes.
func fdsOf(files []*os.File, want int) ([]int, error) {
	if len(files) != want {
		return nil, fmt.Errorf("got %d inherited files, want %d", len(files), want)
	}
	fds := make([]int, 0, len(files))
	for _, f := range files {
		fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			closeFDs(fds...)
			return nil, fmt.Errorf("dup %s: %w", f.Name(), err)
		}
		f.Close()
		fds = append(fds, fd)
	}
	return fds, nil
}

// closeFDs closes descriptors on a setup error path.
func closeFDs(fds ...int) {
	for _, fd := range fds {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}
