package ofd

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func openTwice(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "lock")
	a, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestLockConflictsAcrossOpenFileDescriptions(t *testing.T) {
	a, b := openTwice(t)
	if err := TryLock(int(a.Fd()), 7); err != nil {
		t.Fatal(err)
	}
	if err := TryLock(int(b.Fd()), 7); !errors.Is(err, ErrLocked) {
		t.Fatalf("second holder: got %v, want ErrLocked", err)
	}
	if held, err := Held(int(b.Fd()), 7); err != nil || !held {
		t.Fatalf("Held from other description = %v, %v; want true", held, err)
	}
	if held, err := Held(int(b.Fd()), 8); err != nil || held {
		t.Fatalf("Held(neighbour byte) = %v, %v; want false", held, err)
	}
	if err := Unlock(int(a.Fd()), 7); err != nil {
		t.Fatal(err)
	}
	if err := TryLock(int(b.Fd()), 7); err != nil {
		t.Fatalf("after unlock: %v", err)
	}
}

func TestCloseReleases(t *testing.T) {
	a, b := openTwice(t)
	if err := TryLock(int(a.Fd()), 1<<20); err != nil { // beyond EOF is fine
		t.Fatal(err)
	}
	a.Close()
	if held, err := Held(int(b.Fd()), 1<<20); err != nil || held {
		t.Fatalf("after close: held=%v err=%v", held, err)
	}
}
