package spsc

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmq/shmq/ring"
)

// BenchmarkSpinPolicy compares the fixed 20 µs spin, the default before
// the adaptive one, with the adaptive default (Wait.Spin 0), on both sides
// of a queue between two processes: 64-byte messages from a producer
// process to this one at an offered rate of 20k messages a second
// (rate=20k: run it with -benchtime=40000x for 2 s) and as fast as they go
// (rate=max), and round trips of one message at a time to an echo process
// (pingpong, window 1). Per message (per round trip for pingpong) it
// reports cpu-ns/msg, the CPU time of both processes (getrusage), split
// into recv-cpu-ns/msg (this process: the consumer; the requester for
// pingpong) and send-cpu-ns/msg (the peer: the producer, whose share at
// 20k includes sleeping to each message's due time; the echo process for
// pingpong), the latency percentiles (one way, from the producer's clock
// reading to the consumer's; round trips for pingpong), and parks/msg, how
// often the consumer parked.
func BenchmarkSpinPolicy(b *testing.B) {
	policies := []struct {
		name string
		spin time.Duration
	}{{"fixed20us", 20 * time.Microsecond}, {"adaptive", 0}}
	for _, load := range []struct {
		name string
		rate int // messages a second; 0: as fast as they go; -1: ping-pong
	}{{"rate=20k", 20000}, {"rate=max", 0}, {"pingpong", -1}} {
		for _, p := range policies {
			b.Run(load.name+"/"+p.name, func(b *testing.B) {
				if load.rate < 0 {
					benchSpinPingPong(b, p.spin)
				} else {
					benchSpinRate(b, load.rate, p.spin)
				}
			})
		}
	}
}

// The benchmark's peer processes: the test binary, re-executed with
// SHMQ_SPINBENCH naming the role, the queues inherited as descriptors 3
// and 4.
func init() {
	role := os.Getenv("SHMQ_SPINBENCH")
	if role == "" {
		return
	}
	if err := spinBenchPeer(role); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// monoNow reads CLOCK_MONOTONIC, which both processes share, at the cost
// of Go's clock: a base read once (the closest of a few pairs of readings,
// in case the process is preempted between two), plus the monotonic time
// since.
var monoNow = func() func() int64 {
	var base int64
	var t0 time.Time
	best := time.Duration(1 << 62)
	for range 20 {
		var ts unix.Timespec
		a := time.Now()
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
			panic(err)
		}
		if d := time.Since(a); d < best {
			best, base, t0 = d, ts.Nano(), a.Add(d/2)
		}
	}
	return func() int64 { return base + int64(time.Since(t0)) }
}()

func processCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func spinBenchPeer(role string) error {
	spin, err := time.ParseDuration(os.Getenv("SHMQ_SPIN"))
	if err != nil {
		return err
	}
	count, err := strconv.Atoi(os.Getenv("SHMQ_COUNT"))
	if err != nil {
		return err
	}
	rate, _ := strconv.Atoi(os.Getenv("SHMQ_RATE"))
	ctx := context.Background()
	w := Wait{Spin: spin}
	q, err := Open(ctx, ring.FD(3), &Options{Wait: w})
	if err != nil {
		return err
	}
	var c *Consumer
	var p *Producer
	switch role {
	case "send":
		if p, err = q.Producer(); err != nil {
			return err
		}
	case "echo":
		if c, err = q.Consumer(); err != nil {
			return err
		}
		rq, err := Open(ctx, ring.FD(4), &Options{Wait: w})
		if err != nil {
			return err
		}
		if p, err = rq.Producer(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown role %q", role)
	}
	fmt.Println("ready")
	if line, err := bufio.NewReader(os.Stdin).ReadString('\n'); line != "go\n" {
		return fmt.Errorf("start signal %q: %v", line, err)
	}
	cpu := processCPU()
	msg := make([]byte, 64)
	switch role {
	case "send":
		// Sleep to each message's due time on a thread with no timer
		// slack, so the offered rate is steady, not bursts.
		runtime.LockOSThread()
		if rate > 0 {
			if err := unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0); err != nil {
				return err
			}
		}
		start := monoNow()
		for i := range count {
			if rate > 0 {
				due := start + int64(i)*int64(time.Second)/int64(rate)
				if monoNow() < due {
					ts := unix.NsecToTimespec(due)
					for unix.ClockNanosleep(unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, &ts, nil) == unix.EINTR {
					}
				}
			}
			binary.LittleEndian.PutUint64(msg, uint64(monoNow()))
			if err := p.Send(ctx, msg); err != nil {
				return err
			}
		}
	case "echo":
		for range count {
			if _, err := c.Recv(ctx, msg); err != nil {
				return err
			}
			if err := p.Send(ctx, msg); err != nil {
				return err
			}
		}
	}
	fmt.Println("cpu", int64(processCPU()-cpu))
	// Stay attached until told: a producer that closes ends the stream.
	_, err = bufio.NewReader(os.Stdin).ReadString('\n')
	_ = err
	return nil
}

// spinPeer is a running peer process.
type spinPeer struct {
	cmd *exec.Cmd
	in  *os.File
	out *bufio.Scanner
}

func startSpinPeer(b *testing.B, role string, spin time.Duration, count, rate int, files ...*os.File) *spinPeer {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SHMQ_SPINBENCH="+role, "SHMQ_SPIN="+spin.String(),
		fmt.Sprintf("SHMQ_COUNT=%d", count), fmt.Sprintf("SHMQ_RATE=%d", rate))
	cmd.ExtraFiles = files
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdin = r
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	r.Close()
	p := &spinPeer{cmd: cmd, in: w, out: bufio.NewScanner(out)}
	b.Cleanup(func() { w.Close(); cmd.Process.Kill(); cmd.Wait() })
	p.expect(b, "ready")
	return p
}

func (p *spinPeer) expect(b *testing.B, want string) string {
	b.Helper()
	if !p.out.Scan() {
		b.Fatalf("peer exited before saying %q: %v", want, p.cmd.Wait())
	}
	line := p.out.Text()
	if !strings.HasPrefix(line, want) {
		b.Fatalf("peer said %q, want %q", line, want)
	}
	return line
}

// cpu reads the peer's CPU time for its timed section.
func (p *spinPeer) cpu(b *testing.B) time.Duration {
	b.Helper()
	n, err := strconv.ParseInt(strings.TrimPrefix(p.expect(b, "cpu "), "cpu "), 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return time.Duration(n)
}

func benchSpinRate(b *testing.B, rate int, spin time.Duration) {
	q, err := Create(ring.Memfd("spin-bench"), Config{Capacity: 1 << 16, Wait: Wait{Spin: spin}})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	c, err := q.Consumer()
	if err != nil {
		b.Fatal(err)
	}
	peer := startSpinPeer(b, "send", spin, b.N, rate, q.Segment().File())
	ctx := context.Background()
	buf := make([]byte, 64)
	lat := make([]time.Duration, b.N)
	cpu := processCPU()
	b.SetBytes(64)
	b.ResetTimer()
	fmt.Fprintln(peer.in, "go")
	for i := range b.N {
		if _, err := c.Recv(ctx, buf); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Duration(monoNow() - int64(binary.LittleEndian.Uint64(buf)))
	}
	b.StopTimer()
	st, err := q.Stats()
	if err != nil {
		b.Fatal(err)
	}
	reportSpin(b, processCPU()-cpu, peer.cpu(b), st.Consumer.Waits, lat)
	fmt.Fprintln(peer.in, "done")
}

func reportSpin(b *testing.B, recv, send time.Duration, parks uint64, lat []time.Duration) {
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(b.N) }
	b.ReportMetric(per(recv+send), "cpu-ns/msg")
	b.ReportMetric(per(recv), "recv-cpu-ns/msg")
	b.ReportMetric(per(send), "send-cpu-ns/msg")
	b.ReportMetric(float64(parks)/float64(b.N), "parks/msg")
	reportPercentiles(b, lat)
}

func benchSpinPingPong(b *testing.B, spin time.Duration) {
	w := Wait{Spin: spin}
	req, err := Create(ring.Memfd("spin-req"), Config{Capacity: 1 << 12, Wait: w})
	if err != nil {
		b.Fatal(err)
	}
	defer req.Close()
	rsp, err := Create(ring.Memfd("spin-rsp"), Config{Capacity: 1 << 12, Wait: w})
	if err != nil {
		b.Fatal(err)
	}
	defer rsp.Close()
	p, err := req.Producer()
	if err != nil {
		b.Fatal(err)
	}
	c, err := rsp.Consumer()
	if err != nil {
		b.Fatal(err)
	}
	peer := startSpinPeer(b, "echo", spin, b.N, 0, req.Segment().File(), rsp.Segment().File())
	ctx := context.Background()
	msg, buf := make([]byte, 64), make([]byte, 64)
	rtt := make([]time.Duration, b.N)
	cpu := processCPU()
	b.ResetTimer()
	fmt.Fprintln(peer.in, "go")
	for i := range b.N {
		start := time.Now()
		if err := p.Send(ctx, msg); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Recv(ctx, buf); err != nil {
			b.Fatal(err)
		}
		rtt[i] = time.Since(start)
	}
	b.StopTimer()
	st, err := rsp.Stats()
	if err != nil {
		b.Fatal(err)
	}
	reportSpin(b, processCPU()-cpu, peer.cpu(b), st.Consumer.Waits, rtt)
	fmt.Fprintln(peer.in, "done")
}
