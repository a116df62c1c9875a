package shmnet

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCrossProcessEcho: a connection to a listener in another process
// carries streams of many sizes both ways.
func TestCrossProcessEcho(t *testing.T) {
	name := testName()
	startHelper(t, "echo-server", name)
	for _, d := range []*Dialer{small, {}} {
		c, err := d.Dial(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		for i, size := range []int{1, 1000, 1001, 100000} {
			want := pattern(size, byte(i))
			go c.Write(want)
			got := make([]byte, size)
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatalf("size %d: %v", size, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("size %d: echo differs", size)
			}
		}
		c.Close()
	}
}

// TestPeerKilled: when the process at the other end dies, a Read returns
// what it wrote, then fails with ErrPeerDead instead of waiting forever,
// and so does a Write once the ring is full.
func TestPeerKilled(t *testing.T) {
	t.Run("dialer", func(t *testing.T) {
		l := listen(t, nil)
		cmd := startHelper(t, "dial-hello", l.Addr().String())
		c, err := l.AcceptConn()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cmd.Process.Kill()
		cmd.Process.Wait()
		buf := make([]byte, 10)
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != "hello" {
			t.Fatalf("read %q, %v", buf[:n], err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(buf); !errors.Is(err, ErrPeerDead) {
			t.Fatalf("read from a dead peer: %v", err)
		}
		for err == nil {
			_, err = c.Write(make([]byte, 4096))
		}
		if !errors.Is(err, ErrPeerDead) {
			t.Fatalf("write to a dead peer: %v", err)
		}
	})
	t.Run("listener", func(t *testing.T) {
		name := testName()
		cmd := startHelper(t, "echo-server", name)
		c, err := Dial(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cmd.Process.Kill()
		cmd.Process.Wait()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, ErrPeerDead) {
			t.Fatalf("read from a dead listener's connection: %v", err)
		}
		if _, err := Dial(context.Background(), name); err == nil {
			t.Fatal("dialed a dead listener")
		}
	})
}

// TestNoLeaks: connections made and closed, normally and with a peer
// killed, leave nothing in /dev/shm and no descriptor open in this
// process.
func TestNoLeaks(t *testing.T) {
	shmBefore := listDir(t, "/dev/shm")
	l := listen(t, nil)
	// Warm up: the runtime opens its poller and the like on first use.
	c, s := dialAccept(t, l, nil)
	c.Close()
	s.Close()
	fdsBefore := listDir(t, "/proc/self/fd")

	for range 10 {
		c, s := dialAccept(t, l, small)
		go io.Copy(s, s)
		c.Write([]byte("ping"))
		io.ReadFull(c, make([]byte, 4))
		c.Close()
		s.Close()
	}
	cmd := startHelper(t, "dial-hello", l.Addr().String())
	s, err := l.AcceptConn()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Process.Kill()
	cmd.Wait() // closes the pipes to the helper too
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, s)
	s.Close()

	if fds := listDir(t, "/proc/self/fd"); len(fds) > len(fdsBefore) {
		t.Errorf("descriptors open before: %v, after: %v", fdsBefore, fds)
	}
	l.Close()
	// Other processes may use /dev/shm meanwhile; nothing of ours (named
	// after the listener or this process) may appear.
	pid := strconv.Itoa(os.Getpid())
	for _, n := range listDir(t, "/dev/shm") {
		if _, old := slices.BinarySearch(shmBefore, n); !old && (strings.Contains(n, pid) || strings.Contains(n, l.Addr().String())) {
			t.Errorf("/dev/shm/%s appeared", n)
		}
	}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}
