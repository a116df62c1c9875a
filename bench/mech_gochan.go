package main

import (
	"errors"
	"io"
	"os"
)

// goChannelMechanism is an in-process reference: the peer is a goroutine,
// not a process. Buffers cycle through a free list so that, like the IPC
// mechanisms, a message is copied in and out without allocating.
type goChannelMechanism struct{}

const goChanDepth = 64

func (goChannelMechanism) Name() string         { return "go-chan (in-process)" }
func (goChannelMechanism) Check(size int) error { return nil }

func (goChannelMechanism) Setup(size int) (*Link, error) {
	toChild, toParent := newChanPipe(size), newChanPipe(size)
	return &Link{
		OpenParent:    func() (Conn, error) { return &chanConn{out: toChild, in: toParent}, nil },
		InProcessPeer: func() (Conn, error) { return &chanConn{out: toParent, in: toChild}, nil },
	}, nil
}

func (goChannelMechanism) Attach(string, []*os.File, int) (Conn, error) {
	return nil, errors.New("go-chan runs in-process only")
}

type chanPipe struct {
	data, free chan []byte
	closed     chan struct{}
}

func newChanPipe(size int) *chanPipe {
	p := &chanPipe{data: make(chan []byte, goChanDepth), free: make(chan []byte, goChanDepth), closed: make(chan struct{})}
	for range goChanDepth {
		p.free <- make([]byte, size)
	}
	return p
}

type chanConn struct{ out, in *chanPipe }

func (c *chanConn) Send(msg []byte) error {
	var b []byte
	select {
	case b = <-c.out.free:
	case <-c.out.closed:
		return io.ErrClosedPipe
	}
	copy(b, msg)
	c.out.data <- b
	return nil
}

func (c *chanConn) Recv(buf []byte) error {
	select {
	case b := <-c.in.data:
		copy(buf, b)
		c.in.free <- b
		return nil
	case <-c.in.closed:
		return io.ErrUnexpectedEOF
	}
}

// Close wakes a peer blocked on our outgoing pipe; it runs once per side.
func (c *chanConn) Close() error {
	close(c.out.closed)
	return nil
}
