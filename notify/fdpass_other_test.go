//go:build !unix

package notify

import (
	"errors"
	"testing"
)

// TestFDPassUnsupported: without SCM_RIGHTS, descriptor passing fails with
// errors.ErrUnsupported.
func TestFDPassUnsupported(t *testing.T) {
	if err := SendFD(nil, 0); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("SendFD: %v, want ErrUnsupported", err)
	}
	if fd, err := RecvFD(nil); fd != -1 || !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("RecvFD = %d, %v; want -1, ErrUnsupported", fd, err)
	}
}
