package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/shmq/shmq/cmd/shmq-demo/internal/payload"
	"github.com/shmq/shmq/mpmc"
	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/spsc"
)

// Hidden subcommands: the demo re-executes itself with one of these to run
// its peer. A child reports on stdout with one line, "ok ..." or
// "FAIL reason", and exits 0 only on success. It stops when its stdin
// reaches end of file, which happens when the parent dies.
const (
	childStream       = "__stream-consumer"
	childEcho         = "__echo"
	childMPMCProducer = "__mpmc-producer"
	childMPMCConsumer = "__mpmc-consumer"
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
	if size < payload.MinChecked {
		return childReport("", fmt.Errorf("-size %d is below %d", size, payload.MinChecked))
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
	var seq uint64
	var got payload.Tally
	check := func(m []byte) error {
		if err := payload.VerifyChecked(m, seq, size, scratch); err != nil {
			return err
		}
		got.Add(m)
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
	return childReport(got.String(), nil)
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
		if n >= payload.SeqSize && payload.Seq(buf) == stopSeq {
			return childReport(fmt.Sprintf("echoed=%d", echoed), nil)
		}
	}
}

// runChildMPMCProducer sends the messages of one producer of the demo's
// MPMC phase, once the go byte arrives.
func runChildMPMCProducer(args []string) int {
	var name string
	var id, count uint64
	var size int
	fs := newFlags(childMPMCProducer)
	fs.StringVar(&name, "queue", "", "")
	fs.Uint64Var(&id, "id", 0, "")
	fs.Uint64Var(&count, "count", 0, "")
	fs.IntVar(&size, "size", 0, "")
	if err := parseFlags(fs, args); err != nil {
		return childReport("", err)
	}
	if size < payload.MinProducer {
		return childReport("", fmt.Errorf("-size %d is below %d", size, payload.MinProducer))
	}
	ctx, cancel, start := childGoContext()
	defer cancel()

	q, err := mpmc.Open(ctx, ring.Shm(name), nil)
	if err != nil {
		return childReport("", err)
	}
	defer q.Close()
	p, err := q.Producer()
	if err != nil {
		return childReport("", err)
	}
	defer p.Close()
	select {
	case <-start:
	case <-ctx.Done():
		return childReport("", fmt.Errorf("no go byte: %w", ctx.Err()))
	}

	const batch = 64
	msgs := make([][]byte, batch)
	for i := range msgs {
		msgs[i] = make([]byte, size)
	}
	var sent payload.Tally
	for seq := uint64(0); seq < count; {
		k := min(batch, count-seq)
		for j, m := range msgs[:k] {
			payload.PutProducer(m, id, seq+uint64(j))
			sent.Add(m)
		}
		if err := p.SendBatch(ctx, msgs[:k]); err != nil {
			return childReport("", fmt.Errorf("after %d messages: %w", seq, err))
		}
		seq += k
	}
	if err := p.Close(); err != nil {
		return childReport("", err)
	}
	return childReport(sent.String(), nil)
}

// runChildMPMCConsumer receives messages of the demo's MPMC phase until it
// takes a stop message, checks each producer's numbers and the filler, and
// reports per producer a bitmap of the numbers it received.
func runChildMPMCConsumer(args []string) int {
	var name string
	var producers, count uint64
	var size int
	fs := newFlags(childMPMCConsumer)
	fs.StringVar(&name, "queue", "", "")
	fs.Uint64Var(&producers, "producers", 0, "")
	fs.Uint64Var(&count, "count", 0, "")
	fs.IntVar(&size, "size", 0, "")
	if err := parseFlags(fs, args); err != nil {
		return childReport("", err)
	}
	ctx, cancel := childContext()
	defer cancel()

	q, err := mpmc.Open(ctx, ring.Shm(name), nil)
	if err != nil {
		return childReport("", err)
	}
	defer q.Close()
	c, err := q.Consumer()
	if err != nil {
		return childReport("", err)
	}
	defer c.Close()

	chk := payload.NewProducerChecker(q.MaxMessage(), producers, count)
	var got payload.Tally
	var wrongSize uint64
	stopped := false
	accept := func(m []byte) error {
		if len(m) >= payload.MinProducer && payload.ID(m) == payload.StopID {
			stopped = true
			return nil
		}
		if len(m) != size {
			wrongSize++
		}
		chk.Add(m)
		got.Add(m)
		return nil
	}
	buf := make([]byte, q.MaxMessage())
	for !stopped {
		_, err := c.TryRecvBatch(256, accept)
		if err == mpmc.ErrEmpty {
			var k int
			if k, err = c.Recv(ctx, buf); err == nil {
				accept(buf[:k])
			}
		}
		if err != nil {
			return childReport("", fmt.Errorf("after %d messages: %w", got.Messages, err))
		}
	}
	if err := c.Close(); err != nil {
		return childReport("", err)
	}
	if _, repeats := chk.Totals(); repeats > 0 || chk.Corrupt > 0 || chk.Short > 0 || wrongSize > 0 {
		return childReport("", fmt.Errorf("%s: %d repeated or out-of-order, %d corrupt or out of range, %d short, %d of the wrong size",
			chk.Summary(0), repeats, chk.Corrupt, chk.Short, wrongSize))
	}
	for _, s := range chk.Streams() {
		fmt.Printf("%s bitmap=%s\n", s, encodeBitmap(s.Seen))
	}
	return childReport(got.String(), nil)
}
