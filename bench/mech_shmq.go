package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/spsc"
)

// shmqSPSCMechanism carries messages over two shmq SPSC queues in memfd
// segments, one per direction, inherited by the child.
type shmqSPSCMechanism struct {
	name  string
	wait  spsc.Wait
	cPeer bool // the peer is the C program cpeer/peer.c over layout/shmq.h
}

var (
	// Spins without ever parking: the lowest latency, a core per waiting side.
	shmqSPSCSpin = shmqSPSCMechanism{name: "shmq-spsc-spin", wait: spsc.Wait{Spin: time.Hour}}
	// The default: spin briefly, then park on a futex.
	shmqSPSCDefault = shmqSPSCMechanism{name: "shmq-spsc"}
	// Parks on the futex at once whenever the queue is empty or full.
	shmqSPSCPark = shmqSPSCMechanism{name: "shmq-spsc-park", wait: spsc.Wait{Spin: -1}}
	// A C peer (cpeer/peer.c) on the same layout; this side is the default.
	shmqSPSCCPeer = shmqSPSCMechanism{name: "shmq-spsc-c-peer", cPeer: true}
)

func (m shmqSPSCMechanism) Name() string { return m.name }

func (m shmqSPSCMechanism) Check(size int) error {
	if m.cPeer {
		_, err := cPeerProgram()
		return err
	}
	return nil
}

func shmqCapacity(size int) uint64 {
	c := uint64(1 << 20)
	for c < 8*uint64(size+8) {
		c <<= 1
	}
	return c
}

func (m shmqSPSCMechanism) Setup(size int) (*Link, error) {
	cfg := spsc.Config{Capacity: shmqCapacity(size), Wait: m.wait}
	toChild, err := spsc.Create(ring.Memfd("bench-to-child"), cfg)
	if err != nil {
		return nil, err
	}
	toParent, err := spsc.Create(ring.Memfd("bench-to-parent"), cfg)
	if err != nil {
		toChild.Close()
		return nil, err
	}
	// The harness closes ChildFiles once the child has them; hand it
	// duplicates so the parent's segments stay open.
	var files []*os.File
	for _, q := range []*spsc.Queue{toChild, toParent} {
		fd, err := unix.Dup(q.Segment().Fd())
		if err != nil {
			toChild.Close()
			toParent.Close()
			closeFiles(files)
			return nil, fmt.Errorf("dup: %w", err)
		}
		files = append(files, os.NewFile(uintptr(fd), "shmq-segment"))
	}
	var program string
	if m.cPeer {
		if program, err = cPeerProgram(); err != nil {
			toChild.Close()
			toParent.Close()
			closeFiles(files)
			return nil, err
		}
	}
	return &Link{
		ChildProgram: program,
		ChildFiles:   files,
		OpenParent:   func() (Conn, error) { return newShmqConn(toChild, toParent) },
		Cleanup:      func() { toChild.Close(); toParent.Close() },
	}, nil
}

func (m shmqSPSCMechanism) Attach(_ string, files []*os.File, size int) (Conn, error) {
	fds, err := fdsOf(files, 2)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	in, err := spsc.Open(ctx, ring.FD(fds[0]), &spsc.Options{Wait: m.wait})
	if err != nil {
		return nil, err
	}
	out, err := spsc.Open(ctx, ring.FD(fds[1]), &spsc.Options{Wait: m.wait})
	if err != nil {
		in.Close()
		return nil, err
	}
	return newShmqConn(out, in)
}

type shmqConn struct {
	out, in *spsc.Queue
	p       *spsc.Producer
	c       *spsc.Consumer
}

func newShmqConn(out, in *spsc.Queue) (*shmqConn, error) {
	p, err := out.Producer()
	if err != nil {
		return nil, err
	}
	c, err := in.Consumer()
	if err != nil {
		return nil, err
	}
	return &shmqConn{out: out, in: in, p: p, c: c}, nil
}

func (s *shmqConn) Send(msg []byte) error { return s.p.Send(context.Background(), msg) }

func (s *shmqConn) Recv(buf []byte) error {
	n, err := s.c.Recv(context.Background(), buf)
	if err != nil {
		return err
	}
	if n != len(buf) {
		return fmt.Errorf("shmq: received %d bytes, want %d", n, len(buf))
	}
	return nil
}

func (s *shmqConn) Close() error {
	s.p.Close()
	s.c.Close()
	return nil
}

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}
