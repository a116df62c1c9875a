package notify

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Eventfd is a Backend built on a Linux eventfd, shared by related
// processes (inherited across fork/exec, see [Eventfd.Dup], or passed over a
// Unix socket with [Eventfd.SendTo] and [RecvFD]).
//
// One Eventfd serves any number of words and waiters, and one eventfd any
// number of Eventfd values in any number of processes: every Wake reaches
// every Wait parked, at that moment, on any Eventfd value of the same
// eventfd, whatever its word; each re-checks its word (Wait returns) and
// those whose word did not change park again. So a wake aimed at one word
// costs the waiters on the others a spurious return each; give busy words
// an eventfd of their own to avoid that. A wake written after a Wait has
// checked its word reaches that Wait, so none is lost; wakes written
// before cost it a spurious return or two (events the netpoller collects
// late), however many there were.
//
// Wake adds 1 to the eventfd counter (one write(2), whatever n); waiters
// never read the counter, so it only grows (by one per wake: it would take
// millennia to fill), and it is the kernel's readiness event on each write
// that wakes waiters. Should a peer fill the counter, a Wake empties it and
// writes again (a write that fails raises no event). Each Eventfd value
// runs one goroutine, started by the first Wait that parks and stopped by
// Close, or by the garbage collector once the Eventfd is unreachable, which
// parks on the Go netpoller, so it does not occupy an OS thread, and on
// each event wakes every goroutine parked in Wait on that value. The
// netpoller is edge-triggered, so every write reaches every descriptor of
// the eventfd in every process, however full the counter. Nothing else may
// read the eventfd: a read that empties the counter before a process's
// netpoller has collected the event leaves only write-readiness to report,
// and that process's waiters miss the wake. Nor may anything clear its
// O_NONBLOCK flag, which every descriptor of it shares: a Wake on a full
// counter would then block. Versions of this backend before it served
// several words read the counter; do not share an eventfd with them.
//
// Waits select on ctx.Done(), so cancellation and deadlines are seen at
// once.
type Eventfd struct {
	stats
	*eventfd
}

// eventfd is what the poller goroutine uses: it never refers to the
// Eventfd that holds it, so that an Eventfd dropped without Close becomes
// unreachable, and its cleanup closes the descriptor, which stops the
// poller.
type eventfd struct {
	f      *os.File
	rc     syscall.RawConn
	closed atomic.Bool // set by Close, before it closes f

	// gen is closed, and replaced, by the poller on each readiness event
	// of the eventfd: a Wait takes it before it checks its word and
	// returns when it is closed.
	gen atomic.Pointer[chan struct{}]

	start sync.Once     // starts the poller
	armed chan struct{} // closed once the poller's events count (or it has stopped)
	dead  chan struct{} // closed when the poller has stopped; err says why
	err   error         // the poller's error, set before dead is closed
}

// NewEventfd creates a new eventfd (non-blocking, close-on-exec) and
// returns a backend that owns it.
func NewEventfd() (*Eventfd, error) {
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("notify: eventfd: %w", err)
	}
	return newEventfd(fd)
}

// EventfdFromFD returns a backend that takes ownership of fd, an eventfd
// inherited from a related process or received with [RecvFD]; fd is put in
// non-blocking mode. Its flags do not matter otherwise (EFD_SEMAPHORE
// included: the backend never reads the counter).
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
	c := &eventfd{f: f, rc: rc, armed: make(chan struct{}), dead: make(chan struct{})}
	g := make(chan struct{})
	c.gen.Store(&g)
	e := &Eventfd{eventfd: c}
	runtime.AddCleanup(e, func(c *eventfd) { c.close() }, c)
	return e, nil
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

// Wait implements Backend.
func (e *Eventfd) Wait(ctx context.Context, word *atomic.Uint32, old uint32) error {
	if word.Load() != old {
		return nil
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	if err := e.arm(ctx); err != nil {
		return err
	}
	// Take the wake channel before checking the word: a write made after
	// the word changed raises an event after this point, and the poller
	// closes this channel, or the one it replaced it with (after closing
	// this one), on that event.
	g := *e.gen.Load()
	if word.Load() != old {
		return nil
	}
	e.waits.Add(1)
	select {
	case <-g:
		return nil
	case <-ctx.Done():
		return ctxErr(ctx)
	case <-e.dead:
		return e.err
	}
}

// arm starts the poller if it is not running yet and waits until it is
// parked, so that every write from then on reaches the waiters of e.
func (e *Eventfd) arm(ctx context.Context) error {
	select {
	case <-e.armed:
		return nil
	default:
	}
	c := e.eventfd // not e: the poller must not keep the Eventfd reachable
	c.start.Do(func() { go c.poll() })
	select {
	case <-e.armed:
		return nil
	case <-ctx.Done():
		return ctxErr(ctx)
	}
}

// poll runs until Close. It stays in one RawRead call for its whole life:
// RawRead forgets readiness events collected before it starts (and only
// then), so every event after the first call of the callback, which is
// when armed is closed, calls the callback again once the goroutine runs:
// it then wakes the waiters, and never reads the eventfd.
func (e *eventfd) poll() {
	armed := false
	err := e.rc.Read(func(uintptr) bool {
		if !armed {
			armed = true
			close(e.armed)
			return false
		}
		ch := make(chan struct{})
		close(*e.gen.Swap(&ch))
		return false
	})
	if !armed {
		close(e.armed)
	}
	if e.closed.Load() || errors.Is(err, os.ErrClosed) {
		err = ErrClosed
	}
	e.err = fmt.Errorf("notify: eventfd wait: %w", err)
	close(e.dead)
}

// Wake implements Backend with one write(2) of 1 to the eventfd, whatever
// n: the write wakes every parked waiter of every word, and wakes coalesce.
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
		if werr == unix.EAGAIN {
			// The counter is full (a peer wrote a huge value: this
			// backend adds one per wake and never reads it), and a write
			// that fails raises no event. Empty it and write again: that
			// write raises the event, and every netpoller collects it
			// with the counter non-zero.
			var drain [8]byte
			_, _ = unix.Read(int(fd), drain[:])
			e.wakeSyscalls.Add(2)
			_, werr = unix.Write(int(fd), buf[:])
		}
		return true // never park in the netpoller: a wake must not block
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		if e.closed.Load() || errors.Is(err, os.ErrClosed) {
			err = ErrClosed
		}
		return fmt.Errorf("notify: eventfd wake: %w", err)
	}
	return nil
}

// Close implements Backend: it stops the poller and closes the descriptor;
// parked waiters return ErrClosed (wrapped).
func (e *Eventfd) Close() error { return e.close() }

func (e *eventfd) close() error {
	e.closed.Store(true)
	return e.f.Close()
}
