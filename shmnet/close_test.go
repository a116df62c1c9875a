package shmnet

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// TestCloseUnblocks: Close from another goroutine unblocks a Read and a
// Write, which return errors matching net.ErrClosed; later calls fail the
// same way; the peer reads io.EOF.
func TestCloseUnblocks(t *testing.T) {
	client, server := pair(t, small)
	rerr, werr := make(chan error, 1), make(chan error, 1)
	go func() { _, err := client.Read(make([]byte, 10)); rerr <- err }()
	go func() { _, err := client.Write(make([]byte, 1<<20)); werr <- err }()
	waitParked(t, client, false)
	waitParked(t, client, true)
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]chan error{"Read": rerr, "Write": werr} {
		select {
		case err := <-ch:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("blocked %s: %v, want net.ErrClosed", name, err)
			}
		case <-time.After(5 * time.Second):
			panic("blocked " + name + " did not return")
		}
	}
	if _, err := client.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
	if _, err := client.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close: %v", err)
	}
	if err := client.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	if err := client.SetDeadline(time.Now()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("SetDeadline after Close: %v", err)
	}
	// The server drains what the Write committed before Close, then EOF.
	if _, err := io.Copy(io.Discard, server); err != nil {
		t.Fatalf("server after the client closed: %v", err)
	}
}

// TestCloseDuringWriteTo: Close does not wait for a WriteTo stuck in its
// writer, and the memory the writer holds stays mapped until it returns.
func TestCloseDuringWriteTo(t *testing.T) {
	client, server := pair(t, nil)
	client.Write([]byte("held"))
	w := &stuckWriter{entered: make(chan []byte), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() { _, err := server.WriteTo(w); done <- err }()
	held := <-w.entered
	closed := make(chan struct{})
	go func() { server.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for the writer")
	}
	if string(held) != "held" { // still mapped: reading it does not fault
		t.Fatalf("writer sees %q", held)
	}
	if server.r.m.state.Load()&^closingBit != 1 {
		t.Fatal("the WriteTo does not hold the mapping")
	}
	close(w.release)
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("WriteTo after Close: %v", err)
	}
	if server.r.m.state.Load() != closingBit {
		t.Fatal("mapping still in use after WriteTo returned")
	}
}

type stuckWriter struct {
	entered chan []byte
	release chan struct{}
}

func (w *stuckWriter) Write(p []byte) (int, error) {
	w.entered <- p
	<-w.release
	return len(p), nil
}
