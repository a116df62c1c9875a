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
	return &Link{
		ChildFiles: []*os.File{
			fileFromFD(toChild[0], "pipe-child-read"),
			fileFromFD(toParent[1], "pipe-child-write"),
		},
		OpenParent: func() (Conn, error) {
			return &fdConn{rfd: toParent[0], wfd: toChild[1], stream: true}, nil
		},
	}, nil
}

func (pipeMechanism) Attach(_ string, files []*os.File, size int) (Conn, error) {
	fds, err := fdsOf(files, 2)
	if err != nil {
		return nil, err
	}
	return &fdConn{rfd: fds[0], wfd: fds[1], stream: true}, nil
}
