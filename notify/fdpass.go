//go:build unix

package notify

import (
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// SendFD sends a duplicate of fd to the peer of conn as SCM_RIGHTS ancillary
// data, with a one-byte payload. The caller keeps ownership of fd.
func SendFD(conn *net.UnixConn, fd int) error {
	if _, _, err := conn.WriteMsgUnix([]byte{0}, unix.UnixRights(fd), nil); err != nil {
		return fmt.Errorf("notify: send fd: %w", err)
	}
	return nil
}

// errNoFD reports a message that carried no descriptor.
var errNoFD = errors.New("notify: receive fd: message carries no descriptor")

// RecvFD receives one descriptor sent with SendFD and returns it, marked
// close-on-exec; the caller owns it. Extra descriptors in the same message
// are closed.
func RecvFD(conn *net.UnixConn) (int, error) {
	var b [1]byte
	oob := make([]byte, unix.CmsgSpace(4*4))
	_, oobn, _, _, err := conn.ReadMsgUnix(b[:], oob)
	if err != nil {
		return -1, fmt.Errorf("notify: receive fd: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return -1, fmt.Errorf("notify: receive fd: %w", err)
	}
	fd := -1
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, f := range fds {
			if fd < 0 {
				fd = f
				unix.CloseOnExec(f)
			} else {
				unix.Close(f)
			}
		}
	}
	if fd < 0 {
		return -1, errNoFD
	}
	return fd, nil
}
