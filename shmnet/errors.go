package shmnet

import (
	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/spsc"
)

// Errors of this package. Calls on a Conn return *net.OpError values
// wrapping them (or os.ErrDeadlineExceeded, net.ErrClosed, or a queue
// error); test them with errors.Is. Read returns io.EOF unwrapped, as
// net.Conn does.
var (
	// ErrPeerDead: the peer process died without closing the connection.
	ErrPeerDead = spsc.ErrPeerDead
	// ErrPeerClosed: the peer closed its reading side and the ring stayed
	// full. It matches syscall.EPIPE, as a write to a closed socket does.
	ErrPeerClosed = alias("shmnet: peer closed the connection", errEPIPE)
	// ErrRefused: the listener refused the connection (the reason follows
	// in the error text). It matches syscall.ECONNREFUSED, which Dial also
	// returns, wrapped, when no listener has the name.
	ErrRefused = alias("shmnet: connection refused", errECONNREFUSED)
	// ErrPermission: the process at the other end of the rendezvous runs
	// under a uid that Authorize does not accept. It is ring.ErrPermission,
	// which matches fs.ErrPermission.
	ErrPermission = ring.ErrPermission
	// ErrBadName: a listener name outside the rules of Listen.
	ErrBadName = ring.ErrBadName
	// ErrUnsupported: the platform lacks abstract Unix sockets or memfds.
	ErrUnsupported = ring.ErrUnsupported
)

// aliasError is a sentinel that also matches a standard sentinel under
// errors.Is, without taking its text.
type aliasError struct {
	msg string
	std error
}

func alias(msg string, std error) error { return &aliasError{msg, std} }

func (e *aliasError) Error() string        { return e.msg }
func (e *aliasError) Is(target error) bool { return target == e.std }
