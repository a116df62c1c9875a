package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// tcpLoopbackMechanism connects two TCP sockets over 127.0.0.1 (never any
// other address) and hands one end to the child.
type tcpLoopbackMechanism struct{}

func (tcpLoopbackMechanism) Name() string         { return "tcp-loopback" }
func (tcpLoopbackMechanism) Check(size int) error { return nil }

func (tcpLoopbackMechanism) Setup(size int) (*Link, error) {
	a, b, err := tcpLoopbackPair()
	if err != nil {
		return nil, err
	}
	sndbuf, err1 := unix.GetsockoptInt(a, unix.SOL_SOCKET, unix.SO_SNDBUF)
	rcvbuf, err2 := unix.GetsockoptInt(a, unix.SOL_SOCKET, unix.SO_RCVBUF)
	if err1 != nil || err2 != nil {
		closeFDs(a, b)
		return nil, fmt.Errorf("getsockopt: %v %v", err1, err2)
	}
	return &Link{
		ChildFiles: []*os.File{fileFromFD(b, "tcp-child")},
		OpenParent: func() (Conn, error) { return &fdConn{rfd: a, wfd: a, stream: true, extra: tcpCounters(a)}, nil },
		Config: []Setting{
			{Name: "objects", Value: "a TCP connection over 127.0.0.1, one end inherited by the child",
				Why: "the loopback path every networked program can use"},
			{Name: "TCP_NODELAY", Value: "1 on both ends", Why: "without it Nagle's algorithm holds a small write back until the last one is acknowledged; latency-sensitive TCP programs set it"},
			{Name: "SO_SNDBUF / SO_RCVBUF", Value: fmt.Sprintf("%s send, %s receive at start, then autotuned", sizeSetting(sndbuf), sizeSetting(rcvbuf)), Why: whyKernelDefault},
			{Name: "I/O", Value: "blocking read(2)/write(2)", Why: whyBlockingIO},
		},
		GOMAXPROCSWhy: whyDefaultProcs,
		CheckPath: func(r pathRun) (string, error) {
			note, err := checkFDPath(r, unix.S_IFSOCK, func(c *counterChecks) {
				parent, child := r.sides()[0], r.sides()[1]
				// The kernel's own count of what arrived on each end.
				c.equal(child, "tcpi_bytes_received", int64(r.ToChild*r.Size))
				c.equal(parent, "tcpi_bytes_received", int64(r.ToParent*r.Size))
				for _, s := range r.sides() {
					c.equal(s, "so_domain", unix.AF_INET)
					c.equal(s, "tcp_nodelay", 1)
					c.equal(s, "peer_loopback", 1)
				}
			})
			return note + ", TCP_INFO agrees", err
		},
	}, nil
}

func (tcpLoopbackMechanism) Attach(_ string, files []*os.File, size int) (Conn, error) {
	fds, err := fdsOf(files, 1)
	if err != nil {
		return nil, err
	}
	return &fdConn{rfd: fds[0], wfd: fds[0], stream: true, extra: tcpCounters(fds[0])}, nil
}

// tcpCounters adds to socketCounters what TCP_INFO says arrived, whether
// Nagle is off, and whether the peer is 127.0.0.1.
func tcpCounters(fd int) func() pathCounters {
	return func() pathCounters {
		pc := socketCounters(fd)()
		pc["tcpi_bytes_received"], pc["tcp_nodelay"], pc["peer_loopback"] = -1, -1, 0
		if info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			pc["tcpi_bytes_received"] = int64(info.Bytes_received)
		}
		if v, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY); err == nil {
			pc["tcp_nodelay"] = int64(v)
		}
		if sa, err := unix.Getpeername(fd); err == nil {
			if in4, ok := sa.(*unix.SockaddrInet4); ok && in4.Addr == [4]byte{127, 0, 0, 1} {
				pc["peer_loopback"] = 1
			}
		}
		return pc
	}
}

// tcpLoopbackPair returns two connected, blocking, TCP_NODELAY sockets. The
// listener binds an ephemeral port on 127.0.0.1 and is closed right away.
func tcpLoopbackPair() (client, server int, err error) {
	loopback := &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}
	ln, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, -1, fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(ln)
	if err := unix.Bind(ln, loopback); err != nil {
		return -1, -1, fmt.Errorf("bind 127.0.0.1: %w", err)
	}
	if err := unix.Listen(ln, 1); err != nil {
		return -1, -1, fmt.Errorf("listen: %w", err)
	}
	addr, err := unix.Getsockname(ln)
	if err != nil {
		return -1, -1, fmt.Errorf("getsockname: %w", err)
	}
	client, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, -1, fmt.Errorf("socket: %w", err)
	}
	// The backlog completes the handshake, so connect returns before accept.
	if err := unix.Connect(client, addr); err != nil {
		unix.Close(client)
		return -1, -1, fmt.Errorf("connect %v: %w", addr, err)
	}
	server, _, err = unix.Accept4(ln, unix.SOCK_CLOEXEC)
	if err != nil {
		unix.Close(client)
		return -1, -1, fmt.Errorf("accept: %w", err)
	}
	for _, fd := range []int{client, server} {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
			closeFDs(client, server)
			return -1, -1, fmt.Errorf("TCP_NODELAY: %w", err)
		}
	}
	return client, server, nil
}
