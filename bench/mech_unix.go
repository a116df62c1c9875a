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
	bufWhy := whyKernelDefault
	if m.sockType != sockStream {
		// A datagram must fit the send buffer whole; make room for a few
		// in flight at the largest size.
		for _, fd := range fds {
			if err := growSocketBuffers(fd, size); err != nil {
				closeFDs(fds[:]...)
				return nil, err
			}
		}
		bufWhy = "the kernel's default, raised where needed to hold four messages: a datagram must fit the send buffer whole"
	}
	sndbuf, err1 := unix.GetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_SNDBUF)
	rcvbuf, err2 := unix.GetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_RCVBUF)
	if err1 != nil || err2 != nil {
		closeFDs(fds[:]...)
		return nil, fmt.Errorf("getsockopt: %v %v", err1, err2)
	}
	stream := m.sockType == sockStream
	return &Link{
		ChildFiles: []*os.File{fileFromFD(fds[1], m.name)},
		OpenParent: func() (Conn, error) {
			return &fdConn{rfd: fds[0], wfd: fds[0], stream: stream, extra: socketCounters(fds[0])}, nil
		},
		Config: []Setting{
			{Name: "objects", Value: "socketpair(AF_UNIX, " + sockTypeName(m.sockType) + "), one end inherited by the child",
				Why: "a connected pair needs no path or listener; the data path is the same as for a named socket"},
			{Name: "SO_SNDBUF / SO_RCVBUF", Value: fmt.Sprintf("%s send, %s receive (read back)", sizeSetting(sndbuf), sizeSetting(rcvbuf)), Why: bufWhy},
			{Name: "I/O", Value: "blocking read(2)/write(2)", Why: whyBlockingIO},
		},
		GOMAXPROCSWhy: whyDefaultProcs,
		CheckPath: func(r pathRun) (string, error) {
			return checkFDPath(r, unix.S_IFSOCK, func(c *counterChecks) {
				for _, s := range r.sides() {
					c.equal(s, "so_domain", unix.AF_UNIX)
					c.equal(s, "so_type", int64(m.sockType))
				}
			})
		},
	}, nil
}

func (m unixSocketMechanism) Attach(_ string, files []*os.File, size int) (Conn, error) {
	fds, err := fdsOf(files, 1)
	if err != nil {
		return nil, err
	}
	return &fdConn{rfd: fds[0], wfd: fds[0], stream: m.sockType == sockStream, extra: socketCounters(fds[0])}, nil
}

// socketCounters reads back a socket's domain, type and buffer sizes.
func socketCounters(fd int) func() pathCounters {
	return func() pathCounters {
		pc := pathCounters{}
		for name, opt := range map[string]int{"so_domain": unix.SO_DOMAIN, "so_type": unix.SO_TYPE,
			"so_sndbuf": unix.SO_SNDBUF, "so_rcvbuf": unix.SO_RCVBUF} {
			v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, opt)
			if err != nil {
				v = -1
			}
			pc[name] = int64(v)
		}
		return pc
	}
}

func sockTypeName(t int) string {
	switch t {
	case sockStream:
		return "SOCK_STREAM"
	case sockDgram:
		return "SOCK_DGRAM"
	case sockSeqpacket:
		return "SOCK_SEQPACKET"
	}
	return fmt.Sprint(t)
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
