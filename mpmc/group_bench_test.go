//go:build unix

package mpmc

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmq/shmq/notify"
	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/spsc"
)

func init() { helpers["group-worker"] = groupWorker }

const groupBenchQueues = 8

// BenchmarkGroupWait compares one goroutine waiting on 8 per-worker result
// queues with a notify.Group against a goroutine per queue, each blocked in
// Recv and forwarding to a channel (with the adaptive spin, and with the
// fixed 20 µs spin that was the default before). A worker process answers
// each request, sent on a request queue, on one of the result queues in
// turn; an op is one round trip. It reports the round trip's percentiles
// and cpu-ns/op, the CPU time of both processes.
func BenchmarkGroupWait(b *testing.B) {
	for _, m := range []struct {
		name  string
		spin  time.Duration
		group bool
	}{
		{"group", 0, true},
		{"goroutine-per-queue", 0, false},
		{"goroutine-per-queue-fixed20us", 20 * time.Microsecond, false},
	} {
		b.Run(m.name, func(b *testing.B) { benchGroupWait(b, m.group, m.spin) })
	}
}

func benchGroupWait(b *testing.B, group bool, spin time.Duration) {
	w := spsc.Wait{Spin: spin}
	newQ := func(name string) *spsc.Queue {
		q, err := spsc.Create(ring.Memfd(name), spsc.Config{Capacity: 1 << 12, Wait: w})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { q.Close() })
		return q
	}
	req := newQ("group-bench-req")
	rp, err := req.Producer()
	if err != nil {
		b.Fatal(err)
	}
	files := []*os.File{req.Segment().File()}
	var cons []*spsc.Consumer
	for i := range groupBenchQueues {
		q := newQ(fmt.Sprintf("group-bench-%d", i))
		c, err := q.Consumer()
		if err != nil {
			b.Fatal(err)
		}
		cons = append(cons, c)
		files = append(files, q.Segment().File())
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MPMC_HELPER=group-worker", fmt.Sprintf("MPMC_COUNT=%d", b.N), "GROUP_SPIN="+spin.String())
	cmd.ExtraFiles = files
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { in.Close(); cmd.Process.Kill(); cmd.Wait() })
	lines := bufio.NewScanner(out)
	if !lines.Scan() || lines.Text() != "ready" {
		b.Fatalf("worker said %q", lines.Text())
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// recv returns the next result, from whichever queue it is on.
	var recv func() error
	if group {
		g := notify.NewGroup(notify.GroupConfig{Spin: spin})
		defer g.Close()
		for _, c := range cons {
			if _, err := g.Add(c); err != nil {
				b.Fatal(err)
			}
		}
		buf := make([]byte, 64)
		recv = func() error {
			for {
				k, err := g.Wait(ctx)
				if err != nil {
					return err
				}
				if _, err := cons[k].TryRecv(buf); err != spsc.ErrEmpty {
					return err
				}
			}
		}
	} else {
		results := make(chan [64]byte, groupBenchQueues)
		for _, c := range cons {
			go func() {
				var m [64]byte
				for {
					if _, err := c.Recv(ctx, m[:]); err != nil {
						return
					}
					results <- m
				}
			}()
		}
		recv = func() error {
			<-results
			return nil
		}
	}
	msg := make([]byte, 64)
	rtt := make([]time.Duration, b.N)
	cpu := benchCPU()
	b.ResetTimer()
	fmt.Fprintln(in, "go")
	for i := range b.N {
		start := time.Now()
		binary.LittleEndian.PutUint32(msg, uint32(i%groupBenchQueues))
		if err := rp.Send(ctx, msg); err != nil {
			b.Fatal(err)
		}
		if err := recv(); err != nil {
			b.Fatal(err)
		}
		rtt[i] = time.Since(start)
	}
	b.StopTimer()
	cpu = benchCPU() - cpu
	if !lines.Scan() {
		b.Fatalf("worker exited: %v", cmd.Wait())
	}
	wcpu, err := strconv.ParseInt(strings.TrimPrefix(lines.Text(), "cpu "), 10, 64)
	if err != nil {
		b.Fatalf("worker said %q", lines.Text())
	}
	b.ReportMetric(float64(cpu.Nanoseconds()+wcpu)/float64(b.N), "cpu-ns/op")
	slices.Sort(rtt)
	at := func(q float64) float64 { return float64(rtt[int(q*float64(len(rtt)-1))].Nanoseconds()) }
	b.ReportMetric(at(0.50), "p50-ns")
	b.ReportMetric(at(0.99), "p99-ns")
}

// groupWorker answers MPMC_COUNT requests from the SPSC queue at
// descriptor 3, each on the result queue (descriptors 4, ...) it names,
// then reports its CPU time.
func groupWorker() error {
	spin, err := time.ParseDuration(os.Getenv("GROUP_SPIN"))
	if err != nil {
		return err
	}
	w := spsc.Wait{Spin: spin}
	ctx := context.Background()
	req, err := spsc.Open(ctx, ring.FD(3), &spsc.Options{Wait: w})
	if err != nil {
		return err
	}
	c, err := req.Consumer()
	if err != nil {
		return err
	}
	var ps []*spsc.Producer
	for i := range groupBenchQueues {
		q, err := spsc.Open(ctx, ring.FD(4+i), &spsc.Options{Wait: w})
		if err != nil {
			return err
		}
		p, err := q.Producer()
		if err != nil {
			return err
		}
		ps = append(ps, p)
	}
	if err := waitGo(); err != nil {
		return err
	}
	cpu := benchCPU()
	msg := make([]byte, 64)
	for range envInt("MPMC_COUNT") {
		if _, err := c.Recv(ctx, msg); err != nil {
			return err
		}
		k := binary.LittleEndian.Uint32(msg)
		if int(k) >= len(ps) {
			return fmt.Errorf("request for queue %d", k)
		}
		if err := ps[k].Send(ctx, msg); err != nil {
			return err
		}
	}
	fmt.Println("cpu", int64(benchCPU()-cpu))
	// Stay attached until the parent is done: closing ends the streams.
	_, err = bufio.NewReader(os.Stdin).ReadString('\n')
	_ = err
	return nil
}

// benchCPU is the process's user and system CPU time.
func benchCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
