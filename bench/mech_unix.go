package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

const (
	sockStream    = unix.SOCK_STREAM
	sockDgram     = unix.SOCK_DGRAM
	sockSeqpacket = unix.SOCK_SEQPACKET
)

// unixSocketMechanism uses a socketpair(AF_UNIX) of the given type.
type unixSocketMechanism struct {
	name     string
	sockType int
}

func (m unixSocketMechanism) Name() string { return m.name }

func (m unixSocketMechanism) Check(size int) error { return nil }

func (m unixSocketMechanism) Setup(size int) (*Link, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, m.sockType|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	if m.sockType != sockStream {
		// A datagram must fit the send buffer whole; make room for a few
		// in flight at the largest size.
		for _, fd := range fds {
			if err := growSocketBuffers(fd, size); err != nil {
				closeFDs(fds[:]...)
				return nil, err
			}
		}
	}
	stream := m.sockType == sockStream
	return &Link{
		ChildFiles: []*os.File{fileFromFD(fds[1], m.name)},
		OpenParent: func() (Conn, error) {
			return &fdConn{rfd: fds[0], wfd: fds[0], stream: stream}, nil
		},
	}, nil
}

func (m unixSocketMechanism) Attach(_ string, files []*os.File, size int) (Conn, error) {
	fds, err := fdsOf(files, 1)
	if err != nil {
		return nil, err
	}
	return &fdConn{rfd: fds[0], wfd: fds[0], stream: m.sockType == sockStream}, nil
}

// growSocketBuffers asks for buffers of at least four messages; the kernel
// caps the request at net.core.[rw]mem_max, which is fine for our sizes.
func growSocketBuffers(fd, size int) error {
	want := 4 * (size + 512)
	for _, opt := range []int{unix.SO_SNDBUF, unix.SO_RCVBUF} {
		cur, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, opt)
		if err != nil {
			return fmt.Errorf("getsockopt: %w", err)
		}
		if cur < want {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt, want); err != nil {
				return fmt.Errorf("setsockopt: %w", err)
			}
		}
	}
	return nil
}
