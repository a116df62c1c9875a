package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shmq/shmq/bridge/internal/natstest"
	"github.com/shmq/shmq/ring"
)

// The bridges run as separate processes, so that a test can SIGKILL them:
// the test binary re-executes itself as shmq-bridge when this variable is
// set.
const helperEnv = "SHMQ_BRIDGE_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stderr))
	}
	code := m.Run()
	if demoDir != "" {
		os.RemoveAll(demoDir)
	}
	os.Exit(code)
}

// syncBuffer collects a process's stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// bridgeProc is one shmq-bridge process.
type bridgeProc struct {
	args   []string
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

func startBridge(t *testing.T, args ...string) *bridgeProc {
	t.Helper()
	p := &bridgeProc{args: args, stderr: new(syncBuffer), done: make(chan struct{})}
	p.cmd = exec.Command(os.Args[0], args...)
	p.cmd.Env = append(os.Environ(), helperEnv+"=1")
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("shmq-bridge %s stderr:\n%s", strings.Join(args, " "), p.stderr.String())
		}
	})
	return p
}

// restart starts the same command again.
func (p *bridgeProc) restart(t *testing.T) *bridgeProc { return startBridge(t, p.args...) }

func (p *bridgeProc) kill(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits for a clean exit.
func (p *bridgeProc) stop(t *testing.T) string {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("shmq-bridge %s did not stop on SIGTERM", p.args[0])
	}
	if p.err != nil {
		t.Errorf("shmq-bridge %s: %v\n%s", p.args[0], p.err, p.stderr.String())
	}
	return p.stderr.String()
}

// counter reads key=N from the last "stopped:" line of a bridge's stderr.
func counter(t *testing.T, stderr, key string) uint64 {
	t.Helper()
	i := strings.LastIndex(stderr, "stopped: ")
	if i < 0 {
		t.Fatalf("no stopped line in:\n%s", stderr)
	}
	line := stderr[i:]
	line, _, _ = strings.Cut(line, "\n")
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			var n uint64
			fmt.Sscan(v, &n)
			return n
		}
	}
	t.Fatalf("no %s= in %q", key, line)
	return 0
}

// queueName returns a /dev/shm name unique to this process and removes it
// when the test ends.
func queueName(t *testing.T, tag string) string {
	name := fmt.Sprintf("sbt%d-%s", os.Getpid(), tag)
	ring.Unlink(ring.Shm(name))
	t.Cleanup(func() { ring.Unlink(ring.Shm(name)) })
	return name
}

func startServer(t *testing.T) *natstest.Server {
	t.Helper()
	s, err := natstest.Start(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// putSeq fills b with sequence number seq followed by filler derived from it.
func putSeq(b []byte, seq uint64) {
	binary.LittleEndian.PutUint64(b, seq)
	for i := 8; i < len(b); i++ {
		b[i] = byte(seq>>(8*(i%8))) ^ byte(i)
	}
}

func checkSeq(b []byte) (uint64, bool) {
	if len(b) < 8 {
		return 0, false
	}
	seq := binary.LittleEndian.Uint64(b)
	for i := 8; i < len(b); i++ {
		if b[i] != byte(seq>>(8*(i%8)))^byte(i) {
			return seq, false
		}
	}
	return seq, true
}

var (
	demoOnce sync.Once
	demoDir  string
	demoBin  string
	demoErr  error
)

// shmqDemo builds the library's shmq-demo (the local one, through the
// replace directive) once per test run.
func shmqDemo(t *testing.T) string {
	t.Helper()
	demoOnce.Do(func() {
		demoDir, demoErr = os.MkdirTemp("", "shmq-bridge-test")
		if demoErr != nil {
			return
		}
		demoBin = filepath.Join(demoDir, "shmq-demo")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, goTool(), "build", "-o", demoBin, "github.com/shmq/shmq/cmd/shmq-demo").CombinedOutput()
		if err != nil {
			demoErr = fmt.Errorf("go build shmq-demo: %v\n%s", err, out)
		}
	})
	if demoErr != nil {
		t.Fatal(demoErr)
	}
	return demoBin
}

// goTool is the go command that runs this test (go test puts its GOROOT's
// bin first in PATH), or the one in PATH.
func goTool() string {
	if root := os.Getenv("GOROOT"); root != "" {
		if p := filepath.Join(root, "bin", "go"); fileExists(p) {
			return p
		}
	}
	return "go"
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func splitLines(s string) []string { return strings.Split(s, "\n") }

func indexOf(s, sub string) int { return strings.Index(s, sub) }
