package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// eventfdShmMechanism is the simplest shared-memory handoff: a bounded SPSC
// ring per direction in one memfd, with an eventfd to wake a sleeping peer.
// Peers only make a syscall when the other side announced it is asleep, so
// streaming mostly runs without any.
type eventfdShmMechanism struct{}

func (eventfdShmMechanism) Name() string         { return "eventfd-shm" }
func (eventfdShmMechanism) Check(size int) error { return nil }

// Ring header: each counter on its own cache line.
const (
	ringTailOff         = 0   // next slot the producer fills
	ringHeadOff         = 64  // next slot the consumer drains
	ringConsumerWaitOff = 128 // 1 while the consumer sleeps on dataFD
	ringProducerWaitOff = 192 // 1 while the producer sleeps on spaceFD
	ringHeaderSize      = 256
)

type shmRingGeometry struct{ slots, slotSize int }

func ringGeometry(size int) shmRingGeometry {
	slotSize := (size + 63) &^ 63
	return shmRingGeometry{slots: min(max((1<<20)/slotSize, 4), 256), slotSize: slotSize}
}

func (g shmRingGeometry) bytes() int { return ringHeaderSize + g.slots*g.slotSize }

func (eventfdShmMechanism) Setup(size int) (*Link, error) {
	g := ringGeometry(size)
	memfd, err := unix.MemfdCreate("shmq-bench-eventfd-shm", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	fds := []int{memfd}
	if err := unix.Ftruncate(memfd, int64(2*g.bytes())); err != nil {
		closeFDs(fds...)
		return nil, fmt.Errorf("ftruncate: %w", err)
	}
	// Two eventfds per ring: data (wakes the consumer), space (wakes the producer).
	for range 4 {
		efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
		if err != nil {
			closeFDs(fds...)
			return nil, fmt.Errorf("eventfd: %w", err)
		}
		fds = append(fds, efd)
	}
	files := make([]*os.File, len(fds))
	for i, fd := range fds {
		// The child gets its own copies; the parent keeps fds for its end.
		dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			closeFDs(fds...)
			return nil, fmt.Errorf("dup: %w", err)
		}
		files[i] = fileFromFD(dup, "eventfd-shm")
	}
	return &Link{
		ChildFiles: files,
		OpenParent: func() (Conn, error) { return newShmConn(fds, size, false) },
		Config: []Setting{
			{Name: "ring", Value: fmt.Sprintf("%d × %s slots", g.slots, sizeSetting(g.slotSize)),
				Why: "one ring per direction in one memfd, about 1 MiB each (at most 256 slots of the message rounded up to 64 B), the size of shmq's ring"},
			{Name: "wake", Value: "eventfd(2) write/read, only when the other side announced it sleeps",
				Why: "the textbook shared-memory hand-off: no system call while both sides are busy"},
		},
		GOMAXPROCSWhy: "one goroutine per process, which copies into the ring and sleeps in read(2) on an eventfd; the scheduler is not on the path",
		CheckPath:     checkShmRingPath,
	}, nil
}

// checkShmRingPath checks that every message went through the rings (their
// cursors in shared memory count exactly the harness's messages), that the
// wake descriptors are eventfds, and that no side slept without a wake.
func checkShmRingPath(r pathRun) (string, error) {
	var c counterChecks
	parent, child := r.sides()[0], r.sides()[1]
	// The parent reads both rings last, when both sides are done; the
	// child, when it is, reads the cursors it moved itself (the parent may
	// not have taken its last echo yet).
	c.equal(parent, "out_tail", int64(r.ToChild))
	c.equal(parent, "out_head", int64(r.ToChild))
	c.equal(parent, "in_tail", int64(r.ToParent))
	c.equal(parent, "in_head", int64(r.ToParent))
	c.equal(child, "out_tail", int64(r.ToParent))
	c.equal(child, "in_head", int64(r.ToChild))
	for _, s := range r.sides() {
		c.equal(s, "eventfds", 4)
		c.equal(s, "memfd", 1)
	}
	// A read of an eventfd takes every signal since the last one, so a
	// side cannot sleep more often than the other signalled.
	c.atMost(child, "sleeps", parent.pc["wakes_sent"])
	c.atMost(parent, "sleeps", child.pc["wakes_sent"])
	wakes := parent.pc["wakes_sent"] + child.pc["wakes_sent"]
	return fmt.Sprintf("ring cursors agree, %s eventfd wakes/msg", perMessage(wakes, r.ToChild)), c.err()
}

func (eventfdShmMechanism) Attach(_ string, files []*os.File, size int) (Conn, error) {
	fds, err := fdsOf(files, 5)
	if err != nil {
		return nil, err
	}
	return newShmConn(fds, size, true)
}

// shmConn sends on one ring and receives on the other; which is which
// depends on the side.
type shmConn struct {
	mem     []byte
	fds     []int
	out, in shmRing
	// wakes counts this side's eventfd signals and sleeps for the path
	// check; it belongs to the goroutine driving the Conn.
	wakes shmWakes
}

type shmWakes struct{ sent, sleeps int64 }

// PathCounters reports both rings' cursors as shared memory holds them,
// this side's wakes, and whether the descriptors are what they claim.
func (c *shmConn) PathCounters() pathCounters {
	pc := pathCounters{
		"out_tail": int64(c.out.word(ringTailOff).Load()), "out_head": int64(c.out.word(ringHeadOff).Load()),
		"in_tail": int64(c.in.word(ringTailOff).Load()), "in_head": int64(c.in.word(ringHeadOff).Load()),
		"wakes_sent": c.wakes.sent, "sleeps": c.wakes.sleeps,
		"memfd": int64(boolInt(strings.HasPrefix(fdLink(c.fds[0]), "/memfd:"))),
	}
	for _, fd := range c.fds[1:] {
		pc["eventfds"] += int64(boolInt(fdLink(fd) == "anon_inode:[eventfd]"))
	}
	return pc
}

// fdLink is what /proc says descriptor fd refers to.
func fdLink(fd int) string {
	l, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return ""
	}
	return l
}

func newShmConn(fds []int, size int, child bool) (*shmConn, error) {
	g := ringGeometry(size)
	mem, err := unix.Mmap(fds[0], 0, 2*g.bytes(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		closeFDs(fds...)
		return nil, fmt.Errorf("mmap: %w", err)
	}
	c := &shmConn{mem: mem, fds: fds}
	toChild := shmRing{mem: mem[:g.bytes()], geo: g, dataFD: fds[1], spaceFD: fds[2], wakes: &c.wakes}
	toParent := shmRing{mem: mem[g.bytes():], geo: g, dataFD: fds[3], spaceFD: fds[4], wakes: &c.wakes}
	c.out, c.in = toChild, toParent
	if child {
		c.out, c.in = toParent, toChild
	}
	return c, nil
}

func (c *shmConn) Send(msg []byte) error { return c.out.push(msg) }
func (c *shmConn) Recv(buf []byte) error { return c.in.pop(buf) }

func (c *shmConn) Close() error {
	err := unix.Munmap(c.mem)
	for _, fd := range c.fds {
		err = errors.Join(err, unix.Close(fd))
	}
	return err
}

type shmRing struct {
	mem             []byte
	geo             shmRingGeometry
	dataFD, spaceFD int
	wakes           *shmWakes // the owning shmConn's counters
}

func (r *shmRing) word(off int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&r.mem[off]))
}

func (r *shmRing) slot(seq uint64) []byte {
	off := ringHeaderSize + int(seq%uint64(r.geo.slots))*r.geo.slotSize
	return r.mem[off : off+r.geo.slotSize]
}

// push copies msg into the next slot, sleeping while the ring is full.
// Sleeping follows a Dekker pattern with sequentially consistent atomics:
// announce the wait, re-check, then block; the other side publishes, then
// checks the flag. One of the two always sees the other, so no wakeup is lost.
func (r *shmRing) push(msg []byte) error {
	tail, head, waiting := r.word(ringTailOff), r.word(ringHeadOff), r.word(ringProducerWaitOff)
	t := tail.Load()
	for t-head.Load() == uint64(r.geo.slots) {
		waiting.Store(1)
		if t-head.Load() < uint64(r.geo.slots) {
			waiting.Store(0)
			break
		}
		r.wakes.sleeps++
		if err := eventfdWait(r.spaceFD); err != nil {
			return err
		}
		waiting.Store(0)
	}
	copy(r.slot(t), msg)
	tail.Store(t + 1)
	if r.word(ringConsumerWaitOff).Load() != 0 {
		r.wakes.sent++
		return eventfdSignal(r.dataFD)
	}
	return nil
}

// pop copies the next message into buf, sleeping while the ring is empty.
func (r *shmRing) pop(buf []byte) error {
	tail, head, waiting := r.word(ringTailOff), r.word(ringHeadOff), r.word(ringConsumerWaitOff)
	h := head.Load()
	for tail.Load() == h {
		waiting.Store(1)
		if tail.Load() != h {
			waiting.Store(0)
			break
		}
		r.wakes.sleeps++
		if err := eventfdWait(r.dataFD); err != nil {
			return err
		}
		waiting.Store(0)
	}
	copy(buf, r.slot(h))
	head.Store(h + 1)
	if r.word(ringProducerWaitOff).Load() != 0 {
		r.wakes.sent++
		return eventfdSignal(r.spaceFD)
	}
	return nil
}

// eventfdWait blocks until the counter is non-zero and resets it. A stale
// count only causes one spurious wakeup, which the callers' loops absorb.
func eventfdWait(fd int) error {
	var b [8]byte
	for {
		_, err := unix.Read(fd, b[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("eventfd read: %w", err)
		}
		return nil
	}
}

func eventfdSignal(fd int) error {
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], 1)
	for {
		_, err := unix.Write(fd, b[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("eventfd write: %w", err)
		}
		return nil
	}
}
