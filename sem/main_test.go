package sem

import (
	"os"
	"testing"

	"github.com/shmq/shmq/internal/shmtest"
)

// Helper processes (as in os/exec's tests): the test binary re-executes
// itself with helperEnv.Mode naming a function in helpers, which the
// OS-specific test files fill in their init functions.
var (
	helperEnv = shmtest.Env{Mode: "SHMQ_SEM_HELPER", Path: "SHMQ_SEM_SHM"}
	helpers   = shmtest.Helpers{}
)

func TestMain(m *testing.M) {
	helperEnv.RunIfHelper(helpers)
	os.Exit(m.Run())
}
