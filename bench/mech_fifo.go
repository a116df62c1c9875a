package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// fifoMechanism uses two named pipes in a private temp directory; the child
// opens them by path, as unrelated processes would.
type fifoMechanism struct{}

func (fifoMechanism) Name() string         { return "fifo" }
func (fifoMechanism) Check(size int) error { return nil }

func (fifoMechanism) Setup(size int) (*Link, error) {
	dir, err := os.MkdirTemp("", "shmq-bench-fifo-")
	if err != nil {
		return nil, fmt.Errorf("fifo dir: %w", err)
	}
	bufSize, err := defaultPipeSize()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	toChild, toParent := filepath.Join(dir, "to-child"), filepath.Join(dir, "to-parent")
	for _, p := range []string{toChild, toParent} {
		if err := unix.Mkfifo(p, 0o600); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("mkfifo %s: %w", p, err)
		}
	}
	return &Link{
		ChildArg: toChild + "\n" + toParent,
		OpenParent: func() (Conn, error) {
			// Same open order on both sides (to-child first) so the
			// blocking opens pair up instead of deadlocking.
			w, err := unix.Open(toChild, unix.O_WRONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return nil, fmt.Errorf("open %s: %w", toChild, err)
			}
			r, err := unix.Open(toParent, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				unix.Close(w)
				return nil, fmt.Errorf("open %s: %w", toParent, err)
			}
			return &fdConn{rfd: r, wfd: w, stream: true, extra: pipeCounters(r, w)}, nil
		},
		Cleanup:       func() { os.RemoveAll(dir) },
		Config:        pipeConfig("mkfifo(3), one per direction, opened by path in both processes", bufSize),
		GOMAXPROCSWhy: whyDefaultProcs,
		CheckPath:     checkPipePath(bufSize),
	}, nil
}

func (fifoMechanism) Attach(arg string, _ []*os.File, size int) (Conn, error) {
	toChild, toParent, ok := strings.Cut(arg, "\n")
	if !ok {
		return nil, fmt.Errorf("bad fifo arg %q", arg)
	}
	r, err := unix.Open(toChild, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", toChild, err)
	}
	w, err := unix.Open(toParent, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(r)
		return nil, fmt.Errorf("open %s: %w", toParent, err)
	}
	return &fdConn{rfd: r, wfd: w, stream: true, extra: pipeCounters(r, w)}, nil
}
