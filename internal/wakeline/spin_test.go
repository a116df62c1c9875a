package wakeline

import (
	"testing"

	"github.com/shmq/shmq/notify"
)

// TestPreSpin: a policy that parks at once does not pre-spin at all; any
// other checks up to preSpin times and stops at the first true.
func TestPreSpin(t *testing.T) {
	calls := 0
	never := func() bool { calls++; return false }
	if PreSpin(notify.Policy{Spin: -1}, never) || calls != 0 {
		t.Fatalf("park-at-once policy: pre-spin made %d checks", calls)
	}
	if PreSpin(notify.Policy{}, never) || calls != preSpin {
		t.Fatalf("condition never true: %d checks, want %d", calls, preSpin)
	}
	calls = 0
	third := func() bool { calls++; return calls == 3 }
	if !PreSpin(notify.Policy{}, third) || calls != 3 {
		t.Fatalf("condition true at the third check: reported after %d checks", calls)
	}
}
