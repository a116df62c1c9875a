// Command shmq-exporter serves Prometheus metrics for every shmq queue in a
// directory (/dev/shm by default): depth, cursors, parked waiters, and the
// registry's counters and attached and dead entries per role. Each scrape
// lists the directory again, so queues that appear or vanish are picked up
// without a restart.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/shmq/shmq/bridge/internal/exporter"
)

const usageText = `Usage:
  shmq-exporter -listen ADDR [-dir /dev/shm]
        Serve /metrics on ADDR (host:port; :9464, 127.0.0.1:0) for every
        shmq queue in -dir that it may read (read permission is enough:
        queues are read through read-only views). Prints "listening on
        http://ADDR/metrics" once it accepts connections; stops on SIGTERM
        or SIGINT.
`

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("shmq-exporter", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	listen := fs.String("listen", "", "")
	dir := fs.String("dir", "/dev/shm", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Print(usageText)
			return 0
		}
		fmt.Fprintf(stderr, "shmq-exporter: %v\n%s", err, usageText)
		return 2
	}
	if *listen == "" || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "shmq-exporter: -listen ADDR is required and takes no arguments\n%s", usageText)
		return 2
	}
	if st, err := os.Stat(*dir); err != nil || !st.IsDir() {
		fmt.Fprintf(stderr, "shmq-exporter: -dir %s: not a directory\n", *dir)
		return 2
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "shmq-exporter: %v\n", err)
		return 1
	}
	c := &exporter.Collector{Dir: *dir}
	srv := &http.Server{Handler: exporter.Handler(c), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	fmt.Fprintf(stderr, "shmq-exporter: listening on http://%s/metrics for the queues in %s\n", l.Addr(), *dir)
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(stderr, "shmq-exporter: %v\n", err)
		return 1
	}
	return 0
}
