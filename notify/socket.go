//go:build linux || darwin || freebsd || solaris

package notify

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func (c *SocketConfig) mode() uint32 {
	if c.Mode == 0 {
		return 0o600
	}
	return uint32(c.Mode.Perm())
}

// Socket is a Backend for processes that share no kernel object but a
// file-system path, and for systems without futexes. The waiting process
// listens on a Unix socket; a waker connects (once, then keeps the
// connection) and writes a byte per Wake. The listener checks each
// connecting peer's credentials (SO_PEERCRED on Linux, LOCAL_PEERCRED on
// Darwin and FreeBSD, getpeerucred on Solaris and illumos) before reading
// from it, and a waker checks the listener's the same way before writing to
// it. Systems without such a query have no Socket backend (NewSocket fails
// with errors.ErrUnsupported).
//
// A stranger who can reach the socket file (through a permissive Mode) is
// rejected in the accept loop right after accept, before the connection
// costs a goroutine or a poller registration, and a waker whose connect
// finds the backlog full retries for up to a second, so a flood of such
// connections delays legitimate wakers but does not make their wakes fail.
// When accept fails for lack of descriptors the loop backs off (up to a
// second) instead of spinning; established connections keep working.
//
// Every byte received wakes every goroutine parked in Wait in the listening
// process, whatever its word, so Wake(n) costs one write whatever n is, and
// a wake-up that arrives before a waiter parks is not lost (the waiter's
// wake channel was taken before it checked the word). Waits select on
// ctx.Done(), so cancellation and deadlines are seen at once.
//
// One Socket serves any number of words and waiters in the process that
// listens (a wake aimed at one word costs the waiters on the others a
// spurious return each), but its wakes reach only the process listening at
// Peer: it serves the words whose waiters all wait there (two processes
// that wake each other cross their Listen and Peer; a process that also
// wakes its own waiters needs Peer to be its own Listen).
type Socket struct {
	stats
	cfg      SocketConfig
	ln       *os.File    // listening socket, non-blocking; nil without cfg.Listen
	bound    os.FileInfo // the socket file ln made at cfg.Listen, removed by Close
	rejected atomic.Uint64

	mu    sync.Mutex
	gen   chan struct{}         // closed and replaced on each received byte; guarded by mu
	conns map[*os.File]struct{} // accepted connections; guarded by mu

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
		conns:  make(map[*os.File]struct{}),
		closed: make(chan struct{}),
	}
	if s.cfg.Authorize == nil {
		euid := uint32(os.Geteuid())
		s.cfg.Authorize = func(uid uint32) bool { return uid == euid }
	}
	if cfg.Listen != "" {
		ln, bound, err := listenUnix(cfg.Listen, s.cfg.mode())
		if err != nil {
			return nil, fmt.Errorf("notify: socket listen %s: %w", cfg.Listen, err)
		}
		s.ln, s.bound = ln, bound
		s.wg.Add(1)
		go s.accept()
	}
	return s, nil
}

// listenBacklog is short on purpose. While a stranger floods the socket,
// the backlog stays full of its connections and a legitimate one, once in,
// waits for all those ahead of it to be rejected: with Go's default (Linux's
// somaxconn, 4096) a legitimate wake took about 250 ms in the flood test,
// with 128 a few ms. A full backlog costs a legitimate waker only a retry
// (see dial), and a process has far fewer than 128 legitimate wakers
// connecting at once.
const listenBacklog = 128

// listenUnix listens on a new Unix socket file at path with permission
// mode, replacing a stale socket there but nothing else.
//
// The socket is bound, chmod'ed and set listening inside a private
// directory (0700) made next to path, then hard-linked to path. So its mode
// is exact without touching the umask (which every goroutine of the process
// shares), no other user can connect to it or swap the file while its mode
// is wider than asked, and link fails rather than replace whatever appears
// at path meanwhile. It returns the listening socket and the socket file's
// FileInfo, by which Close recognises the file.
func listenUnix(path string, mode uint32) (*os.File, os.FileInfo, error) {
	dir, err := os.MkdirTemp(filepath.Dir(path), ".sock")
	if err != nil {
		return nil, nil, err
	}
	defer os.Remove(dir)
	tmp := filepath.Join(dir, "s")
	ln, err := listenPrivate(tmp, mode)
	if err != nil {
		return nil, nil, err
	}
	defer os.Remove(tmp)
	bound, err := os.Lstat(tmp)
	if err == nil {
		err = os.Link(tmp, path)
		if errors.Is(err, fs.ErrExist) && removeStale(path) {
			err = os.Link(tmp, path)
		}
		if errors.Is(err, fs.ErrExist) {
			err = syscall.EADDRINUSE
		}
	}
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	return ln, bound, nil
}

// listenPrivate makes a non-blocking listening socket at path, in a
// directory no other user can enter, and sets its permission before it
// listens.
func listenPrivate(path string, mode uint32) (*os.File, error) {
	syscall.ForkLock.RLock() // no exec between socket and CloseOnExec
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err == nil {
		unix.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	err = unix.Bind(fd, &unix.SockaddrUnix{Name: path})
	if err == nil {
		if err = unix.Chmod(path, mode); err == nil {
			if err = unix.Listen(fd, listenBacklog); err == nil {
				err = unix.SetNonblock(fd, true)
			}
		}
		if err != nil {
			os.Remove(path)
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	// A non-blocking descriptor is registered with the runtime poller, so
	// the accept loop parks in SyscallConn().Read and Close wakes it.
	return os.NewFile(uintptr(fd), path), nil
}

// removeStale removes the file at path if it is a socket that refuses
// connections (its listener is gone), and reports whether it did. A regular
// file refuses connections too, so the type is checked first, and again
// after the probe so that a file put there meanwhile is left alone.
func removeStale(path string) bool {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Type() != fs.ModeSocket {
		return false
	}
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err == nil {
		c.Close()
		return false
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return false
	}
	if again, err := os.Lstat(path); err != nil || !os.SameFile(fi, again) {
		return false
	}
	return os.Remove(path) == nil
}

// Accept-loop back-off after a failed accept (EMFILE, ENFILE, ENOBUFS):
// the connection stays in the backlog, so the listener stays readable and
// an immediate retry would fail again at once, spinning.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// acceptBatch bounds the connections accept rejects in one poller
// callback: Close waits for the callback to return.
const acceptBatch = 64

// accept runs until Close. It accepts connections in batches from inside
// the poller callback, rejecting strangers there, and starts a reader for
// each authorized one.
func (s *Socket) accept() {
	defer s.wg.Done()
	rc, err := s.ln.SyscallConn()
	if err != nil {
		return
	}
	var delay time.Duration
	for {
		var fd int
		var aerr error
		err := rc.Read(func(lfd uintptr) bool {
			for range acceptBatch {
				fd, aerr = s.acceptAuthorized(int(lfd))
				switch aerr {
				case unix.EAGAIN:
					return false // park until the listener is readable
				case errRejected, unix.ECONNABORTED, unix.EINTR:
					continue
				}
				return true
			}
			return true
		})
		if err != nil { // closed
			return
		}
		if aerr == errRejected || aerr == unix.ECONNABORTED || aerr == unix.EINTR {
			continue // a full batch; the next Read sees a Close
		}
		if aerr != nil {
			delay = min(max(2*delay, acceptBackoffMin), acceptBackoffMax)
			t := time.NewTimer(delay)
			select {
			case <-s.closed:
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		delay = 0
		c := os.NewFile(uintptr(fd), "")
		s.mu.Lock()
		select {
		case <-s.closed: // Close has already dropped the connections it knew
			s.mu.Unlock()
			c.Close()
			return
		default:
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.read(c)
	}
}

// errRejected is acceptAuthorized's report of a refused peer.
var errRejected = errors.New("notify: rejected")

// acceptAuthorized accepts one connection from the listening socket lfd and
// checks its peer's uid before anything else: a stranger's connection costs
// a few system calls and no allocation, goroutine or poller registration,
// and is closed at once. It returns a non-blocking close-on-exec
// descriptor.
func (s *Socket) acceptAuthorized(lfd int) (int, error) {
	syscall.ForkLock.RLock() // no exec between accept and CloseOnExec
	fd, _, err := unix.Accept(lfd)
	if err == nil {
		unix.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return -1, err
	}
	uid, err := peerUID(fd)
	if err != nil || !s.cfg.Authorize(uid) {
		unix.Close(fd)
		s.rejected.Add(1)
		return -1, errRejected
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// connPeerUID returns the effective uid of the listening process at the
// other end of c, as the kernel recorded it when that process listened.
func connPeerUID(c *net.UnixConn) (uint32, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var uid uint32
	var uerr error
	if err := rc.Control(func(fd uintptr) { uid, uerr = peerUID(int(fd)) }); err != nil {
		return 0, err
	}
	return uid, uerr
}

func (s *Socket) read(c *os.File) {
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
// A listener whose uid Authorize refuses gets nothing, and Wake returns an
// error wrapping ErrPeerRejected.
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
			if s.out, err = s.dial(); err != nil {
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

// dialPatience bounds how long dial retries, about every millisecond, a
// connect that finds the listener's backlog full (EAGAIN), as it stays
// while a flood of connections is being rejected. The listener drains it
// quickly, but the flood refills it, so a legitimate connect may take a
// few tries.
const dialPatience = time.Second

// dial connects to cfg.Peer and checks the listener's credentials.
func (s *Socket) dial() (*net.UnixConn, error) {
	addr := &net.UnixAddr{Name: s.cfg.Peer, Net: "unix"}
	deadline := time.Now().Add(dialPatience)
	delay := 20 * time.Microsecond
	for {
		c, err := net.DialUnix("unix", nil, addr)
		if err == nil {
			uid, err := connPeerUID(c)
			if err == nil && !s.cfg.Authorize(uid) {
				err = fmt.Errorf("listener at %s has uid %d: %w", s.cfg.Peer, uid, ErrPeerRejected)
			}
			if err != nil {
				c.Close()
				return nil, err
			}
			return c, nil
		}
		if !errors.Is(err, syscall.EAGAIN) || time.Now().After(deadline) {
			return nil, err
		}
		t := time.NewTimer(delay)
		select {
		case <-s.closed:
			t.Stop()
			return nil, ErrClosed
		case <-t.C:
		}
		delay = min(2*delay, time.Millisecond)
	}
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
			// Remove the socket file unless another listener has
			// replaced it since.
			if fi, lerr := os.Lstat(s.cfg.Listen); lerr == nil && os.SameFile(fi, s.bound) {
				os.Remove(s.cfg.Listen)
			}
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
