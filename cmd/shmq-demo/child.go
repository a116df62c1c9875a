package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The demo's child processes: the demo re-executes itself with a hidden
// command to run each peer of a phase. Both ends of that are here, and
// nothing of the phases: starting a child and watching it (child), waiting
// for children to attach to a queue (waitAttached), and a child's side,
// its context and its report.
//
// A child reports on stdout, last, one line, "ok ..." or "FAIL reason",
// and exits 0 only on success. It stops when its stdin reaches end of
// file, which happens when the parent dies. A child that must start on a
// signal from the parent waits for a go byte on stdin (childGoContext,
// child.sendGo).

// attachWait is how long a child may take to attach to its queue.
const attachWait = 10 * time.Second

// child is a running peer process.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser // held open: the child exits when it closes
	out   bytes.Buffer   // the child's stdout, complete once done is closed
	done  chan struct{}  // closed when the child has exited
	err   error          // cmd.Wait's result, set before done closes
}

// startChild starts exe with args, ending it with SIGTERM when ctx ends.
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

// sendGo writes the go byte that a child started with childGoContext waits
// for.
func (c *child) sendGo() error {
	if _, err := c.stdin.Write([]byte{'g'}); err != nil {
		return fmt.Errorf("starting child pid %d: %w", c.pid(), err)
	}
	return nil
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

// failure returns the error of a child that exited, if it reported one.
// A parent whose queue operation failed calls it to prefer the child's
// reason, the cause, to its own.
func (c *child) failure() error {
	if !c.exited() {
		return nil
	}
	_, err := c.result()
	return err
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

// waitAttached polls until ready reports true, one of the children exits,
// ctx ends or attachWait passes.
func waitAttached(ctx context.Context, ready func() (bool, error), chs ...*child) error {
	deadline := time.Now().Add(attachWait)
	for {
		ok, err := ready()
		if ok || err != nil {
			return err
		}
		for _, ch := range chs {
			if ch.exited() {
				_, err := ch.result()
				if err == nil {
					err = fmt.Errorf("child pid %d exited", ch.pid())
				}
				return fmt.Errorf("child exited before attaching: %w", err)
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("child pid %s did not attach within %v", pids(chs), attachWait)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitExited waits until every child of wait has exited, failing early if
// a child of watch exits first or ctx ends.
func waitExited(ctx context.Context, wait, watch []*child) error {
	for exitedCount(wait) < len(wait) {
		if err := exitedEarly(ctx, watch); err != nil {
			return err
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// exitedEarly returns an error if one of cs has exited or ctx has ended.
func exitedEarly(ctx context.Context, cs []*child) error {
	for _, c := range cs {
		if c.exited() {
			if _, err := c.result(); err != nil {
				return err
			}
			return fmt.Errorf("child pid %d exited early", c.pid())
		}
	}
	return ctx.Err()
}

func exitedCount(cs []*child) int {
	n := 0
	for _, c := range cs {
		if c.exited() {
			n++
		}
	}
	return n
}

func pids(cs []*child) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = strconv.Itoa(c.pid())
	}
	return strings.Join(s, " ")
}

// The child's side.

// childContext ends on SIGINT, SIGTERM or end of file on stdin.
func childContext() (context.Context, context.CancelFunc) {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	return ctx, cancel
}

// childGoContext is childContext for a child that waits for a go byte on
// stdin before it starts: start closes when the byte arrives.
func childGoContext() (ctx context.Context, cancel context.CancelFunc, start <-chan struct{}) {
	ctx, cancel = signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ch := make(chan struct{})
	go func() {
		var b [1]byte
		if n, _ := os.Stdin.Read(b[:]); n == 1 {
			close(ch)
			io.Copy(io.Discard, os.Stdin)
		}
		cancel()
	}()
	return ctx, cancel, ch
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
