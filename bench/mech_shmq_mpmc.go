package main

import (
	"context"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/mpmc"
	"github.com/shmq/shmq/ring"
)

// shmqMPMCMechanism carries messages over two shmq MPMC queues in memfd
// segments, one per direction, inherited by the child, as shmqSPSCMechanism
// does with SPSC queues. The harness is 1:1, so each queue has exactly one
// producer and one consumer process: this measures what the multi-producer,
// multi-consumer protocol costs on the single-pair path, not its scaling.
type shmqMPMCMechanism struct {
	name   string
	locked bool // mpmc.Config.Locked: semaphores and robust mutexes
}

var (
	// The lock-free Vyukov ring with the default wait policy (spin briefly,
	// then park on a futex).
	shmqMPMCDefault = shmqMPMCMechanism{name: "shmq-mpmc"}
	// Locked mode: a bounded buffer guarded by semaphores and robust
	// mutexes (system calls on every operation).
	shmqMPMCLocked = shmqMPMCMechanism{name: "shmq-mpmc-locked", locked: true}
)

// mpmcMaxMessage is the largest payload an MPMC slot can hold.
const mpmcMaxMessage = layout.MaxSlotSize - layout.SlotHeaderSize

// mpmcMaxRing bounds the slot array of one queue; the slot count shrinks
// (down to mpmcMinSlots) for large messages to stay under it.
const (
	mpmcSlots    = 1024
	mpmcMinSlots = 16
	mpmcMaxRing  = 4 << 20
)

func (m shmqMPMCMechanism) Name() string { return m.name }

// Patterns: the lock-free queue also runs the MPMC shapes (shape.go).
func (m shmqMPMCMechanism) Patterns() []string {
	if m.locked {
		return []string{patternPingPong, patternStream}
	}
	return []string{patternPingPong, patternStream, patternShape}
}

func (m shmqMPMCMechanism) Check(size int) error {
	if size > mpmcMaxMessage {
		return fmt.Errorf("message of %d B exceeds the MPMC slot payload limit of %d B", size, mpmcMaxMessage)
	}
	return nil
}

// mpmcConfig sizes a queue for messages of size bytes: 1024 slots, fewer
// for large messages so one ring stays within a few MiB.
func (m shmqMPMCMechanism) mpmcConfig(size int) mpmc.Config {
	slotSize := uint64(size+layout.SlotHeaderSize+layout.SlotAlign-1) / layout.SlotAlign * layout.SlotAlign
	slots := uint64(mpmcSlots)
	for slots > mpmcMinSlots && slots*slotSize > mpmcMaxRing {
		slots >>= 1
	}
	return mpmc.Config{Slots: slots, MaxMessage: uint32(size), Locked: m.locked}
}

func (m shmqMPMCMechanism) Setup(size int) (*Link, error) {
	if err := m.Check(size); err != nil {
		return nil, err
	}
	cfg := m.mpmcConfig(size)
	toChild, err := mpmc.Create(ring.Memfd("bench-mpmc-to-child"), cfg)
	if err != nil {
		return nil, err
	}
	toParent, err := mpmc.Create(ring.Memfd("bench-mpmc-to-parent"), cfg)
	if err != nil {
		toChild.Close()
		return nil, err
	}
	// The harness closes ChildFiles once the child has them; hand it
	// duplicates so the parent's segments stay open.
	var files []*os.File
	for _, q := range []*mpmc.Queue{toChild, toParent} {
		fd, err := unix.Dup(q.Segment().Fd())
		if err != nil {
			toChild.Close()
			toParent.Close()
			closeFiles(files)
			return nil, fmt.Errorf("dup: %w", err)
		}
		files = append(files, os.NewFile(uintptr(fd), "shmq-mpmc-segment"))
	}
	mode := "lock-free (Vyukov) slots, the default wait (adaptive spin of up to 20 µs, then park on a futex)"
	if m.locked {
		mode = "locked: semaphores and robust mutexes (mpmc.Config{Locked: true})"
	}
	return &Link{
		ChildFiles: files,
		OpenParent: func() (Conn, error) { return newShmqMPMCConn(toChild, toParent) },
		Cleanup:    func() { toChild.Close(); toParent.Close() },
		Config: []Setting{
			{Name: "ring", Value: fmt.Sprintf("%d slots", cfg.Slots),
				Why: "one queue per direction in a memfd segment inherited by the child, MaxMessage the message size; 1024 slots, fewer for large messages so one ring stays within 4 MiB"},
			{Name: "mode", Value: mode, Why: "the variant this row measures; one producer and one consumer process per queue"},
		},
		GOMAXPROCSWhy: "one goroutine per process; it spins, then parks with a raw system call, so the scheduler is not on the path",
		CheckPath: func(r pathRun) (string, error) {
			var c counterChecks
			var wakes uint64
			for _, q := range []struct {
				name string
				q    *mpmc.Queue
				msgs int
			}{{"to-child", toChild, r.ToChild}, {"to-parent", toParent, r.ToParent}} {
				if q.q.Locked() != m.locked {
					c.failf("%s locked mode is %v, want %v", q.name, q.q.Locked(), m.locked)
				}
				st, err := q.q.Stats()
				if err != nil {
					c.failf("%s stats: %v", q.name, err)
					continue
				}
				var prod, cons ring.EntryInfo
				var nprod, ncons int
				for _, e := range st.Entries {
					wakes += e.Wakes
					switch e.Role {
					case layout.RoleProducer:
						prod, nprod = e, nprod+1
					case layout.RoleConsumer:
						cons, ncons = e, ncons+1
					}
				}
				if nprod != 1 || ncons != 1 {
					c.failf("%s had %d producers and %d consumers, want one of each", q.name, nprod, ncons)
					continue
				}
				checkEntry(&c, q.name+" producer", prod, q.msgs, r.Size)
				checkEntry(&c, q.name+" consumer", cons, q.msgs, r.Size)
			}
			return fmt.Sprintf("registry counts agree, %s wakes/msg", perMessage(int64(wakes), r.ToChild)), c.err()
		},
	}, nil
}

func (m shmqMPMCMechanism) Attach(_ string, files []*os.File, size int) (Conn, error) {
	fds, err := fdsOf(files, 2)
	if err != nil {
		return nil, err
	}
	defer closeFDs(fds...) // Open reopens each through /proc: the queues keep their own
	ctx := context.Background()
	in, err := mpmc.Open(ctx, ring.FD(fds[0]), nil)
	if err != nil {
		return nil, err
	}
	out, err := mpmc.Open(ctx, ring.FD(fds[1]), nil)
	if err != nil {
		in.Close()
		return nil, err
	}
	if in.Locked() != m.locked || out.Locked() != m.locked {
		in.Close()
		out.Close()
		return nil, fmt.Errorf("queue locked mode is %v, want %v", in.Locked(), m.locked)
	}
	if in.MaxMessage() < size || out.MaxMessage() < size {
		in.Close()
		out.Close()
		return nil, fmt.Errorf("queue holds %d-byte messages, want %d", min(in.MaxMessage(), out.MaxMessage()), size)
	}
	conn, err := newShmqMPMCConn(out, in)
	if err != nil {
		in.Close()
		out.Close()
		return nil, err
	}
	return conn, nil
}

// shmqMPMCConn is one producer on the outgoing queue and one consumer on
// the incoming one. Close detaches both; the queues stay mapped until the
// parent's Cleanup (or the child's exit).
type shmqMPMCConn struct {
	out, in *mpmc.Queue
	p       *mpmc.Producer
	c       *mpmc.Consumer
}

func newShmqMPMCConn(out, in *mpmc.Queue) (*shmqMPMCConn, error) {
	p, err := out.Producer()
	if err != nil {
		return nil, err
	}
	c, err := in.Consumer()
	if err != nil {
		p.Close()
		return nil, err
	}
	return &shmqMPMCConn{out: out, in: in, p: p, c: c}, nil
}

func (s *shmqMPMCConn) Send(msg []byte) error { return s.p.Send(context.Background(), msg) }

func (s *shmqMPMCConn) Recv(buf []byte) error {
	n, err := s.c.Recv(context.Background(), buf)
	if err != nil {
		return err
	}
	if n != len(buf) {
		return fmt.Errorf("shmq-mpmc: received %d bytes, want %d", n, len(buf))
	}
	return nil
}

func (s *shmqMPMCConn) Close() error {
	s.p.Close()
	s.c.Close()
	return nil
}
