//go:build !unix

package shmnet

import "net"

// Without SCM_RIGHTS there is no handshake; socketAddr fails before it.

func sendHello(*net.UnixConn, ...int) error { return ErrUnsupported }

func recvHello(*net.UnixConn) ([]int, error) { return nil, ErrUnsupported }

func closeFDs([]int) {}
