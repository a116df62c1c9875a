//go:build !unix

package ofd

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestUnsupported: without fcntl record locks every call fails with
// errors.ErrUnsupported, never reporting a lock taken or free.
func TestUnsupported(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	if err := TryLock(fd, 1); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("TryLock: %v, want ErrUnsupported", err)
	}
	if err := Unlock(fd, 1); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Unlock: %v, want ErrUnsupported", err)
	}
	if _, err := Held(fd, 1); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Held: %v, want ErrUnsupported", err)
	}
}
