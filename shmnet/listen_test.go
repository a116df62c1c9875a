//go:build unix

package shmnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/spsc"
)

// TestAddr: addresses name the listener, in a form Dial takes back, and
// carry each end's pid.
func TestAddr(t *testing.T) {
	l := listen(t, nil)
	client, server := dialAccept(t, l, nil)
	name := l.Addr().String()
	for _, a := range []net.Addr{l.Addr(), client.LocalAddr(), client.RemoteAddr(), server.LocalAddr(), server.RemoteAddr()} {
		if a.Network() != "shmq" || a.String() != name {
			t.Errorf("address %s/%s, want shmq/%s", a.Network(), a, name)
		}
	}
	for _, a := range []net.Addr{client.LocalAddr(), client.RemoteAddr(), server.LocalAddr(), server.RemoteAddr()} {
		if a.(*Addr).PID != os.Getpid() {
			t.Errorf("pid %d, want %d", a.(*Addr).PID, os.Getpid())
		}
	}
}

// TestNames: bad names fail with ErrBadName; a taken name with EADDRINUSE;
// a closed listener's name is free at once; no listener means
// ECONNREFUSED.
func TestNames(t *testing.T) {
	for _, bad := range []string{"", ".hidden", "-flag", "a/b", "sp ace", string(make([]byte, MaxNameLen+1))} {
		if _, err := Listen(bad); !errors.Is(err, ErrBadName) {
			t.Errorf("Listen(%q): %v", bad, err)
		}
		if _, err := Dial(context.Background(), bad); !errors.Is(err, ErrBadName) {
			t.Errorf("Dial(%q): %v", bad, err)
		}
	}
	name := testName()
	l, err := Listen("/" + name) // the shm-style slash is accepted
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(name); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("second Listen: %v", err)
	}
	l.Close()
	if _, err := Dial(context.Background(), name); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("Dial after Close: %v", err)
	}
	l, err = Listen(name)
	if err != nil {
		t.Fatalf("Listen after Close: %v", err)
	}
	l.Close()
}

// TestListenerClose: Close unblocks Accept with net.ErrClosed, closes
// connections that were set up but not accepted, and leaves accepted
// ones working.
func TestListenerClose(t *testing.T) {
	l := listen(t, nil)
	client, server := dialAccept(t, l, nil)
	pending, err := Dial(context.Background(), l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer pending.Close()
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err == nil { // the pending connection: leave it be
			c, err = l.Accept()
		}
		_ = c
		done <- err
	}()
	time.Sleep(20 * time.Millisecond) // let Accept block
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Accept")
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Accept: %v", err)
	}
	if err := l.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := client.Write([]byte("still")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(server, buf); err != nil || string(buf) != "still" {
		t.Fatalf("accepted connection after listener Close: %q, %v", buf, err)
	}
}

// TestListenerCloseUnaccepted: a connection set up but never accepted is
// closed by the listener's Close: its dialer reads io.EOF.
func TestListenerCloseUnaccepted(t *testing.T) {
	l, err := Listen(testName())
	if err != nil {
		t.Fatal(err)
	}
	c, err := Dial(context.Background(), l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read from a connection the listener dropped: %v", err)
	}
}

// TestManyConnections: many dialers at once, each with its own echo.
func TestManyConnections(t *testing.T) {
	l := listen(t, &ListenConfig{Backlog: 4}) // fewer slots than dialers
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	const conns = 32
	errs := make(chan error, conns)
	for i := range conns {
		go func() {
			c, err := small.Dial(context.Background(), l.Addr().String())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			want := pattern(20000, byte(i))
			go c.Write(want)
			got := make([]byte, len(want))
			if _, err := io.ReadFull(c, got); err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(got, want) {
				errs <- fmt.Errorf("connection %d: echo differs", i)
				return
			}
			errs <- nil
		}()
	}
	for range conns {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestAuthorize: a listener refuses a dialer it does not trust (and keeps
// serving others), and a dialer refuses to hand its queues to a listener
// it does not trust.
func TestAuthorize(t *testing.T) {
	me := uint32(os.Geteuid())
	l := listen(t, &ListenConfig{Authorize: func(uid uint32) bool { return false }})
	_, err := Dial(context.Background(), l.Addr().String())
	if !errors.Is(err, ErrRefused) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("untrusted dialer: %v", err)
	}
	l2 := listen(t, nil)
	d := &Dialer{Authorize: func(uid uint32) bool { return uid != me }}
	if _, err := d.Dial(context.Background(), l2.Addr().String()); !errors.Is(err, ErrPermission) {
		t.Fatalf("untrusted listener: %v", err)
	}
	dialAccept(t, l2, nil) // l2 still serves
}

// TestBadHandshakes: the listener refuses malformed offers with a reason,
// and a dialer that says nothing does not hold up the others.
func TestBadHandshakes(t *testing.T) {
	l := listen(t, nil)
	sa, _ := socketAddr(l.Addr().String())
	raw := func(t *testing.T) *net.UnixConn {
		s, err := net.DialUnix(sa.Net, nil, sa)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		s.SetDeadline(time.Now().Add(5 * time.Second))
		return s
	}
	silent := raw(t) // connects and never speaks
	_ = silent

	queue := func(t *testing.T, loc ring.Location) *spsc.Queue {
		q, err := spsc.Create(loc, spsc.Config{Capacity: 4096})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
		return q
	}
	shm := ring.Shm(fmt.Sprintf("shmnet-%d-unsealed", os.Getpid()))
	t.Cleanup(func() { ring.Unlink(shm) })
	unsealed := queue(t, shm)
	a, b := queue(t, ring.Memfd("a")), queue(t, ring.Memfd("b"))
	taken := queue(t, ring.Memfd("taken"))
	if _, err := taken.Consumer(); err != nil { // the listener's role, held already
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		msg  string
		fds  []int
		want string
	}{
		{"no descriptors", hello, nil, "0 descriptors"},
		{"one descriptor", hello, []int{a.Segment().Fd()}, "1 descriptors"},
		{"wrong hello", "shmq-net/9", []int{a.Segment().Fd(), b.Segment().Fd()}, "malformed"},
		{"not a queue", hello, []int{int(os.Stdin.Fd()), b.Segment().Fd()}, "not"},
		{"unsealed", hello, []int{unsealed.Segment().Fd(), b.Segment().Fd()}, "not sealed"},
		{"role taken", hello, []int{taken.Segment().Fd(), b.Segment().Fd()}, "role"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := raw(t)
			var oob []byte
			if tc.fds != nil {
				oob = unix.UnixRights(tc.fds...)
			}
			if _, _, err := s.WriteMsgUnix([]byte(tc.msg), oob, nil); err != nil {
				t.Fatal(err)
			}
			err := recvReply(s)
			if !errors.Is(err, ErrRefused) || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Fatalf("got %v, want a refusal mentioning %q", err, tc.want)
			}
		})
	}
	dialAccept(t, l, nil) // the silent dialer holds one slot, not the listener
}
