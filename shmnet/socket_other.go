//go:build !linux

package shmnet

import (
	"fmt"
	"net"
	"runtime"
)

func socketAddr(string) (*net.UnixAddr, error) {
	return nil, fmt.Errorf("%w: shmnet needs abstract Unix sockets and memfds (Linux), not %s", ErrUnsupported, runtime.GOOS)
}

func peerCred(*net.UnixConn) (uint32, int, error) { return 0, 0, ErrUnsupported }
