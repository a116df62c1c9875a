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
	batch int  // messages per commit and per receive call (shmqBatchConn); 0: one at a time
}

var (
	// Spins without ever parking: the lowest latency, a core per waiting side.
	shmqSPSCSpin = shmqSPSCMechanism{name: "shmq-spsc-spin", wait: spsc.Wait{Spin: time.Hour}}
	// The default: spin adaptively (up to notify.DefaultSpin), then park on a futex.
	shmqSPSCDefault = shmqSPSCMechanism{name: "shmq-spsc"}
	// Parks on the futex at once whenever the queue is empty or full.
	shmqSPSCPark = shmqSPSCMechanism{name: "shmq-spsc-park", wait: spsc.Wait{Spin: -1}}
	// A C peer (cpeer/peer.c) on the same layout; this side is the default.
	shmqSPSCCPeer = shmqSPSCMechanism{name: "shmq-spsc-c-peer", cPeer: true}
	// The batch path: Reserve in place and one Commit per batch, receive
	// with TryRecvBatch; the default wait policy.
	shmqSPSCBatch = shmqSPSCMechanism{name: "shmq-spsc-batch", batch: shmqBatch}
)

// shmqBatch is how many messages shmq-spsc-batch commits at once, and
// receives per call at most.
const shmqBatch = 64

func (m shmqSPSCMechanism) Name() string { return m.name }

// Patterns: a batch only streams (a round trip is a batch of one).
func (m shmqSPSCMechanism) Patterns() []string {
	if m.batch > 0 {
		return []string{patternStream}
	}
	return []string{patternPingPong, patternStream}
}

// Scales: the default and the batch path are measured up to 1 MiB.
func (m shmqSPSCMechanism) Scales() bool { return m.name == shmqSPSCDefault.name || m.batch > 0 }

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
	if m.batch > 0 {
		config = append(config, Setting{Name: "batch", Value: fmt.Sprintf("%d messages", m.batch),
			Why: "below 256 KiB, Send stages each message privately and one SendBatch writes and commits the batch (as many as fit, then waits for room); from 256 KiB, Reserve fills each message in place and one Commit publishes the batch (earlier when the ring is full); the consumer takes up to a batch per TryRecvBatch"})
	}
	spin := m.wait.Spin >= time.Hour
	return &Link{
		ChildProgram:  program,
		ChildFiles:    files,
		OpenParent:    func() (Conn, error) { return m.newConn(toChild, toParent, size) },
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
		return fmt.Sprintf("the default: adaptive spin of up to %v, then park on a futex", notify.DefaultSpin)
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
	return m.newConn(out, in, size)
}

// newConn returns the Conn of this variant over the two queues.
func (m shmqSPSCMechanism) newConn(out, in *spsc.Queue, size int) (Conn, error) {
	c, err := newShmqConn(out, in)
	if err != nil {
		return nil, err
	}
	if m.batch <= 1 {
		return c, nil
	}
	b := &shmqBatchConn{shmqConn: c, batch: m.batch, size: size, inPlace: size >= stageMax, stage: make([]byte, m.batch*size)}
	if !b.inPlace {
		b.out, b.outMsgs = make([]byte, m.batch*size), make([][]byte, 0, m.batch)
	}
	b.take = b.stageMsg
	return b, nil
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

// shmqBatchConn is the batch path. Send copies each message into a
// private staging buffer and hands every batch messages to one SendBatch,
// which writes them into the ring in one loop and commits them with one
// store (waiting for room if the ring is full); Flush sends the rest.
// Messages of stageMax bytes or more are instead filled in place with
// Reserve and committed every batch messages (and whenever the ring is
// full). Recv hands out messages that one TryRecvBatch copied into a
// staging buffer; on an empty ring it waits in PeekWait, then takes that
// message and any that followed it in one TryRecvBatch.
//
// Staging costs a copy into memory this process alone touches; filling the
// ring with a Reserve call per small message instead streamed at about
// half the rate here: each store waiting behind a cache line on its way
// from the consumer holds a store-buffer slot, and a call per message
// (frame, spills, deferred exit) adds a dozen of them. For large messages
// the second copy costs more than the calls save.
type shmqBatchConn struct {
	*shmqConn
	batch, size int
	inPlace     bool     // fill the ring with Reserve: size >= stageMax
	pending     int      // reserved in place, not committed
	out         []byte   // staged messages to send, size bytes each
	outMsgs     [][]byte // the staged messages, as SendBatch takes them
	stage       []byte   // received messages, size bytes each
	next, n     int      // the next staged message to hand out, and how many are staged
	take        func([]byte) error
}

// stageMax is the message size from which shmq-spsc-batch fills the ring in
// place instead of staging (one run, 64 messages per batch: staging was
// ahead up to 64 KiB, even at 256 KiB, and behind at 1 MiB).
const stageMax = 256 << 10

func (s *shmqBatchConn) Send(msg []byte) error {
	if s.inPlace {
		return s.sendInPlace(msg)
	}
	k := len(s.outMsgs)
	o := s.out[k*s.size : (k+1)*s.size]
	copy(o, msg)
	if s.outMsgs = append(s.outMsgs, o); len(s.outMsgs) == s.batch {
		return s.Flush()
	}
	return nil
}

func (s *shmqBatchConn) sendInPlace(msg []byte) error {
	b, err := s.p.Reserve(len(msg))
	if err == spsc.ErrFull {
		if err := s.Flush(); err != nil {
			return err
		}
		b, err = s.p.ReserveWait(context.Background(), len(msg))
	}
	if err != nil {
		return err
	}
	copy(b, msg)
	if s.pending++; s.pending == s.batch {
		return s.Flush()
	}
	return nil
}

func (s *shmqBatchConn) Flush() error {
	if s.inPlace {
		s.pending = 0
		return s.p.Commit()
	}
	if len(s.outMsgs) == 0 {
		return nil
	}
	err := s.p.SendBatch(context.Background(), s.outMsgs)
	s.outMsgs = s.outMsgs[:0]
	return err
}

func (s *shmqBatchConn) Recv(buf []byte) error {
	if s.next == s.n {
		if err := s.fill(); err != nil {
			return err
		}
	}
	copy(buf, s.stage[s.next*s.size:(s.next+1)*s.size])
	s.next++
	return nil
}

// fill stages the next messages, waiting for one if there are none.
func (s *shmqBatchConn) fill() error {
	s.next, s.n = 0, 0
	_, err := s.c.TryRecvBatch(s.batch, s.take)
	if err != spsc.ErrEmpty {
		return err
	}
	m, err := s.c.PeekWait(context.Background())
	if err != nil {
		return err
	}
	if err := s.stageMsg(m); err != nil {
		return err
	}
	// Releases the peeked message along with those it takes.
	if _, err := s.c.TryRecvBatch(s.batch-1, s.take); err != nil && err != spsc.ErrEmpty {
		return err
	}
	return nil
}

func (s *shmqBatchConn) stageMsg(m []byte) error {
	if len(m) != s.size {
		return fmt.Errorf("shmq: received %d bytes, want %d", len(m), s.size)
	}
	copy(s.stage[s.n*s.size:], m)
	s.n++
	return nil
}
