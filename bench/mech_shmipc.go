package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	shmipc "github.com/cloudwego/shmipc-go"
)

// shmipcMechanism measures CloudWeGo's shmipc-go, the leading Go peer: data
// in a shared-memory buffer pool, notifications over a Unix socket.
//
// shmipc streams only become visible to the server once the client writes,
// and the parent always speaks first, so the parent is the shmipc client and
// the child serves on a listener the parent created and handed down.
type shmipcMechanism struct{}

const shmipcHello = 0x5a

func (shmipcMechanism) Name() string         { return "shmipc-go" }
func (shmipcMechanism) Check(size int) error { return nil }

func init() {
	// shmipc logs to stdout, which carries our table; keep errors only.
	shmipc.SetLogLevel(4)
}

func (shmipcMechanism) Setup(size int) (*Link, error) {
	dir, err := os.MkdirTemp("", "shmq-bench-shmipc-")
	if err != nil {
		return nil, fmt.Errorf("shmipc dir: %w", err)
	}
	sock := filepath.Join(dir, "sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("listen %s: %w", sock, err)
	}
	ln.SetUnlinkOnClose(false) // the child serves on this path; Cleanup removes it
	lnFile, err := ln.File()
	ln.Close()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("listener file: %w", err)
	}
	var sm *shmipc.SessionManager
	return &Link{
		ChildFiles: []*os.File{lnFile},
		OpenParent: func() (Conn, error) {
			conf := shmipc.DefaultSessionManagerConfig()
			conf.Network, conf.Address = "unix", sock
			conf.MemMapType = shmipc.MemMapTypeMemFd
			conf.ShareMemoryPathPrefix = filepath.Join(dir, "buf")
			conf.QueuePath = filepath.Join(dir, "queue")
			conf.LogOutput = io.Discard // teardown "connection reset" noise; errors surface through the API
			conf.InitializeTimeout = 5 * time.Second
			sm, err = shmipc.NewSessionManager(conf)
			if err != nil {
				return nil, fmt.Errorf("shmipc session: %w", err)
			}
			stream, err := sm.GetStream()
			if err != nil {
				sm.Close()
				return nil, fmt.Errorf("shmipc stream: %w", err)
			}
			c := &shmipcConn{stream: stream, release: func() { sm.PutBack(stream); sm.Close() }}
			// The server sees the stream only once data arrives, so say hello.
			if err := c.Send([]byte{shmipcHello}); err != nil {
				c.Close()
				return nil, err
			}
			return c, nil
		},
		Cleanup: func() { os.RemoveAll(dir) },
	}, nil
}

func (shmipcMechanism) Attach(_ string, files []*os.File, size int) (Conn, error) {
	if len(files) != 1 {
		return nil, fmt.Errorf("got %d inherited files, want 1", len(files))
	}
	ln, err := net.FileListener(files[0])
	files[0].Close()
	if err != nil {
		return nil, fmt.Errorf("inherited listener: %w", err)
	}
	conn, err := ln.Accept()
	ln.Close()
	if err != nil {
		return nil, fmt.Errorf("accept: %w", err)
	}
	conf := shmipc.DefaultConfig()
	conf.LogOutput = io.Discard // teardown "connection reset" noise; errors surface through the API
	session, err := shmipc.Server(conn, conf)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("shmipc server: %w", err)
	}
	stream, err := session.AcceptStream()
	if err != nil {
		session.Close()
		return nil, fmt.Errorf("shmipc accept stream: %w", err)
	}
	c := &shmipcConn{stream: stream, release: func() { stream.Close(); session.Close() }}
	hello := make([]byte, 1)
	if err := c.Recv(hello); err != nil || hello[0] != shmipcHello {
		c.Close()
		return nil, fmt.Errorf("shmipc hello %v: %w", hello, err)
	}
	return c, nil
}

type shmipcConn struct {
	stream  *shmipc.Stream
	release func()
}

func (c *shmipcConn) Send(msg []byte) error {
	if _, err := c.stream.BufferWriter().WriteBytes(msg); err != nil {
		return fmt.Errorf("shmipc write: %w", err)
	}
	if err := c.stream.Flush(false); err != nil {
		return fmt.Errorf("shmipc flush: %w", err)
	}
	return nil
}

func (c *shmipcConn) Recv(buf []byte) error {
	r := c.stream.BufferReader()
	data, err := r.ReadBytes(len(buf))
	if err != nil {
		return fmt.Errorf("shmipc read: %w", err)
	}
	copy(buf, data)
	r.ReleasePreviousRead()
	return nil
}

func (c *shmipcConn) Close() error {
	c.release()
	return nil
}
