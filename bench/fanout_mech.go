package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmq/shmq/pubsub"
	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/spsc"
)

// Fan-out mechanisms: one publisher in this process, n subscriber
// processes, each of which must receive every message. They are what a
// user has for it today (one SPSC queue or one Unix socket per subscriber,
// the publisher copying each message n times) and package pubsub (one ring,
// written once, read by all).

// fanoutMechanism is one way to deliver every message to n subscribers.
type fanoutMechanism interface {
	Name() string
	// Setup creates the objects for n subscribers of messages of size
	// bytes: what each subscriber process inherits, and the publisher.
	Setup(n, size int) (*fanoutLink, error)
	// Attach runs in a subscriber process and rebuilds its end from the
	// files it inherited; it is attached (it will receive every message
	// published from now on) when Attach returns.
	Attach(files []*os.File, size int) (Conn, error)
}

// fanoutLink is the publisher's side of one run.
type fanoutLink struct {
	ChildFiles [][]*os.File           // per subscriber; closed by the harness once the child has them
	Publish    func(msg []byte) error // delivers msg to every subscriber
	Close      func()
}

func registeredFanout() []fanoutMechanism {
	return []fanoutMechanism{fanoutPubSub{}, fanoutSPSC{}, fanoutUnix{}}
}

func lookupFanout(name string) (fanoutMechanism, error) {
	for _, m := range registeredFanout() {
		if m.Name() == name {
			return m, nil
		}
	}
	return nil, fmt.Errorf("unknown fan-out mechanism %q", name)
}

// dupFile returns a duplicate of fd as a file for cmd.ExtraFiles, so that
// the harness may close it without closing the original.
func dupFile(fd int, name string) (*os.File, error) {
	d, err := unix.Dup(fd)
	if err != nil {
		return nil, fmt.Errorf("dup: %w", err)
	}
	return os.NewFile(uintptr(d), name), nil
}

// fanoutPubSub is package pubsub with back-pressure and the default wait:
// one memfd segment that every subscriber inherits; the publisher writes
// each message once.
type fanoutPubSub struct{}

func (fanoutPubSub) Name() string { return "shmq-pubsub" }

func (fanoutPubSub) Setup(n, size int) (*fanoutLink, error) {
	q, err := pubsub.Create(ring.Memfd("bench-fanout"), pubsub.Config{Capacity: shmqCapacity(size)})
	if err != nil {
		return nil, err
	}
	p, err := q.Publisher()
	if err != nil {
		q.Close()
		return nil, err
	}
	link := &fanoutLink{
		Publish: func(msg []byte) error { return p.Send(context.Background(), msg) },
		Close:   func() { q.Close() },
	}
	for range n {
		f, err := dupFile(q.Segment().Fd(), "pubsub-segment")
		if err != nil {
			link.close()
			return nil, err
		}
		link.ChildFiles = append(link.ChildFiles, []*os.File{f})
	}
	return link, nil
}

func (fanoutPubSub) Attach(files []*os.File, size int) (Conn, error) {
	fds, err := fdsOf(files, 1)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fds[0])
	q, err := pubsub.Open(context.Background(), ring.FD(fds[0]), nil)
	if err != nil {
		return nil, err
	}
	s, err := q.Subscriber(pubsub.FromNext)
	if err != nil {
		q.Close()
		return nil, err
	}
	return &subConn{q: q, s: s}, nil
}

// subConn is a subscriber as a receive-only Conn.
type subConn struct {
	q *pubsub.Queue
	s *pubsub.Subscriber
}

func (c *subConn) Send([]byte) error { return fmt.Errorf("a subscriber does not send") }

func (c *subConn) Recv(buf []byte) error {
	n, err := c.s.Recv(context.Background(), buf)
	if err != nil {
		return err
	}
	if n != len(buf) {
		return fmt.Errorf("pubsub: received %d bytes, want %d", n, len(buf))
	}
	return nil
}

func (c *subConn) Close() error { return c.q.Close() }

// fanoutSPSC is one SPSC queue per subscriber (memfd segments, default
// wait): the publisher copies each message into every queue.
type fanoutSPSC struct{}

func (fanoutSPSC) Name() string { return "shmq-spsc-per-subscriber" }

func (fanoutSPSC) Setup(n, size int) (*fanoutLink, error) {
	var qs []*spsc.Queue
	var ps []*spsc.Producer
	link := &fanoutLink{Close: func() {
		for _, q := range qs {
			q.Close()
		}
	}}
	for range n {
		q, err := spsc.Create(ring.Memfd("bench-fanout-spsc"), spsc.Config{Capacity: shmqCapacity(size)})
		if err != nil {
			link.close()
			return nil, err
		}
		qs = append(qs, q)
		p, err := q.Producer()
		if err != nil {
			link.close()
			return nil, err
		}
		ps = append(ps, p)
		f, err := dupFile(q.Segment().Fd(), "spsc-segment")
		if err != nil {
			link.close()
			return nil, err
		}
		link.ChildFiles = append(link.ChildFiles, []*os.File{f})
	}
	link.Publish = func(msg []byte) error {
		for _, p := range ps {
			if err := p.Send(context.Background(), msg); err != nil {
				return err
			}
		}
		return nil
	}
	return link, nil
}

func (fanoutSPSC) Attach(files []*os.File, size int) (Conn, error) {
	fds, err := fdsOf(files, 1)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fds[0])
	q, err := spsc.Open(context.Background(), ring.FD(fds[0]), nil)
	if err != nil {
		return nil, err
	}
	c, err := q.Consumer()
	if err != nil {
		q.Close()
		return nil, err
	}
	return &spscRecvConn{q: q, c: c}, nil
}

// spscRecvConn is an SPSC consumer as a receive-only Conn.
type spscRecvConn struct {
	q *spsc.Queue
	c *spsc.Consumer
}

func (c *spscRecvConn) Send([]byte) error { return fmt.Errorf("a subscriber does not send") }

func (c *spscRecvConn) Recv(buf []byte) error {
	n, err := c.c.Recv(context.Background(), buf)
	if err != nil {
		return err
	}
	if n != len(buf) {
		return fmt.Errorf("spsc: received %d bytes, want %d", n, len(buf))
	}
	return nil
}

func (c *spscRecvConn) Close() error { return c.q.Close() }

// fanoutUnix is one Unix stream socket pair per subscriber: the publisher
// writes each message to every socket (blocking write system calls).
type fanoutUnix struct{}

func (fanoutUnix) Name() string { return "unix-stream-per-subscriber" }

func (fanoutUnix) Setup(n, size int) (*fanoutLink, error) {
	var mine []int
	link := &fanoutLink{Close: func() { closeFDs(mine...) }}
	for range n {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			link.close()
			return nil, fmt.Errorf("socketpair: %w", err)
		}
		mine = append(mine, fds[0])
		link.ChildFiles = append(link.ChildFiles, []*os.File{fileFromFD(fds[1], "unix-subscriber")})
	}
	conns := make([]*fdConn, len(mine))
	for i, fd := range mine {
		conns[i] = &fdConn{rfd: fd, wfd: fd, stream: true}
	}
	link.Publish = func(msg []byte) error {
		for _, c := range conns {
			if err := c.Send(msg); err != nil {
				return err
			}
		}
		return nil
	}
	return link, nil
}

func (fanoutUnix) Attach(files []*os.File, size int) (Conn, error) {
	fds, err := fdsOf(files, 1)
	if err != nil {
		return nil, err
	}
	return &fdConn{rfd: fds[0], wfd: fds[0], stream: true}, nil
}

// close releases what Setup made, child files included, on an error path.
func (l *fanoutLink) close() {
	for _, fs := range l.ChildFiles {
		closeFiles(fs)
	}
	if l.Close != nil {
		l.Close()
	}
}

// fanoutTimeout bounds one run.
const fanoutTimeout = 2 * time.Minute
