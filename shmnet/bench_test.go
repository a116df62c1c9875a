package shmnet

import (
	"io"
	"net"
	"path/filepath"
	"strconv"
	"testing"
)

// Benchmarks compare a shmnet connection with a Unix stream socket, both
// between two goroutines of this process (BenchmarkGRPC in the bench
// module measures across processes, under gRPC).

type connPair func(b *testing.B) (net.Conn, net.Conn)

func shmPair(b *testing.B) (net.Conn, net.Conn) {
	l, err := Listen(testName())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	ch := make(chan *Conn, 1)
	go func() { c, _ := l.AcceptConn(); ch <- c }()
	c, err := Dial(b.Context(), l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	s := <-ch
	b.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

func unixPair(b *testing.B) (net.Conn, net.Conn) {
	l, err := net.Listen("unix", filepath.Join(b.TempDir(), "s"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	ch := make(chan net.Conn, 1)
	go func() { c, _ := l.Accept(); ch <- c }()
	c, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	s := <-ch
	b.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

var pairs = []struct {
	name string
	make connPair
}{{"shmq", shmPair}, {"unix", unixPair}}

// BenchmarkPingPong: one message of size bytes each way per op.
func BenchmarkPingPong(b *testing.B) {
	for _, p := range pairs {
		for _, size := range []int{64, 4096} {
			b.Run(p.name+"/"+itoa(size), func(b *testing.B) {
				c, s := p.make(b)
				go func() {
					buf := make([]byte, size)
					for {
						if _, err := io.ReadFull(s, buf); err != nil {
							return
						}
						if _, err := s.Write(buf); err != nil {
							return
						}
					}
				}()
				buf := make([]byte, size)
				b.SetBytes(int64(2 * size))
				for b.Loop() {
					if _, err := c.Write(buf); err != nil {
						b.Fatal(err)
					}
					if _, err := io.ReadFull(c, buf); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkStream: one-way writes of size bytes, read with a 32 KiB
// buffer (as gRPC's reader does).
func BenchmarkStream(b *testing.B) {
	for _, p := range pairs {
		for _, size := range []int{1024, 32768} {
			b.Run(p.name+"/"+itoa(size), func(b *testing.B) {
				c, s := p.make(b)
				done := make(chan struct{})
				go func() {
					io.CopyBuffer(io.Discard, struct{ io.Reader }{s}, make([]byte, 32<<10))
					close(done)
				}()
				buf := make([]byte, size)
				b.SetBytes(int64(size))
				for b.Loop() {
					if _, err := c.Write(buf); err != nil {
						b.Fatal(err)
					}
				}
				c.Close()
				<-done
			})
		}
	}
}

func itoa(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return strconv.Itoa(n/1024) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}
