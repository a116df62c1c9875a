package shmnet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/notify"
)

// The test binary doubles as the peer process: with SHMNET_HELPER set,
// TestMain runs that helper instead of the tests. A helper reports "ready"
// on stdout when it is set up, and exits when its stdin closes.
func TestMain(m *testing.M) {
	if mode := os.Getenv("SHMNET_HELPER"); mode != "" {
		if err := helper(mode, os.Getenv("SHMNET_NAME")); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func helper(mode, name string) error {
	ctx := context.Background()
	switch mode {
	case "echo-server": // serve echo connections until stdin closes
		l, err := Listen(name)
		if err != nil {
			return err
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() { io.Copy(c, c); c.Close() }()
			}
		}()
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		return l.Close()
	case "dial-hello": // dial, send "hello", and wait (to be killed)
		c, err := Dial(ctx, name)
		if err != nil {
			return err
		}
		if _, err := c.Write([]byte("hello")); err != nil {
			return err
		}
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		return c.Close()
	}
	return fmt.Errorf("unknown helper %q", mode)
}

// startHelper runs helper mode in a child process and waits for it to be
// ready. Closing stdin (or killing the process) ends it; cleanup does both.
func startHelper(t *testing.T, mode, name string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SHMNET_HELPER="+mode, "SHMNET_NAME="+name)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("helper %s: %q, %v", mode, line, err)
	}
	return cmd
}

var nameSeq atomic.Int64

// testName returns a listener name no other test (or test process) uses.
func testName() string {
	return fmt.Sprintf("t%d-%d", os.Getpid(), nameSeq.Add(1))
}

// listen starts a listener closed at cleanup.
func listen(t *testing.T, lc *ListenConfig) *Listener {
	t.Helper()
	if lc == nil {
		lc = &ListenConfig{}
	}
	l, err := lc.Listen(testName())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// pair returns the two ends of a new connection, dialed with d, closed at
// cleanup.
func pair(t *testing.T, d *Dialer) (client, server *Conn) {
	t.Helper()
	l := listen(t, nil)
	return dialAccept(t, l, d)
}

func dialAccept(t *testing.T, l *Listener, d *Dialer) (client, server *Conn) {
	t.Helper()
	if d == nil {
		d = &Dialer{}
	}
	type result struct {
		c   *Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := l.AcceptConn()
		ch <- result{c, err}
	}()
	client, err := d.Dial(context.Background(), l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { client.Close(); r.c.Close() })
	return client, r.c
}

// small is a Dialer whose rings are small enough that tests wrap them and
// split writes into many messages.
var small = &Dialer{Capacity: 4096, MaxMessage: 1000}

// waitParked waits until c's blocked Read (or Write, if write) is parked
// on its queue's wake line, so a test acts on a call that is truly blocked.
func waitParked(t *testing.T, c *Conn, write bool) {
	t.Helper()
	if !parkedBy(t, c, write, time.Now().Add(5*time.Second)) {
		t.Fatal("the call never parked")
	}
}

// parkedBy waits until c's blocked Read (or Write, if write) is parked, as
// waitParked does, and reports false if it was not by the given time.
func parkedBy(t *testing.T, c *Conn, write bool, by time.Time) bool {
	t.Helper()
	q, set, entry := c.r.m.q, layout.WaiterSetConsumers, layout.SPSCConsumerEntry
	if write {
		q, set, entry = c.w.m.q, layout.WaiterSetProducers, layout.SPSCProducerEntry
	}
	words, err := q.Segment().WaiterSet(set)
	if err != nil {
		t.Fatal(err)
	}
	ws := notify.NewWaiterSet(words)
	for !ws.Has(entry) {
		if time.Now().After(by) {
			return false
		}
		time.Sleep(100 * time.Microsecond)
	}
	return true
}

// checkTimeout fails unless err is a deadline error as net.Conn reports it.
func checkTimeout(t *testing.T, err error) {
	t.Helper()
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("got %v (%T), want a timeout matching os.ErrDeadlineExceeded", err, err)
	}
}

// pattern returns n bytes that differ from any shifted copy of themselves
// over short distances, so lost, repeated or reordered bytes show.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7+i>>8) ^ seed
	}
	return b
}
