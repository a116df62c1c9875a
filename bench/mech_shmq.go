package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmq/shmq/notify"
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
	config := []Setting{
		{Name: "ring", Value: sizeSetting(int(cfg.Capacity)),
			Why: "one queue per direction in a memfd segment inherited by the child; 1 MiB, doubled until eight messages fit, so a streaming producer rarely waits"},
		{Name: "wait", Value: waitPolicyText(m.wait), Why: "the variant this row measures"},
	}
	if m.cPeer {
		config = append(config, Setting{Name: "peer", Value: "cpeer/peer.c over layout/shmq.h, cc -O2",
			Why: "the same queues driven from C, with the parent's side the default"})
	}
	spin := m.wait.Spin >= time.Hour
	return &Link{
		ChildProgram:  program,
		ChildFiles:    files,
		OpenParent:    func() (Conn, error) { return newShmqConn(toChild, toParent) },
		Cleanup:       func() { toChild.Close(); toParent.Close() },
		Config:        config,
		GOMAXPROCSWhy: "one goroutine per process; it spins, then parks on a futex with a raw system call, so the scheduler is not on the path",
		CheckPath: func(r pathRun) (string, error) {
			var c counterChecks
			var waits, wakes uint64
			for _, q := range []struct {
				name string
				q    *spsc.Queue
				msgs int
			}{{"to-child", toChild, r.ToChild}, {"to-parent", toParent, r.ToParent}} {
				st, err := q.q.Stats()
				if err != nil {
					c.failf("%s stats: %v", q.name, err)
					continue
				}
				checkEntry(&c, q.name+" producer", st.Producer, q.msgs, r.Size)
				checkEntry(&c, q.name+" consumer", st.Consumer, q.msgs, r.Size)
				waits += st.Producer.Waits + st.Consumer.Waits
				wakes += st.Producer.Wakes + st.Consumer.Wakes
			}
			if spin && waits != 0 {
				c.failf("a side that should only spin parked %d times", waits)
			}
			return fmt.Sprintf("registry counts agree, %s futex wakes/msg", perMessage(int64(wakes), r.ToChild)), c.err()
		},
	}, nil
}

// checkEntry checks that a registry entry moved msgs messages of size bytes.
func checkEntry(c *counterChecks, name string, e ring.EntryInfo, msgs, size int) {
	if e.Messages != uint64(msgs) || e.Bytes != uint64(msgs*size) {
		c.failf("%s moved %d messages, %d bytes; want %d, %d", name, e.Messages, e.Bytes, msgs, msgs*size)
	}
}

// waitPolicyText describes a wait policy for the configuration table.
func waitPolicyText(w spsc.Wait) string {
	switch {
	case w.Spin < 0:
		return "park on a futex at once"
	case w.Spin >= time.Hour:
		return "spin, never park"
	case w.Spin == 0:
		return fmt.Sprintf("spin %v (the default), then park on a futex", notify.DefaultSpin)
	}
	return fmt.Sprintf("spin %v, then park on a futex", w.Spin)
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
