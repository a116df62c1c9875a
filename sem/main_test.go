package sem

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

// Helper-process pattern (as in os/exec's tests): the test binary re-execs
// itself with helperEnv naming a function in helpers.
const (
	helperEnv = "SHMQ_SEM_HELPER"
	shmEnv    = "SHMQ_SEM_SHM"
)

var helpers = map[string]func(path string, mem []byte) int{}

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		f, ok := helpers[mode]
		if !ok {
			fmt.Fprintln(os.Stderr, "unknown helper", mode)
			os.Exit(2)
		}
		path := os.Getenv(shmEnv)
		mem, err := mapShm(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(f(path, mem))
	}
	os.Exit(m.Run())
}

func startHelper(t *testing.T, mode, path string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, shmEnv+"="+path)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

func waitExit(t *testing.T, cmd *exec.Cmd, d time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("helper: %v", err)
		}
	case <-time.After(d):
		t.Fatalf("helper did not exit within %v", d)
	}
}

func mapForTest(t *testing.T) (string, []byte) {
	t.Helper()
	path := newShmFile(t)
	mem, err := mapShm(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = munmap(mem) })
	return path, mem
}
