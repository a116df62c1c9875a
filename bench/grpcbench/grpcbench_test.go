package main

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shmq/shmq/bench/grpcbench/helloworld"
	"github.com/shmq/shmq/shmnet"
)

// TestMain lets the test binary serve as the server process, as the
// command does.
func TestMain(m *testing.M) {
	maybeServe()
	code := m.Run()
	if srv != nil {
		srv.stop()
	}
	os.Exit(code)
}

// The server process, shared by the tests and benchmarks of one run.
var (
	srvOnce sync.Once
	srv     *server
	srvErr  error
)

func sharedServer(tb testing.TB) *server {
	tb.Helper()
	srvOnce.Do(func() { srv, srvErr = startServer(0, "-test.run=^$") })
	if srvErr != nil {
		tb.Fatal(srvErr)
	}
	return srv
}

func sharedTransports(tb testing.TB) []*transport {
	tb.Helper()
	ts, err := dialTransports(sharedServer(tb), &shmnet.Dialer{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { closeTransports(ts) })
	return ts
}

// TestGreeter calls the server process over both transports, with
// requests that fit one frame and requests that span several, from
// several goroutines at once.
func TestGreeter(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, tr := range sharedTransports(t) {
		t.Run(tr.name, func(t *testing.T) {
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Go(func() {
					for _, size := range []int{0, 5, 20000, 200000} {
						req := &helloworld.HelloRequest{Name: strings.Repeat(string(rune('a'+g)), size)}
						if err := tr.call(ctx, req); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}

// TestCompare runs a tiny comparison end to end and checks that every
// number it reports is there.
func TestCompare(t *testing.T) {
	ts := sharedTransports(t)
	cfg := config{sizes: []int{16}, rounds: 2, calls: 20, callers: 2, duration: 20 * time.Millisecond}
	res, err := compare(t.Context(), ts, cfg, cpuMeter{pids: []int{os.Getpid(), srv.cmd.Process.Pid}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].transport != "shmq" || res[1].transport != "unix" {
		t.Fatalf("results %+v", res)
	}
	for _, r := range res {
		if len(r.lat) != cfg.rounds*cfg.calls || r.percentile(0.5) <= 0 || r.seqRate <= 0 || r.parRate <= 0 {
			t.Errorf("%s: implausible result: %d latencies, p50 %v, %.0f and %.0f calls/s",
				r.transport, len(r.lat), r.percentile(0.5), r.seqRate, r.parRate)
		}
	}
	var b strings.Builder
	writeTable(&b, res, cfg)
	if strings.Count(b.String(), "| 16 B | shmq |") != 2 {
		t.Errorf("table:\n%s", b.String())
	}
}

// BenchmarkGRPC measures sequential SayHello round trips to the server
// process over each transport in one run, reporting the median and 99th
// percentile besides the mean (ns/op).
func BenchmarkGRPC(b *testing.B) {
	ts := sharedTransports(b)
	for _, size := range []int{16, 4096} {
		req := &helloworld.HelloRequest{Name: strings.Repeat("x", size)}
		for _, tr := range ts {
			b.Run(tr.name+"/"+strconv.Itoa(size)+"B", func(b *testing.B) {
				lat := make([]time.Duration, 0, 1<<16)
				for b.Loop() {
					start := time.Now()
					if err := tr.call(b.Context(), req); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(start))
				}
				r := result{lat: lat}
				slices.Sort(r.lat)
				b.ReportMetric(float64(r.percentile(0.5).Nanoseconds()), "p50-ns")
				b.ReportMetric(float64(r.percentile(0.99).Nanoseconds()), "p99-ns")
			})
		}
	}
}
