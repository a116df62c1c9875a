package notify

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Eventfd is a Backend built on a Linux eventfd, shared by related
// processes (inherited across fork/exec, see [Eventfd.Dup], or passed over a
// Unix socket with [Eventfd.SendTo] and [RecvFD]).
//
// Wakes are coalesced: Wake adds 1 to the eventfd counter, whatever n, and
// a parked Wait that is woken reads (and so clears) the whole counter. A
// wake that happens before the waiter parks is not lost: the counter stays
// non-zero and makes the next Wait return (spuriously, if the waiter had
// already seen the word change) — once, however many wakes piled up while
// nobody was parked, so a burst of publishes, or a registration left by a
// waiter that died, costs a waiter at most one spurious return. Every
// waiter parked on the eventfd is woken by a write (the kernel wakes every
// reader); one that finds the counter already cleared by another returns
// spuriously, to re-check its word. One Eventfd serves one word; the word
// argument is only checked on entry.
//
// Waits park on the Go netpoller, so they do not occupy an OS thread. A ctx
// deadline becomes the read deadline, and cancellation sets a read deadline
// in the past from a context.AfterFunc callback.
type Eventfd struct {
	stats
	f  *os.File
	rc syscall.RawConn
	// rd is a one-slot lock held by the goroutine reading f. os.File
	// serialises readers itself, but a goroutine queued there ignores its
	// deadline; queueing here instead lets it honour ctx.
	rd chan struct{}
}

// NewEventfd creates a new eventfd (non-blocking, close-on-exec, counter
// mode, which coalesces wakes) and returns a backend that owns it.
func NewEventfd() (*Eventfd, error) {
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("notify: eventfd: %w", err)
	}
	return newEventfd(fd)
}

// EventfdFromFD returns a backend that takes ownership of fd, an eventfd
// inherited from a related process or received with [RecvFD]. The eventfd
// should have been created in counter mode, as NewEventfd does (in
// EFD_SEMAPHORE mode every wake is a separate return of Wait: correct, but a
// pile of wakes then costs as many returns); fd is put in non-blocking mode.
func EventfdFromFD(fd int) (*Eventfd, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, fmt.Errorf("notify: eventfd %d: %w", fd, err)
	}
	return newEventfd(fd)
}

func newEventfd(fd int) (*Eventfd, error) {
	f := os.NewFile(uintptr(fd), "eventfd")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("notify: eventfd: %w", err)
	}
	return &Eventfd{f: f, rc: rc, rd: make(chan struct{}, 1)}, nil
}

// Dup returns a new close-on-exec descriptor for the same eventfd, for
// exec.Cmd.ExtraFiles. The caller owns it. Because it is created from a
// non-blocking descriptor, its Fd method leaves the shared eventfd
// non-blocking.
func (e *Eventfd) Dup() (*os.File, error) {
	nfd := -1
	var derr error
	if err := e.rc.Control(func(fd uintptr) {
		nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, fmt.Errorf("notify: eventfd dup: %w", err)
	}
	if derr != nil {
		return nil, fmt.Errorf("notify: eventfd dup: %w", derr)
	}
	return os.NewFile(uintptr(nfd), "eventfd"), nil
}

// SendTo sends the eventfd over conn with SCM_RIGHTS; see [RecvFD].
func (e *Eventfd) SendTo(conn *net.UnixConn) error {
	var serr error
	if err := e.rc.Control(func(fd uintptr) { serr = SendFD(conn, int(fd)) }); err != nil {
		return fmt.Errorf("notify: eventfd send: %w", err)
	}
	return serr
}

// aLongTimeAgo is a read deadline that has certainly passed.
var aLongTimeAgo = time.Unix(1, 0)

// Wait implements Backend.
func (e *Eventfd) Wait(ctx context.Context, word *atomic.Uint32, old uint32) error {
	if word.Load() != old {
		return nil
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	select {
	case e.rd <- struct{}{}:
	case <-ctx.Done():
		return ctxErr(ctx)
	}
	defer func() { <-e.rd }()
	if word.Load() != old {
		return nil
	}
	e.waits.Add(1)
	dl, _ := ctx.Deadline() // zero: no deadline
	if err := e.f.SetReadDeadline(dl); err != nil {
		return e.readErr(err)
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { _ = e.f.SetReadDeadline(aLongTimeAgo) })
		defer stop()
	}
	// Read the counter; if it is zero, wait until the eventfd is readable
	// and read once more. If another waiter cleared the counter in between,
	// return (a spurious wake-up) so that the caller re-checks its word.
	var rerr error
	waited := false
	err := e.rc.Read(func(fd uintptr) bool {
		var buf [8]byte
		_, rerr = unix.Read(int(fd), buf[:])
		if rerr == unix.EAGAIN && !waited {
			waited = true
			return false
		}
		return true
	})
	if err == nil && rerr != nil && rerr != unix.EAGAIN {
		err = rerr
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// Either ctx is done, or this is the late callback of an
			// earlier Wait's cancellation: then a spurious wake-up.
			return ctxErr(ctx)
		}
		return e.readErr(err)
	}
	return nil
}

func (e *Eventfd) readErr(err error) error {
	if errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("notify: eventfd wait: %w", ErrClosed)
	}
	return fmt.Errorf("notify: eventfd wait: %w", err)
}

// Wake implements Backend with one write(2) of 1 to the eventfd, whatever
// n: the write wakes every parked waiter, and wakes coalesce.
func (e *Eventfd) Wake(word *atomic.Uint32, n int) error {
	if n <= 0 {
		return nil
	}
	e.wakes.Add(1)
	var buf [8]byte
	binary.NativeEndian.PutUint64(buf[:], 1)
	var werr error
	err := e.rc.Write(func(fd uintptr) bool {
		e.wakeSyscalls.Add(1)
		_, werr = unix.Write(int(fd), buf[:])
		return true // never park: EAGAIN means the counter is nearly full of wake-ups already
	})
	if err == nil && werr != nil && werr != unix.EAGAIN {
		err = werr
	}
	if err != nil {
		if errors.Is(err, os.ErrClosed) {
			err = ErrClosed
		}
		return fmt.Errorf("notify: eventfd wake: %w", err)
	}
	return nil
}

// Close implements Backend; parked waiters return ErrClosed (wrapped).
func (e *Eventfd) Close() error { return e.f.Close() }
