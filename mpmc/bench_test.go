package mpmc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// Cross-process benchmarks: P producer and C consumer processes (re-executed
// test binaries) move b.N 64-byte messages through one queue; the time is
// taken from the start signal until the last consumer has taken its
// end-of-stream message. The BenchmarkChan variants move b.N [64]byte values
// through a buffered channel of the same capacity between P and C
// goroutines, for comparison. Reported ns/op is per message.

const (
	benchMsgSize = 64
	benchSlots   = 1024
)

var benchShapes = []struct{ p, c int }{{1, 1}, {2, 2}, {4, 4}}

// BenchmarkProcesses runs each shape on the lock-free queue (NxM) and on
// one in locked mode (locked-NxM).
func BenchmarkProcesses(b *testing.B) {
	for _, s := range benchShapes {
		b.Run(fmt.Sprintf("%dx%d", s.p, s.c), func(b *testing.B) { benchProcesses(b, s.p, s.c, false) })
		b.Run(fmt.Sprintf("locked-%dx%d", s.p, s.c), func(b *testing.B) { benchProcesses(b, s.p, s.c, true) })
	}
}

func benchProcesses(b *testing.B, np, nc int, locked bool) {
	q := newTestQueue(b, Config{Slots: benchSlots, MaxMessage: benchMsgSize, Locked: locked})
	var cmds []*exec.Cmd
	var gos []io.WriteCloser
	start := func(role string, count int) *exec.Cmd {
		cmd := helper(b, q, role, fmt.Sprintf("MPMC_COUNT=%d", count))
		in, err := cmd.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		startAndWaitReady(b, cmd)
		cmds = append(cmds, cmd)
		gos = append(gos, in)
		return cmd
	}
	defer func() {
		for _, c := range cmds {
			if c.ProcessState == nil {
				c.Process.Kill()
				c.Wait()
			}
		}
	}()
	for i := 0; i < np; i++ {
		n := b.N / np
		if i == 0 {
			n += b.N % np
		}
		start("bench-producer", n)
	}
	for i := 0; i < nc; i++ {
		start("bench-consumer", 0)
	}
	p := mustProducer(b, q)
	b.SetBytes(benchMsgSize)
	b.ResetTimer()
	for _, in := range gos {
		io.WriteString(in, "go\n")
		in.Close()
	}
	for _, c := range cmds[:np] {
		if err := c.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	end := make([]byte, benchMsgSize)
	end[0] = 1
	for i := 0; i < nc; i++ {
		if err := p.Send(context.Background(), end); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range cmds[np:] {
		if err := c.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
}

func waitGo() error {
	fmt.Println("ready")
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if line != "go\n" {
		return fmt.Errorf("start signal %q: %v", line, err)
	}
	return nil
}

func benchProducer() error {
	q, err := openInherited()
	if err != nil {
		return err
	}
	defer q.Close()
	p, err := q.Producer()
	if err != nil {
		return err
	}
	n := envInt("MPMC_COUNT")
	msg := make([]byte, benchMsgSize)
	if err := waitGo(); err != nil {
		return err
	}
	ctx := context.Background()
	for i := 0; i < n; i++ {
		if err := p.Send(ctx, msg); err != nil {
			return err
		}
	}
	return nil
}

func benchConsumer() error {
	q, err := openInherited()
	if err != nil {
		return err
	}
	defer q.Close()
	c, err := q.Consumer()
	if err != nil {
		return err
	}
	buf := make([]byte, benchMsgSize)
	if err := waitGo(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for {
		n, err := c.Recv(ctx, buf)
		if err != nil {
			return err
		}
		if n != benchMsgSize {
			return errors.New("short message")
		}
		if buf[0] == 1 {
			return nil
		}
	}
}

func BenchmarkChan(b *testing.B) {
	for _, s := range benchShapes {
		b.Run(fmt.Sprintf("%dx%d", s.p, s.c), func(b *testing.B) {
			ch := make(chan [benchMsgSize]byte, benchSlots)
			var pw, cw sync.WaitGroup
			b.SetBytes(benchMsgSize)
			b.ResetTimer()
			for i := 0; i < s.p; i++ {
				n := b.N / s.p
				if i == 0 {
					n += b.N % s.p
				}
				pw.Go(func() {
					var m [benchMsgSize]byte
					for k := 0; k < n; k++ {
						ch <- m
					}
				})
			}
			for i := 0; i < s.c; i++ {
				cw.Go(func() {
					for range ch {
					}
				})
			}
			pw.Wait()
			close(ch)
			cw.Wait()
		})
	}
}

// BenchmarkInProcess is the queue between goroutines of one process, each
// with its own Producer or Consumer, for comparison with BenchmarkChan.
func BenchmarkInProcess(b *testing.B) {
	for _, s := range benchShapes {
		b.Run(fmt.Sprintf("%dx%d", s.p, s.c), func(b *testing.B) {
			q := newTestQueue(b, Config{Slots: benchSlots, MaxMessage: benchMsgSize})
			var ps []*Producer
			var cs []*Consumer
			for i := 0; i < s.p; i++ {
				ps = append(ps, mustProducer(b, q))
			}
			for i := 0; i < s.c; i++ {
				cs = append(cs, mustConsumer(b, q))
			}
			var pw, cw sync.WaitGroup
			ctx := context.Background()
			b.SetBytes(benchMsgSize)
			b.ResetTimer()
			for i, p := range ps {
				n := b.N / s.p
				if i == 0 {
					n += b.N % s.p
				}
				pw.Go(func() {
					msg := make([]byte, benchMsgSize)
					for k := 0; k < n; k++ {
						if err := p.Send(ctx, msg); err != nil {
							panic(err)
						}
					}
				})
			}
			for _, c := range cs {
				cw.Go(func() {
					buf := make([]byte, benchMsgSize)
					for {
						if _, err := c.Recv(ctx, buf); err != nil {
							panic(err)
						}
						if buf[0] == 1 {
							return
						}
					}
				})
			}
			pw.Wait()
			end := make([]byte, benchMsgSize)
			end[0] = 1
			for range cs {
				if err := ps[0].Send(ctx, end); err != nil {
					b.Fatal(err)
				}
			}
			cw.Wait()
		})
	}
}
