package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// pipeMechanism uses two anonymous pipes, one per direction.
type pipeMechanism struct{}

func (pipeMechanism) Name() string         { return "pipe" }
func (pipeMechanism) Check(size int) error { return nil }

func (pipeMechanism) Setup(size int) (*Link, error) {
	var toChild, toParent [2]int
	if err := unix.Pipe2(toChild[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("pipe2: %w", err)
	}
	if err := unix.Pipe2(toParent[:], unix.O_CLOEXEC); err != nil {
		closeFDs(toChild[:]...)
		return nil, fmt.Errorf("pipe2: %w", err)
	}
	bufSize, err := defaultPipeSize()
	if err != nil {
		closeFDs(toChild[0], toChild[1], toParent[0], toParent[1])
		return nil, err
	}
	return &Link{
		ChildFiles: []*os.File{
			fileFromFD(toChild[0], "pipe-child-read"),
			fileFromFD(toParent[1], "pipe-child-write"),
		},
		OpenParent: func() (Conn, error) {
			return &fdConn{rfd: toParent[0], wfd: toChild[1], stream: true, extra: pipeCounters(toParent[0], toChild[1])}, nil
		},
		Config:        pipeConfig("pipe2(2), one per direction, inherited by the child", bufSize),
		GOMAXPROCSWhy: whyDefaultProcs,
		CheckPath:     checkPipePath(bufSize),
	}, nil
}

func (pipeMechanism) Attach(_ string, files []*os.File, size int) (Conn, error) {
	fds, err := fdsOf(files, 2)
	if err != nil {
		return nil, err
	}
	return &fdConn{rfd: fds[0], wfd: fds[1], stream: true, extra: pipeCounters(fds[0], fds[1])}, nil
}

// pipeConfig is what pipes and FIFOs share.
func pipeConfig(how string, bufSize int) []Setting {
	return []Setting{
		{Name: "objects", Value: how, Why: "the plain POSIX way to connect two processes with a pipe"},
		{Name: "pipe buffer", Value: sizeSetting(bufSize) + " per direction (F_GETPIPE_SZ)", Why: whyKernelDefault},
		{Name: "I/O", Value: "blocking read(2)/write(2)", Why: whyBlockingIO},
	}
}

// defaultPipeSize is the buffer size a new pipe gets (fs.pipe-max-size
// bounds what F_SETPIPE_SZ may ask for; the default is 16 pages).
func defaultPipeSize() (int, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return 0, fmt.Errorf("pipe2: %w", err)
	}
	defer closeFDs(p[:]...)
	n, err := unix.FcntlInt(uintptr(p[0]), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		return 0, fmt.Errorf("F_GETPIPE_SZ: %w", err)
	}
	return n, nil
}

// pipeCounters reads back the buffer size of both pipes an end uses.
func pipeCounters(rfd, wfd int) func() pathCounters {
	return func() pathCounters {
		pc := pathCounters{}
		for name, fd := range map[string]int{"read_pipe_size": rfd, "write_pipe_size": wfd} {
			n, err := unix.FcntlInt(uintptr(fd), unix.F_GETPIPE_SZ, 0)
			if err != nil {
				n = -1
			}
			pc[name] = int64(n)
		}
		return pc
	}
}

// checkPipePath checks that the messages crossed pipes of bufSize bytes in
// blocking calls.
func checkPipePath(bufSize int) pathCheck {
	return func(r pathRun) (string, error) {
		return checkFDPath(r, unix.S_IFIFO, func(c *counterChecks) {
			for _, s := range r.sides() {
				c.equal(s, "read_pipe_size", int64(bufSize))
				c.equal(s, "write_pipe_size", int64(bufSize))
			}
		})
	}
}
