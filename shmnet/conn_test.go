//go:build unix

package shmnet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shmq/shmq/layout"
)

// TestEcho sends streams of many sizes through an echo (io.Copy, so
// WriteTo) and back, with small rings that split and wrap them, and with
// the default ones, reading with buffers of several sizes.
func TestEcho(t *testing.T) {
	for _, d := range []*Dialer{small, {}} {
		t.Run(fmt.Sprintf("capacity=%d", d.Capacity), func(t *testing.T) {
			client, server := pair(t, d)
			go func() { io.Copy(server, server) }()
			for i, size := range []int{1, 7, 999, 1000, 1001, 4096, 65536 + 3, 1<<20 + 5} {
				want := pattern(size, byte(i))
				werr := make(chan error, 1)
				go func() { _, err := client.Write(want); werr <- err }()
				got := make([]byte, 0, size)
				buf := make([]byte, []int{1, 100, 4096, 70000}[i%4])
				for len(got) < size {
					n, err := client.Read(buf[:min(len(buf), size-len(got))])
					if err != nil {
						t.Fatalf("size %d: read after %d bytes: %v", size, len(got), err)
					}
					got = append(got, buf[:n]...)
				}
				if err := <-werr; err != nil {
					t.Fatalf("size %d: write: %v", size, err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("size %d: echo differs", size)
				}
			}
		})
	}
}

// TestPartialRead: a Read smaller than a message keeps the rest in the
// ring for the next Read, and a Read that ends inside a message releases
// exactly the messages before it.
func TestPartialRead(t *testing.T) {
	client, server := pair(t, small)
	for _, m := range []string{"0123456789", "abcdefghij", "ABCDEFGHIJ"} {
		if _, err := client.Write([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 25)
	n, err := server.Read(buf)
	if err != nil || string(buf[:n]) != "0123456789abcdefghijABCDE" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	st, err := server.r.m.q.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if want := layout.RecordSize(10); st.Used != want {
		t.Fatalf("%d ring bytes in use after the read, want %d (the third message only)", st.Used, want)
	}
	var got []byte
	for len(got) < 5 {
		n, err := server.Read(buf[:2])
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != "FGHIJ" {
		t.Fatalf("rest %q", got)
	}
	if st, _ := server.r.m.q.Stats(); st.Used != 0 {
		t.Fatalf("%d ring bytes in use after reading everything", st.Used)
	}
}

// TestReadGathers: one Read returns every message already waiting that
// fits, not just the first.
func TestReadGathers(t *testing.T) {
	client, server := pair(t, nil)
	for i := range 100 {
		if _, err := client.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 200)
	n, err := server.Read(buf)
	if err != nil || n != 100 {
		t.Fatalf("read %d bytes, %v; want all 100", n, err)
	}
	for i := range 100 {
		if buf[i] != byte(i) {
			t.Fatalf("byte %d is %d", i, buf[i])
		}
	}
}

// TestWriteSplits: a Write larger than MaxMessage goes as several
// messages, none larger than MaxMessage.
func TestWriteSplits(t *testing.T) {
	client, server := pair(t, &Dialer{Capacity: 1 << 16, MaxMessage: 1000})
	if _, err := client.Write(pattern(2500, 1)); err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for {
		m, err := server.r.c.Peek()
		if err != nil {
			break
		}
		sizes = append(sizes, len(m))
	}
	server.r.c.Rewind()
	if fmt.Sprint(sizes) != "[1000 1000 500]" {
		t.Fatalf("messages of %v bytes", sizes)
	}
}

// TestEOF: after CloseWrite the peer reads everything written, then
// io.EOF, and can still write back; after Close likewise.
func TestEOF(t *testing.T) {
	client, server := pair(t, small)
	want := pattern(10000, 3)
	go func() {
		client.Write(want)
		client.CloseWrite()
	}()
	got, err := io.ReadAll(server)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	if n, err := server.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("read after EOF: %d, %v", n, err)
	}
	if _, err := client.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after CloseWrite: %v", err)
	}
	if _, err := server.Write([]byte("back")); err != nil {
		t.Fatal(err)
	}
	server.Close()
	got, err = io.ReadAll(client)
	if err != nil || string(got) != "back" {
		t.Fatalf("half-closed client read %q, %v", got, err)
	}
}

// TestWriteToClosedPeer: writes to a peer that closed succeed while the
// ring has room, then fail with ErrPeerClosed (matching EPIPE) rather than
// block.
func TestWriteToClosedPeer(t *testing.T) {
	client, server := pair(t, small)
	server.Close()
	start := time.Now()
	var err error
	for err == nil {
		_, err = client.Write(make([]byte, 500))
	}
	if !errors.Is(err, ErrPeerClosed) || !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("got %v, want ErrPeerClosed", err)
	}
	if d := time.Since(start); d > 5*peerCheckPeriod {
		t.Fatalf("took %v to notice", d)
	}
}

// TestWriteTo: io.Copy from a Conn hands ring slices to the writer; a
// writer that stops part-way leaves the rest for the next Read.
func TestWriteTo(t *testing.T) {
	client, server := pair(t, small)
	want := pattern(5000, 9)
	go func() {
		client.Write(want)
		client.CloseWrite()
	}()
	var first bytes.Buffer
	n, err := server.WriteTo(&limitWriter{w: &first, left: 1234})
	if n != 1234 || err != errLimit {
		t.Fatalf("WriteTo: %d, %v", n, err)
	}
	rest, err := io.ReadAll(server)
	if err != nil {
		t.Fatal(err)
	}
	if got := append(first.Bytes(), rest...); !bytes.Equal(got, want) {
		t.Fatalf("stream differs (%d bytes, want %d)", len(got), len(want))
	}
}

var errLimit = errors.New("limit reached")

type limitWriter struct {
	w    io.Writer
	left int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if len(p) > l.left {
		n, _ := l.w.Write(p[:l.left])
		l.left = 0
		return n, errLimit
	}
	l.left -= len(p)
	return l.w.Write(p)
}

// TestConcurrentReadWrite: several goroutines write and read the same
// Conn at once; every byte comes back exactly once (run with -race).
func TestConcurrentReadWrite(t *testing.T) {
	client, server := pair(t, small)
	go io.Copy(server, server)
	const writers, each = 4, 30000
	var counts [writers]atomic.Int64
	var total atomic.Int64
	werrs := make(chan error, writers)
	for w := range writers {
		go func() {
			b := bytes.Repeat([]byte{byte(w)}, 100)
			for i := 0; i < each; i += len(b) {
				if _, err := client.Write(b); err != nil {
					werrs <- err
					return
				}
			}
			werrs <- nil
		}()
	}
	rerrs := make(chan error, 2)
	for range 2 {
		go func() {
			buf := make([]byte, 333)
			for {
				n, err := client.Read(buf)
				for _, b := range buf[:n] {
					if int(b) >= writers {
						rerrs <- fmt.Errorf("read byte %d, which no one wrote", b)
						return
					}
					counts[b].Add(1)
				}
				total.Add(int64(n))
				if err != nil {
					rerrs <- err
					return
				}
			}
		}()
	}
	for range writers {
		if err := <-werrs; err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); total.Load() < writers*each && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	client.SetReadDeadline(time.Now()) // stops the readers
	for range 2 {
		if err := <-rerrs; !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal(err)
		}
	}
	for w := range counts {
		if n := counts[w].Load(); n != each {
			t.Errorf("writer %d: %d bytes came back, want %d", w, n, each)
		}
	}
}
