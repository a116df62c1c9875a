//go:build unix

package shmnet

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// sendHello sends hello and the queues' descriptors.
func sendHello(s *net.UnixConn, fds ...int) error {
	_, _, err := s.WriteMsgUnix([]byte(hello), unix.UnixRights(fds...), nil)
	return err
}

// recvHello receives a dialer's hello and returns its descriptors, which
// the caller must close.
func recvHello(s *net.UnixConn) ([]int, error) {
	buf := make([]byte, len(hello)+1)
	oob := make([]byte, unix.CmsgSpace(4*4)) // room to notice extras
	n, oobn, flags, _, err := s.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errHandshake, err)
	}
	for _, m := range msgs {
		if got, err := unix.ParseUnixRights(&m); err == nil {
			fds = append(fds, got...)
		}
	}
	switch {
	case string(buf[:n]) != hello || flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0:
		err = fmt.Errorf("%w: hello %q", errHandshake, buf[:n])
	case len(fds) != 2:
		err = fmt.Errorf("%w: %d descriptors, want 2", errHandshake, len(fds))
	}
	if err != nil {
		closeFDs(fds)
		return nil, err
	}
	return fds, nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
