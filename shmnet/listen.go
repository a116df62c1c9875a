package shmnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/spsc"
)

// ListenConfig configures a Listener. The zero value is ready to use.
type ListenConfig struct {
	// Wait tunes how this end's Reads and Writes wait.
	Wait spsc.Wait
	// Authorize decides whether a dialer running under effective uid uid
	// may connect. Nil accepts only this process's effective uid.
	Authorize func(uid uint32) bool
	// Backlog bounds the connections being set up or waiting for Accept;
	// 0 means 128. Further dialers wait in the socket's backlog.
	Backlog int
}

// handshakeTimeout bounds the listener's side of one handshake, so that a
// dialer that connects and says nothing holds a backlog slot for no longer.
const handshakeTimeout = 5 * time.Second

// Listener accepts shmnet connections: a net.Listener. Handshakes run in
// the background, so a slow or hostile dialer does not delay others; Accept
// returns connections that are ready. Its methods are safe for concurrent
// use.
type Listener struct {
	addr *Addr
	cfg  ListenConfig
	ln   *net.UnixListener

	ready chan *Conn    // set-up connections, in handshake order
	slots chan struct{} // one token per connection in handshake or in ready
	done  chan struct{} // closed by Close
	once  sync.Once
	wg    sync.WaitGroup // the accept loop and the handshakes

	mu    sync.Mutex
	shaky map[*net.UnixConn]struct{} // sockets in handshake, interrupted by Close
}

// Listen listens under name with a zero ListenConfig.
func Listen(name string) (*Listener, error) {
	var lc ListenConfig
	return lc.Listen(name)
}

// Listen binds the rendezvous socket of name: 1 to MaxNameLen characters
// from [A-Za-z0-9._-], starting with neither '.' nor '-' (a leading slash
// or "shmq:" is ignored). It fails with an error wrapping
// syscall.EADDRINUSE while another listener has the name.
func (lc *ListenConfig) Listen(name string) (*Listener, error) {
	addr := &Addr{Name: name, PID: os.Getpid()}
	fail := func(err error) error { return &net.OpError{Op: "listen", Net: Network, Addr: addr, Err: err} }
	n, err := parseName(name)
	if err != nil {
		return nil, fail(err)
	}
	addr.Name = n
	sa, err := socketAddr(n)
	if err != nil {
		return nil, fail(err)
	}
	ln, err := net.ListenUnix(sa.Net, sa)
	if err != nil {
		return nil, fail(err)
	}
	backlog := lc.Backlog
	if backlog <= 0 {
		backlog = 128
	}
	l := &Listener{
		addr: addr, cfg: *lc, ln: ln,
		ready: make(chan *Conn, backlog), slots: make(chan struct{}, backlog), done: make(chan struct{}),
		shaky: make(map[*net.UnixConn]struct{}),
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// Addr returns the listener's address; its String is the name to Dial.
func (l *Listener) Addr() net.Addr { return l.addr }

// Accept waits for the next connection. After Close it returns an error
// matching net.ErrClosed.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.AcceptConn()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AcceptConn is Accept returning the *Conn.
func (l *Listener) AcceptConn() (*Conn, error) {
	select {
	case <-l.done:
	default:
		select {
		case c := <-l.ready:
			<-l.slots
			return c, nil
		case <-l.done:
		}
	}
	return nil, &net.OpError{Op: "accept", Net: Network, Addr: l.addr, Err: net.ErrClosed}
}

// Close stops listening: the name is free again at once, Accept returns
// net.ErrClosed, handshakes in progress are refused and connections not yet
// accepted are closed. Connections already accepted stay open.
func (l *Listener) Close() error {
	first := false
	l.once.Do(func() {
		first = true
		close(l.done)
		l.ln.Close()
		l.mu.Lock()
		for s := range l.shaky {
			s.SetDeadline(time.Unix(1, 0))
		}
		l.mu.Unlock()
		l.wg.Wait()
		for {
			select {
			case c := <-l.ready:
				c.Close()
				continue
			default:
			}
			break
		}
	})
	if !first {
		return &net.OpError{Op: "close", Net: Network, Addr: l.addr, Err: net.ErrClosed}
	}
	return nil
}

func (l *Listener) closed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	backoff := time.Duration(0)
	for {
		select {
		case l.slots <- struct{}{}:
		case <-l.done:
			return
		}
		s, err := l.ln.AcceptUnix()
		if err != nil {
			<-l.slots
			if l.closed() {
				return
			}
			// Out of descriptors or memory: let the process recover
			// rather than spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(backoff):
			case <-l.done:
				return
			}
			continue
		}
		backoff = 0
		l.mu.Lock()
		if l.closed() {
			l.mu.Unlock()
			s.Close()
			<-l.slots
			return
		}
		l.shaky[s] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go l.handshake(s)
	}
}

// handshake sets up the connection a dialer offers on s and queues it for
// Accept, or refuses it.
func (l *Listener) handshake(s *net.UnixConn) {
	defer l.wg.Done()
	defer func() {
		l.mu.Lock()
		delete(l.shaky, s)
		l.mu.Unlock()
		s.Close()
	}()
	s.SetDeadline(time.Now().Add(handshakeTimeout))
	c, err := l.open(s)
	if err == nil {
		_, err = s.Write([]byte(replyOK))
		if err != nil {
			c.Close()
		}
	} else if !errors.Is(err, os.ErrDeadlineExceeded) {
		sendRefusal(s, err)
	}
	if err != nil || l.closed() {
		if err == nil {
			c.Close()
		}
		<-l.slots
		return
	}
	l.ready <- c // never blocks: a slot is held for c
}

// open receives the dialer's queues and attaches this end to them.
func (l *Listener) open(s *net.UnixConn) (_ *Conn, err error) {
	// Read the hello before judging it: closing a socket with unread data
	// would reset the connection and lose the refusal's reason.
	fds, err := recvHello(s)
	if err != nil {
		return nil, err
	}
	defer closeFDs(fds) // Open maps its own descriptions
	uid, pid, err := peerCred(s)
	if err != nil {
		return nil, err
	}
	if !authorized(l.cfg.Authorize, uid) {
		return nil, fmt.Errorf("%w: dialer runs as uid %d", ErrPermission, uid)
	}
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	opts := &spsc.Options{Options: ring.Options{AllowOtherOwner: uid != uint32(os.Geteuid())}, Wait: l.cfg.Wait}
	in, err := spsc.Open(ctx, ring.FD(fds[0]), opts)
	if err != nil {
		return nil, err
	}
	out, err := spsc.Open(ctx, ring.FD(fds[1]), opts)
	if err != nil {
		in.Close()
		return nil, err
	}
	defer func() {
		if err != nil {
			in.Close()
			out.Close()
		}
	}()
	if in.Segment().Shrinkable() || out.Segment().Shrinkable() {
		// The dialer could truncate it under our mapping: refuse rather
		// than guard every copy.
		return nil, fmt.Errorf("%w: queue memory is not sealed against shrinking", errHandshake)
	}
	c, err := in.Consumer()
	if err != nil {
		return nil, err
	}
	p, err := out.Producer()
	if err != nil {
		return nil, err
	}
	return newConn(in, c, out, p, l.addr, &Addr{Name: l.addr.Name, PID: pid}), nil
}

var _ net.Listener = (*Listener)(nil)
