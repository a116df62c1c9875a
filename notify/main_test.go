package notify

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

// Helper-process pattern (as in os/exec's tests): the test binary re-execs
// itself with helperEnv naming a function in helpers.
const (
	helperEnv = "SHMQ_NOTIFY_HELPER"
	shmEnv    = "SHMQ_NOTIFY_SHM"
)

// helpers maps a mode to a function run in the child; its result is the
// exit status. Filled by init functions of OS-specific test files.
var helpers = map[string]func(mem []byte) int{}

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		f, ok := helpers[mode]
		if !ok {
			fmt.Fprintln(os.Stderr, "unknown helper", mode)
			os.Exit(2)
		}
		mem, err := mapShm(os.Getenv(shmEnv))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(f(mem))
	}
	os.Exit(m.Run())
}

// startHelper starts the test binary as a helper running mode on the shared
// file at path.
func startHelper(t testing.TB, mode, path string) *exec.Cmd {
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

// waitExit waits for cmd to exit within d and fails unless it exits 0.
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

// within runs f and fails the test if it does not return within d.
func within[T any](t *testing.T, d time.Duration, f func() T) T {
	t.Helper()
	ch := make(chan T, 1)
	go func() { ch <- f() }()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("did not return within %v", d)
		panic("unreachable")
	}
}

func isCtxErr(err error, target error) bool {
	return err != nil && errors.Is(err, target)
}
