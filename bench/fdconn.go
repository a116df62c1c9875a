package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// fdConn moves messages over raw blocking descriptors with plain
// read/write syscalls, so the numbers show the kernel path rather than Go's
// netpoller. Stream descriptors (pipes, stream sockets) may split a message,
// so they loop; message descriptors must deliver it whole.
type fdConn struct {
	rfd, wfd int
	stream   bool
}

func (c *fdConn) Send(msg []byte) error {
	for len(msg) > 0 {
		n, err := unix.Write(c.wfd, msg)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
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
	}
	return nil
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
