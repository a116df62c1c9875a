package shmnet

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// The handshake, over the rendezvous socket: the dialer sends hello with
// the descriptors of its two queues (client-to-server first) as SCM_RIGHTS;
// the listener answers replyOK once it has attached its ends, or
// replyRefused followed by the reason. Both then close the socket.
const (
	hello        = "shmq-net/1"
	replyOK      = "ok"
	replyRefused = "refused: "
	maxReply     = 512
)

// authorized applies an Authorize function; nil trusts only this
// process's effective uid.
func authorized(auth func(uid uint32) bool, uid uint32) bool {
	if auth == nil {
		return uid == uint32(os.Geteuid())
	}
	return auth(uid)
}

// sendHello sends hello and the queues' descriptors.
func sendHello(s *net.UnixConn, fds ...int) error {
	_, _, err := s.WriteMsgUnix([]byte(hello), unix.UnixRights(fds...), nil)
	return err
}

// errHandshake describes a malformed hello.
var errHandshake = errors.New("shmnet: malformed handshake")

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

// recvReply reads the listener's answer: nil for replyOK, or an error
// wrapping ErrRefused with the reason.
func recvReply(s *net.UnixConn) error {
	buf := make([]byte, maxReply)
	n, err := s.Read(buf)
	if err != nil {
		return err
	}
	switch reply := string(buf[:n]); {
	case reply == replyOK:
		return nil
	case strings.HasPrefix(reply, replyRefused):
		return fmt.Errorf("%w: %s", ErrRefused, strings.TrimPrefix(reply, replyRefused))
	default:
		return fmt.Errorf("%w: %w: reply %q", ErrRefused, errHandshake, reply)
	}
}

// sendRefusal tells a dialer why its connection was refused.
func sendRefusal(s *net.UnixConn, why error) {
	msg := replyRefused + why.Error()
	if len(msg) > maxReply {
		msg = msg[:maxReply]
	}
	s.Write([]byte(msg))
}
