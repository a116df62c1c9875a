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
	return &Link{
		ChildFiles: []*os.File{fileFromFD(b, "tcp-child")},
		OpenParent: func() (Conn, error) { return &fdConn{rfd: a, wfd: a, stream: true}, nil },
	}, nil
}

func (tcpLoopbackMechanism) Attach(_ string, files []*os.File, size int) (Conn, error) {
	fds, err := fdsOf(files, 1)
	if err != nil {
		return nil, err
	}
	return &fdConn{rfd: fds[0], wfd: fds[0], stream: true}, nil
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
