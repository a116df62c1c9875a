//go:build linux || darwin || freebsd || solaris

package notify

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestSocketKeepsNonSocketAtListenPath: a regular file at the listen path
// refuses connections like a stale socket, but it is not one, and NewSocket
// must fail rather than delete it.
func TestSocketKeepsNonSocketAtListenPath(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s")
	if err := os.WriteFile(p, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := NewSocket(SocketConfig{Listen: p})
	if err == nil {
		s.Close()
		t.Fatal("NewSocket listened over a regular file")
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("err = %v, want EADDRINUSE", err)
	}
	if b, rerr := os.ReadFile(p); rerr != nil || string(b) != "data" {
		t.Fatalf("regular file at the listen path after NewSocket: %q, %v", b, rerr)
	}
}

// TestSocketReplacesStaleSocket: a socket nobody listens on any more (its
// process died without unlinking it) is replaced.
func TestSocketReplacesStaleSocket(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if fi, err := os.Lstat(p); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("no stale socket to replace: %v %v", fi, err)
	}
	s, err := NewSocket(SocketConfig{Listen: p})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Close left the socket path: %v", err)
	}
}

// TestSocketKeepsLiveSocket: a second listener on a live path fails and
// leaves the first one working.
func TestSocketKeepsLiveSocket(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s")
	s, err := NewSocket(SocketConfig{Listen: p})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s2, err := NewSocket(SocketConfig{Listen: p}); err == nil {
		s2.Close()
		t.Fatal("second listener on a live path succeeded")
	}
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: p, Net: "unix"})
	if err != nil {
		t.Fatalf("first listener gone: %v", err)
	}
	c.Close()
}

// TestSocketModeIgnoresUmask: the socket file's permission is the
// configured one (0600 by default), whatever the process umask. The umask
// is process-wide; no test in this package runs in parallel.
func TestSocketModeIgnoresUmask(t *testing.T) {
	for _, tc := range []struct {
		umask int
		mode  os.FileMode
		want  os.FileMode
	}{
		{0o022, 0, 0o600},
		{0o000, 0, 0o600},
		{0o077, 0o660, 0o660},
		{0o000, 0o660, 0o660},
	} {
		old := syscall.Umask(tc.umask)
		p := filepath.Join(t.TempDir(), "s")
		s, err := NewSocket(SocketConfig{Listen: p, Mode: tc.mode})
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(p)
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != tc.want {
			t.Errorf("umask %03o, Mode %03o: socket file mode %03o, want %03o", tc.umask, tc.mode, got, tc.want)
		}
	}
}
