// Command grpcbench measures a gRPC hello-world service called from another
// process over shmq (package shmnet) and over a Unix socket, in one run:
// round-trip latency percentiles of sequential calls and the call rate of
// concurrent callers, with the transports interleaved round by round.
//
//	go run ./grpcbench [-sizes 16,1024,65536] [-rounds 10] [-calls 2000] [-callers 8] [-duration 500ms]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/shmq/shmq/shmnet"
	"github.com/shmq/shmq/spsc"
)

func main() {
	maybeServe()
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "grpcbench: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	sizes := flag.String("sizes", "16,1024,65536", "request name lengths in `BYTES`, comma-separated")
	rounds := flag.Int("rounds", 10, "rounds; each measures every transport, in alternating order")
	calls := flag.Int("calls", 2000, "sequential calls per transport per round")
	callers := flag.Int("callers", 8, "concurrent callers in the throughput phase (0: skip it)")
	duration := flag.Duration("duration", 500*time.Millisecond, "throughput phase per transport per round")
	capacity := flag.Uint64("capacity", 0, "shmq ring size per direction in bytes (0: shmnet's default)")
	spin := flag.Duration("spin", 0, "how long a blocked shmq Read or Write spins before it parks, both ends (0: the default, negative: park at once)")
	flag.Parse()

	cfg := config{rounds: *rounds, calls: *calls, callers: *callers, duration: *duration}
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 {
			return fmt.Errorf("-sizes: %q", s)
		}
		cfg.sizes = append(cfg.sizes, n)
	}
	srv, err := startServer(*spin)
	if err != nil {
		return err
	}
	defer srv.stop()
	ts, err := dialTransports(srv, &shmnet.Dialer{Capacity: *capacity, Wait: spsc.Wait{Spin: *spin}})
	if err != nil {
		return err
	}
	defer closeTransports(ts)
	started := time.Now()
	res, err := compare(context.Background(), ts, cfg, cpuMeter{pids: []int{os.Getpid(), srv.cmd.Process.Pid}})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "measured in %v\n", time.Since(started).Round(time.Millisecond))
	writeTable(os.Stdout, res, cfg)
	return nil
}

// writeTable prints the results as Markdown tables.
func writeTable(w io.Writer, res []result, cfg config) {
	fmt.Fprintf(w, "gRPC SayHello, client and server in separate processes, %s/%s, %d CPUs, GOMAXPROCS %d;\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0))
	fmt.Fprintf(w, "%d rounds, transports interleaved; CPU is both processes' user+system time per call.\n\n", cfg.rounds)
	fmt.Fprintf(w, "Sequential calls (%d per transport per round):\n\n", cfg.calls)
	fmt.Fprintln(w, "| request | transport | p50 | p90 | p99 | p99.9 | mean | calls/s | CPU/call |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	for _, r := range res {
		fmt.Fprintf(w, "| %d B | %s | %s | %s | %s | %s | %s | %.0f | %s |\n", r.size, r.transport,
			us(r.percentile(0.50)), us(r.percentile(0.90)), us(r.percentile(0.99)), us(r.percentile(0.999)), us(r.mean()),
			r.seqRate, us(r.seqCPU))
	}
	if cfg.callers <= 0 || cfg.duration <= 0 {
		return
	}
	fmt.Fprintf(w, "\n%d concurrent callers on one connection (%v per transport per round):\n\n", cfg.callers, cfg.duration)
	fmt.Fprintln(w, "| request | transport | calls/s | CPU/call |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, r := range res {
		fmt.Fprintf(w, "| %d B | %s | %.0f | %s |\n", r.size, r.transport, r.parRate, us(r.parCPU))
	}
}

func us(d time.Duration) string { return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond)) }
