package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"testing"

	"golang.org/x/net/nettest"

	"github.com/shmq/shmq/shmnet"
)

var pipeSeq atomic.Int64

// TestConnConformance runs golang.org/x/net/nettest's net.Conn conformance
// suite over shmnet connections: I/O, deadlines (past, present, future,
// set concurrently), Close unblocking, and concurrent method calls.
func TestConnConformance(t *testing.T) {
	for name, d := range map[string]*shmnet.Dialer{
		"default": {},
		"small":   {Capacity: 4096, MaxMessage: 1024}, // writes split and wait for room
	} {
		t.Run(name, func(t *testing.T) {
			nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
				l, err := shmnet.Listen(fmt.Sprintf("nettest-%d-%d", os.Getpid(), pipeSeq.Add(1)))
				if err != nil {
					return nil, nil, nil, err
				}
				defer l.Close()
				accepted := make(chan net.Conn, 1)
				go func() {
					c, _ := l.Accept()
					accepted <- c
				}()
				c1, err = d.DialContext(t.Context(), l.Addr().String())
				if err != nil {
					return nil, nil, nil, err
				}
				c2 = <-accepted
				if c2 == nil {
					c1.Close()
					return nil, nil, nil, errors.New("accept failed")
				}
				return c1, c2, func() { c1.Close(); c2.Close() }, nil
			})
		})
	}
}
