package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/spsc"
)

// Hidden subcommands: the demo re-executes itself with one of these to run
// its peer. A child reports on stdout with one line, "ok ..." or
// "FAIL reason", and exits 0 only on success. It stops when its stdin
// reaches end of file, which happens when the parent dies.
const (
	childStream = "__stream-consumer"
	childEcho   = "__echo"
)

// stopSeq in the sequence number field of a ping tells the echo child to
// echo it and exit.
const stopSeq = ^uint64(0)

// child is a running peer process.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser // held open: the child exits when it closes
	out   bytes.Buffer
	done  chan struct{} // closed when the child has exited
	err   error         // cmd.Wait's result, set before done closes
}

func startChild(ctx context.Context, exe string, args ...string) (*child, error) {
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 2 * time.Second
	c := &child{cmd: cmd, done: make(chan struct{})}
	cmd.Stdout = &c.out
	cmd.Stderr = os.Stderr
	var err error
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start child: %w", err)
	}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// result waits for the child to exit and returns its report line, or an
// error if it failed.
func (c *child) result() (string, error) {
	<-c.done
	lines := strings.Split(strings.TrimSpace(c.out.String()), "\n")
	line := strings.TrimSpace(lines[len(lines)-1])
	switch {
	case c.err != nil && line != "":
		return line, fmt.Errorf("child pid %d: %v: %s", c.pid(), c.err, line)
	case c.err != nil:
		return line, fmt.Errorf("child pid %d: %v", c.pid(), c.err)
	case !strings.HasPrefix(line, "ok"):
		return line, fmt.Errorf("child pid %d exited 0 but reported %q", c.pid(), line)
	}
	return line, nil
}

// stop kills the child if it is still running and waits for it.
func (c *child) stop() {
	if !c.exited() {
		c.cmd.Process.Kill()
	}
	<-c.done
}

// untilExit returns a context that ends when ctx does or the child exits,
// so that a parent blocked on a queue notices a child that gave up.
func (c *child) untilExit(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-c.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// childContext ends on SIGINT, SIGTERM or end of file on stdin.
func childContext() (context.Context, context.CancelFunc) {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	return ctx, cancel
}

// childReport prints the child's one-line report and returns its exit status.
func childReport(ok string, err error) int {
	if err != nil {
		fmt.Printf("FAIL %s\n", oneLine(err.Error()))
		return exitFail
	}
	fmt.Printf("ok %s\n", ok)
	return exitOK
}

// runChildStream receives the demo's stream and checks every message: its
// sequence number (each exactly once, in order), size, filler and CRC.
func runChildStream(args []string) int {
	var name string
	var count uint64
	var size int
	fs := newFlags(childStream)
	fs.StringVar(&name, "queue", "", "")
	fs.Uint64Var(&count, "messages", 0, "")
	fs.IntVar(&size, "size", 0, "")
	if err := parseFlags(fs, args); err != nil {
		return childReport("", err)
	}
	if size < minDemoMessage {
		return childReport("", fmt.Errorf("-size %d is below %d", size, minDemoMessage))
	}
	ctx, cancel := childContext()
	defer cancel()

	q, err := spsc.Open(ctx, ring.Shm(name), nil)
	if err != nil {
		return childReport("", err)
	}
	defer q.Close()
	c, err := q.Consumer()
	if err != nil {
		return childReport("", err)
	}
	defer c.Close()

	scratch := make([]byte, size)
	buf := make([]byte, q.MaxMessage())
	var seq, total uint64
	var crc uint32
	check := func(m []byte) error {
		if err := checkMessage(m, seq, size, scratch); err != nil {
			return err
		}
		crc = crc32.Update(crc, castagnoli, m)
		total += uint64(len(m))
		seq++
		return nil
	}
	for seq < count {
		_, err := c.TryRecvBatch(int(min(256, count-seq)), check)
		if err == spsc.ErrEmpty {
			var n int
			if n, err = c.Recv(ctx, buf); err == nil {
				err = check(buf[:n])
			}
		}
		if err != nil {
			return childReport("", fmt.Errorf("after %d messages: %w", seq, err))
		}
	}
	return childReport(summary(seq, total, crc), nil)
}

// runChildEcho sends back every message it receives until the stop message.
func runChildEcho(args []string) int {
	var reqName, rspName string
	fs := newFlags(childEcho)
	fs.StringVar(&reqName, "req", "", "")
	fs.StringVar(&rspName, "rsp", "", "")
	if err := parseFlags(fs, args); err != nil {
		return childReport("", err)
	}
	ctx, cancel := childContext()
	defer cancel()

	req, err := spsc.Open(ctx, ring.Shm(reqName), nil)
	if err != nil {
		return childReport("", err)
	}
	defer req.Close()
	rsp, err := spsc.Open(ctx, ring.Shm(rspName), nil)
	if err != nil {
		return childReport("", err)
	}
	defer rsp.Close()
	c, err := req.Consumer()
	if err != nil {
		return childReport("", err)
	}
	defer c.Close()
	p, err := rsp.Producer()
	if err != nil {
		return childReport("", err)
	}
	defer p.Close()

	buf := make([]byte, req.MaxMessage())
	for echoed := uint64(0); ; {
		n, err := c.Recv(ctx, buf)
		if err != nil {
			return childReport("", fmt.Errorf("after %d echoes: %w", echoed, err))
		}
		if err := p.Send(ctx, buf[:n]); err != nil {
			return childReport("", fmt.Errorf("after %d echoes: %w", echoed, err))
		}
		echoed++
		if n >= seqSize && binary.LittleEndian.Uint64(buf) == stopSeq {
			return childReport(fmt.Sprintf("echoed=%d", echoed), nil)
		}
	}
}
