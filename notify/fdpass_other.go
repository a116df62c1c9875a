//go:build !unix

package notify

import (
	"errors"
	"fmt"
	"net"
	"runtime"
)

// SendFD would pass a descriptor over conn; this system has no SCM_RIGHTS,
// so it fails with an error wrapping errors.ErrUnsupported.
func SendFD(*net.UnixConn, int) error {
	return fmt.Errorf("notify: send fd: %w on %s", errors.ErrUnsupported, runtime.GOOS)
}

// RecvFD fails like SendFD.
func RecvFD(*net.UnixConn) (int, error) {
	return -1, fmt.Errorf("notify: receive fd: %w on %s", errors.ErrUnsupported, runtime.GOOS)
}
