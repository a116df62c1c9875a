package shmnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/spsc"
)

// Ring sizes of a connection's queues when the Dialer leaves them 0.
const (
	DefaultCapacity   = 256 << 10
	DefaultMaxMessage = 64 << 10
)

// A Dialer connects to listeners. The zero value is ready to use. The
// dialer creates both queues of a connection, so its settings size them.
type Dialer struct {
	// Capacity is the ring size of each direction, a power of two; 0
	// means DefaultCapacity. Each direction's ring is allocated in full
	// when the connection is made.
	Capacity uint64
	// MaxMessage is the largest message a Write is split into; 0 means
	// DefaultMaxMessage or the ring's limit (Capacity/2-8), whichever is
	// smaller.
	MaxMessage uint32
	// Wait tunes how this end's Reads and Writes wait.
	Wait spsc.Wait
	// Authorize decides whether the listener, running under effective uid
	// uid, may be sent the connection. Nil accepts only this process's
	// effective uid, so that another user's process squatting on the name
	// cannot receive the connection.
	Authorize func(uid uint32) bool
}

// Dial connects to the listener called name with a zero Dialer.
func Dial(ctx context.Context, name string) (*Conn, error) {
	var d Dialer
	return d.Dial(ctx, name)
}

// DialContext is Dial returning a net.Conn, in the shape that
// grpc.WithContextDialer and similar hooks take.
func (d *Dialer) DialContext(ctx context.Context, addr string) (net.Conn, error) {
	c, err := d.Dial(ctx, addr)
	if err != nil {
		return nil, err // not a nil *Conn in a non-nil interface
	}
	return c, nil
}

// Dial connects to the listener called name. ctx bounds the whole
// handshake; the connection outlives it. Errors are *net.OpError values:
// with no listener at name it wraps syscall.ECONNREFUSED, and a refusal by
// the listener wraps ErrRefused.
func (d *Dialer) Dial(ctx context.Context, name string) (*Conn, error) {
	raddr := &Addr{Name: name}
	c, err := d.dial(ctx, raddr)
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return nil, &net.OpError{Op: "dial", Net: Network, Addr: raddr, Err: err}
	}
	return c, nil
}

func (d *Dialer) dial(ctx context.Context, raddr *Addr) (_ *Conn, err error) {
	name, err := parseName(raddr.Name)
	if err != nil {
		return nil, err
	}
	raddr.Name = name
	sa, err := socketAddr(name)
	if err != nil {
		return nil, err
	}
	cfg := spsc.Config{Capacity: d.Capacity, MaxMessage: d.MaxMessage, Wait: d.Wait}
	if cfg.Capacity == 0 {
		cfg.Capacity = DefaultCapacity
	}
	if cfg.MaxMessage == 0 && cfg.Capacity >= 64 {
		cfg.MaxMessage = uint32(min(DefaultMaxMessage, cfg.Capacity/2-8))
	}
	// Each queue is a sealed memfd: no name to clean up, and its memory
	// goes when the last process holding it closes it or dies.
	out, err := spsc.Create(ring.Memfd("net-"+name+"-c2s"), cfg)
	if err != nil {
		return nil, err
	}
	in, err := spsc.Create(ring.Memfd("net-"+name+"-s2c"), cfg)
	if err != nil {
		out.Close()
		return nil, err
	}
	defer func() {
		if err != nil {
			in.Close()
			out.Close()
		}
	}()
	p, err := out.Producer()
	if err != nil {
		return nil, err
	}
	c, err := in.Consumer()
	if err != nil {
		return nil, err
	}

	var nd net.Dialer
	nc, err := nd.DialContext(ctx, sa.Net, sa.String())
	if err != nil {
		return nil, err
	}
	s := nc.(*net.UnixConn)
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		s.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { s.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	uid, pid, err := peerCred(s)
	if err != nil {
		return nil, err
	}
	if !authorized(d.Authorize, uid) {
		return nil, fmt.Errorf("%w: listener runs as uid %d", ErrPermission, uid)
	}
	serr := sendHello(s, out.Segment().Fd(), in.Segment().Fd())
	// Read the answer even if the send failed: a listener that refuses
	// before reading the hello (an untrusted uid) answers and hangs up.
	if err := recvReply(s); err != nil {
		switch {
		case errors.Is(err, ErrRefused):
		case serr != nil:
			err = serr
		case err == io.EOF:
			err = fmt.Errorf("%w: the listener hung up", ErrRefused)
		}
		return nil, err
	}
	local := &Addr{Name: name, PID: os.Getpid()}
	raddr.PID = pid
	return newConn(in, c, out, p, local, raddr), nil
}
