package notify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// SocketConfig configures a Socket backend.
type SocketConfig struct {
	// Listen is the path of the Unix socket on which this process receives
	// its wake-ups. Empty means the backend can only wake (Wait fails).
	// A stale socket left at the path by a dead process is replaced.
	Listen string
	// Peer is the path of the waiting side's socket that Wake connects to.
	// Empty means the backend can only wait (Wake fails).
	Peer string
	// Authorize decides whether a connecting process with effective uid uid
	// may wake this one. Nil allows only this process's effective uid.
	Authorize func(uid uint32) bool
}

// Socket is a Backend for processes that share no kernel object but a
// file-system path, and for systems without futexes. The waiting process
// listens on a Unix socket; a waker connects (once, then keeps the
// connection) and writes a byte per Wake. The listener checks each
// connecting peer's credentials (SO_PEERCRED on Linux, LOCAL_PEERCRED on
// Darwin and FreeBSD) before reading from it.
//
// Every byte received wakes every goroutine parked in Wait in the listening
// process, so Wake(n) costs one write whatever n is, and a wake-up that
// arrives before a waiter parks is not lost (the waiter's wake channel was
// taken before it checked the word). Waits select on ctx.Done(), so
// cancellation and deadlines are seen at once. One Socket serves one word;
// the word argument is only checked on entry.
type Socket struct {
	stats
	cfg      SocketConfig
	ln       *net.UnixListener // nil without cfg.Listen
	rejected atomic.Uint64

	mu    sync.Mutex
	gen   chan struct{}              // closed and replaced on each received byte; guarded by mu
	conns map[*net.UnixConn]struct{} // accepted connections; guarded by mu

	wmu sync.Mutex    // serialises Wake's use of out
	out *net.UnixConn // connection to cfg.Peer; guarded by wmu

	closeOnce sync.Once
	closed    chan struct{}
	wg        sync.WaitGroup // accept and reader goroutines
}

// errRole reports a Wait on a wake-only Socket or a Wake on a wait-only one.
var errRole = errors.New("notify: socket backend not configured for this operation")

// NewSocket returns a socket backend, listening on cfg.Listen if it is set.
func NewSocket(cfg SocketConfig) (*Socket, error) {
	s := &Socket{
		cfg:    cfg,
		gen:    make(chan struct{}),
		conns:  make(map[*net.UnixConn]struct{}),
		closed: make(chan struct{}),
	}
	if s.cfg.Authorize == nil {
		euid := uint32(os.Geteuid())
		s.cfg.Authorize = func(uid uint32) bool { return uid == euid }
	}
	if cfg.Listen != "" {
		ln, err := listenUnix(cfg.Listen)
		if err != nil {
			return nil, err
		}
		s.ln = ln
		s.wg.Add(1)
		go s.accept()
	}
	return s, nil
}

func listenUnix(path string) (*net.UnixListener, error) {
	addr := &net.UnixAddr{Name: path, Net: "unix"}
	ln, err := net.ListenUnix("unix", addr)
	if err != nil && errors.Is(err, syscall.EADDRINUSE) {
		// Replace the socket only if nobody listens on it any more.
		if c, derr := net.DialUnix("unix", nil, addr); derr == nil {
			c.Close()
		} else if errors.Is(derr, syscall.ECONNREFUSED) {
			if rerr := os.Remove(path); rerr == nil {
				ln, err = net.ListenUnix("unix", addr)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("notify: socket listen: %w", err)
	}
	return ln, nil
}

func (s *Socket) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			select {
			case <-s.closed:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if !s.authorized(c) {
			s.rejected.Add(1)
			c.Close()
			continue
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.read(c)
	}
}

func (s *Socket) authorized(c *net.UnixConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var uid uint32
	var uerr error
	if err := rc.Control(func(fd uintptr) { uid, uerr = peerUID(int(fd)) }); err != nil || uerr != nil {
		return false
	}
	return s.cfg.Authorize(uid)
}

func (s *Socket) read(c *net.UnixConn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	buf := make([]byte, 64)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			s.mu.Lock()
			close(s.gen)
			s.gen = make(chan struct{})
			s.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// Rejected returns how many connections failed the credential check.
func (s *Socket) Rejected() uint64 { return s.rejected.Load() }

// Wait implements Backend.
func (s *Socket) Wait(ctx context.Context, word *atomic.Uint32, old uint32) error {
	if s.ln == nil {
		return fmt.Errorf("notify: socket wait: %w", errRole)
	}
	// Take the wake channel before checking the word: a byte sent after the
	// word changed closes this channel or a later one's predecessor, which
	// is this one.
	s.mu.Lock()
	g := s.gen
	s.mu.Unlock()
	if word.Load() != old {
		return nil
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	s.waits.Add(1)
	select {
	case <-g:
		return nil
	case <-ctx.Done():
		return ctxErr(ctx)
	case <-s.closed:
		return fmt.Errorf("notify: socket wait: %w", ErrClosed)
	}
}

// Wake implements Backend with one non-blocking one-byte write to the peer,
// connecting first if needed and reconnecting once if the peer restarted.
// A full socket buffer counts as success: the peer has wake-ups pending.
func (s *Socket) Wake(word *atomic.Uint32, n int) error {
	if n <= 0 {
		return nil
	}
	if s.cfg.Peer == "" {
		return fmt.Errorf("notify: socket wake: %w", errRole)
	}
	select {
	case <-s.closed:
		return fmt.Errorf("notify: socket wake: %w", ErrClosed)
	default:
	}
	s.wakes.Add(1)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var err error
	for range 2 {
		if s.out == nil {
			if s.out, err = net.DialUnix("unix", nil, &net.UnixAddr{Name: s.cfg.Peer, Net: "unix"}); err != nil {
				s.out = nil
				return fmt.Errorf("notify: socket wake: %w", err)
			}
		}
		if err = s.write(); err == nil {
			return nil
		}
		s.out.Close()
		s.out = nil
	}
	return fmt.Errorf("notify: socket wake: %w", err)
}

func (s *Socket) write() error {
	rc, err := s.out.SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	if err := rc.Write(func(fd uintptr) bool {
		s.wakeSyscalls.Add(1)
		_, werr = unix.Write(int(fd), []byte{1})
		return true
	}); err != nil {
		return err
	}
	if werr == unix.EAGAIN {
		return nil
	}
	return werr
}

// Close implements Backend: it stops listening (removing the socket path),
// drops all connections and makes parked waiters return ErrClosed.
func (s *Socket) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closed)
		if s.ln != nil {
			err = s.ln.Close()
		}
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wmu.Lock()
		if s.out != nil {
			s.out.Close()
			s.out = nil
		}
		s.wmu.Unlock()
		s.wg.Wait()
	})
	return err
}
