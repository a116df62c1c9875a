//go:build unix

package ring

import (
	"errors"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

// guardedLoad loads a word of the data region under CatchFault.
func guardedLoad(s *Segment) (v uint64, err error) {
	defer s.CatchFault(&err, debug.SetPanicOnFault(true))
	w, err := s.Uint64(s.Header().Data)
	if err != nil {
		return 0, err
	}
	return w.Load(), nil
}

// TestCatchFault: a fault inside the mapping becomes ErrTruncated, the
// previous SetPanicOnFault setting is restored, and a panic that is not a
// fault in the mapping goes on.
func TestCatchFault(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q")
	s := create(t, File(path))
	if _, err := guardedLoad(s); err != nil {
		t.Fatalf("load before truncation: %v", err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := guardedLoad(s); !errors.Is(err, ErrTruncated) {
		t.Fatalf("load after truncation: %v, want ErrTruncated", err)
	}
	if debug.SetPanicOnFault(false) {
		t.Fatal("SetPanicOnFault left on")
	}
	defer func() {
		if r := recover(); r != "not a fault" {
			t.Fatalf("recovered %v, want the original panic", r)
		}
	}()
	func() (err error) {
		defer s.CatchFault(&err, debug.SetPanicOnFault(true))
		panic("not a fault")
	}()
	t.Fatal("the panic was swallowed")
}

// TestGuard: a zero-copy slice touched after truncation under Guard gives
// ErrTruncated, and the process lives.
func TestGuard(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q")
	s := create(t, File(path))
	data := s.Data()
	if err := s.Guard(func() error { data[0] = 1; return nil }); err != nil {
		t.Fatalf("before truncation: %v", err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	var copied []byte
	err := s.Guard(func() error { copied = append(copied, data[:64]...); return nil })
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("copy after truncation: %v, want ErrTruncated", err)
	}
	want := errors.New("mine")
	if err := s.Guard(func() error { return want }); err != want {
		t.Fatalf("fn's error: %v", err)
	}
}
