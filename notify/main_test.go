package notify

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/shmq/shmq/internal/shmtest"
)

// Helper processes (as in os/exec's tests): the test binary re-executes
// itself with helperEnv.Mode naming a function in helpers, which the
// OS-specific test files fill in their init functions.
var (
	helperEnv = shmtest.Env{Mode: "SHMQ_NOTIFY_HELPER", Path: "SHMQ_NOTIFY_SHM"}
	helpers   = shmtest.Helpers{}
)

func TestMain(m *testing.M) {
	helperEnv.RunIfHelper(helpers)
	os.Exit(m.Run())
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
