package shmnet

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
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

// errHandshake describes a malformed hello.
var errHandshake = errors.New("shmnet: malformed handshake")

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
