//go:build !(linux || darwin || freebsd || solaris)

package notify

import (
	"errors"
	"path/filepath"
	"testing"
)

// TestSocketUnsupported: where no peer-credential query exists, NewSocket
// refuses rather than make a backend that rejects every peer.
func TestSocketUnsupported(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s")
	s, err := NewSocket(SocketConfig{Listen: p, Peer: p})
	if s != nil || !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("NewSocket = %v, %v; want ErrUnsupported", s, err)
	}
}
