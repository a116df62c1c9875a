package main

import (
	"errors"
	"fmt"
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
		Config: []Setting{
			{Name: "channels", Value: fmt.Sprintf("buffered, %d deep per direction, buffers recycled through a free list", goChanDepth),
				Why: "a reference for two goroutines of one process; recycling keeps the copy in and out without allocating, as the IPC rows do"},
		},
		GOMAXPROCSWhy: "Go's default lets the two goroutines run on two CPUs at once, as the two processes of the other rows do",
		CheckPath: func(r pathRun) (string, error) {
			var c counterChecks
			parent, child := r.sides()[0], r.sides()[1]
			c.equal(parent, "sends", int64(r.ToChild))
			c.equal(child, "receives", int64(r.ToChild))
			c.equal(child, "sends", int64(r.ToParent))
			c.equal(parent, "receives", int64(r.ToParent))
			return "in-process channels", c.err()
		},
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

// chanConn counts its messages for the path check; the counters belong to
// the goroutine driving the Conn.
type chanConn struct {
	out, in         *chanPipe
	sends, receives int64
}

// PathCounters reports the messages this end moved.
func (c *chanConn) PathCounters() pathCounters {
	return pathCounters{"sends": c.sends, "receives": c.receives}
}

func (c *chanConn) Send(msg []byte) error {
	var b []byte
	select {
	case b = <-c.out.free:
	case <-c.out.closed:
		return io.ErrClosedPipe
	}
	copy(b, msg)
	c.out.data <- b
	c.sends++
	return nil
}

func (c *chanConn) Recv(buf []byte) error {
	select {
	case b := <-c.in.data:
		copy(buf, b)
		c.in.free <- b
		c.receives++
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
