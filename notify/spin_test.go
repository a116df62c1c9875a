package notify

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmq/shmq/internal/shmtest"
)

// never and always are ready functions that count their calls.
func never(calls *int) func() bool  { return func() bool { *calls++; return false } }
func always(calls *int) func() bool { return func() bool { *calls++; return true } }

// withSpinners runs f with the process-wide spinner count raised by busy,
// as if busy goroutines were spinning.
func withSpinners(t *testing.T, busy int32, f func()) {
	t.Helper()
	spinners.Add(busy)
	defer spinners.Add(-busy)
	f()
}

func TestAdaptiveSpinBacksOffToParking(t *testing.T) {
	if maxSpinners() < 1 {
		t.Skip("a single CPU: the adaptive policy never spins")
	}
	s := newSpinState()
	var calls int
	for i := 0; i < 20 && s.budget.Load() != 0; i++ {
		if s.spin(never(&calls)) {
			t.Fatal("spin reported a condition that never held")
		}
	}
	if b := s.budget.Load(); b != 0 {
		t.Fatalf("budget %v after 20 failed spins, want 0", time.Duration(b))
	}
	// With no budget a wait checks once and parks, except on probes.
	calls = 0
	for range firstProbeEvery - 1 {
		s.spin(never(&calls))
	}
	if calls != firstProbeEvery-1 {
		t.Fatalf("%d checks in %d waits with no budget, want one each", calls, firstProbeEvery-1)
	}
	calls = 0
	s.spin(never(&calls)) // the probe: a full spin
	if calls < 2 {
		t.Fatalf("probe checked %d times, want a spin", calls)
	}
	if e := s.every.Load(); e != 2*firstProbeEvery {
		t.Fatalf("probe interval %d after a failed probe, want %d", e, 2*firstProbeEvery)
	}
}

func TestAdaptiveSpinProbeThatPaysOffRestoresSpinning(t *testing.T) {
	if maxSpinners() < 1 {
		t.Skip("a single CPU: the adaptive policy never spins")
	}
	var n int
	later := func() bool { n++; return n > clockEvery/2 } // true after some spinning, before its first look at the clock
	// The probe takes well under a microsecond unless the process is
	// preempted in it for DefaultSpin, which makes it a long probe (a
	// later interval, tested below); so try a few times.
	var s *spinState
	shmtest.Retry(t, func() string {
		s = newSpinState()
		s.budget.Store(0)
		s.every.Store(64)
		s.waits.Store(63)
		n = 0
		if !s.spin(later) {
			t.Fatal("probe missed a condition that came true while it spun")
		}
		if s.budget.Load() != int64(DefaultSpin) || s.every.Load() != 0 || s.waits.Load() != 0 {
			return fmt.Sprintf("after a probe that paid off: budget %v, interval %d, waits %d; want spinning again",
				time.Duration(s.budget.Load()), s.every.Load(), s.waits.Load())
		}
		return ""
	})
	// Success doubles the budget up to DefaultSpin.
	for range 20 {
		n = 0
		s.spin(later)
	}
	if b := s.budget.Load(); b != int64(DefaultSpin) {
		t.Fatalf("budget %v after 20 spins that paid off, want %v", time.Duration(b), DefaultSpin)
	}
}

// TestAdaptiveSpinLongProbe: a probe that catches the condition later than
// DefaultSpin (a peer waking up) restores a full budget but probes less
// often.
func TestAdaptiveSpinLongProbe(t *testing.T) {
	if maxSpinners() < 1 {
		t.Skip("a single CPU: the adaptive policy never spins")
	}
	// The condition comes true 30 µs into the probe; a process preempted
	// meanwhile may overshoot the probe, so try a few times.
	shmtest.Retry(t, func() string {
		s := newSpinState()
		s.budget.Store(0)
		s.every.Store(16)
		s.waits.Store(15)
		// The clock starts at the second check, the first inside spinFor,
		// so time lost before spinFor starts its own clock (a preemption
		// between spin's first check and spinFor) cannot make the probe
		// look shorter than DefaultSpin.
		var at time.Time
		var checks int
		ok := s.spin(func() bool {
			if checks++; checks == 2 {
				at = time.Now().Add(DefaultSpin + 10*time.Microsecond)
			}
			return checks > 1 && time.Now().After(at)
		})
		if !ok {
			return "probe missed a condition 30 µs away"
		}
		if b, e := s.budget.Load(), s.every.Load(); b != int64(DefaultSpin) || e != 32 {
			t.Fatalf("after a late probe: budget %v, interval %d; want %v, 32", time.Duration(b), e, DefaultSpin)
		}
		return ""
	})
}

func TestAdaptiveSpinnersCapped(t *testing.T) {
	s := newSpinState()
	var calls int
	withSpinners(t, maxSpinners(), func() {
		if s.spin(never(&calls)) {
			t.Fatal("spin reported a condition that never held")
		}
	})
	if calls != 1 {
		t.Fatalf("checked %d times with every spinner busy, want 1 (no spin)", calls)
	}
	if b := s.budget.Load(); b != int64(DefaultSpin) {
		t.Fatalf("budget %v: a skipped spin must not count as failed", time.Duration(b))
	}
	if n := spinners.Load(); n != 0 {
		t.Fatalf("spinners = %d after the spin, want 0", n)
	}
}

func TestSpinPolicies(t *testing.T) {
	var seq atomic.Uint32
	l := NewLine(&seq, WaiterSet{})
	var calls int
	if l.Spin(Policy{Spin: -1}, never(&calls)); calls != 1 {
		t.Fatalf("negative Spin checked %d times, want 1", calls)
	}
	calls = 0
	if !l.Spin(Policy{Spin: time.Hour}, always(&calls)) || calls != 1 {
		t.Fatalf("ready at once: Spin reported false or checked %d times", calls)
	}
	// A fixed spin runs its whole length whatever the adaptive state says,
	// and never counts as a spinner. It checks thousands of times in 2 ms,
	// unless the thread loses its CPU for most of them (a loaded machine):
	// that try is made again; a spin that does not spin fails every try.
	l.spin.budget.Store(0)
	shmtest.Retry(t, func() string {
		calls = 0
		start := time.Now()
		withSpinners(t, maxSpinners(), func() {
			l.Spin(Policy{Spin: 2 * time.Millisecond}, never(&calls))
		})
		if d := time.Since(start); d < 2*time.Millisecond {
			t.Fatalf("fixed 2ms spin returned after %v", d)
		}
		if calls < 128 {
			return fmt.Sprintf("fixed spin checked %d times", calls)
		}
		return ""
	})
	// The zero Policy is adaptive: with no budget it checks once.
	calls = 0
	l.Spin(Policy{}, never(&calls))
	if calls != 1 {
		t.Fatalf("adaptive spin with no budget checked %d times, want 1", calls)
	}
	if (Policy{}).WithDefaults().Spin != 0 {
		t.Fatal("WithDefaults replaced the adaptive Spin 0")
	}
}

// TestSpinYieldsOnlyWhenAdaptive: an adaptive spin that outlasts
// yieldAfter gives the processor to other threads between checks, so a
// peer sharing the CPU can run; a fixed spin, which the caller chose to hold
// a processor, never does.
func TestSpinYieldsOnlyWhenAdaptive(t *testing.T) {
	yields := 0
	osYield = func() { yields++; schedYield() }
	defer func() { osYield = schedYield }()
	// The condition comes true with the first yield, so a spin that never
	// yields runs out instead; the spin is long, so that a descheduled
	// goroutine (whose first look at the clock may come late) still
	// reaches a yield.
	if ok, _ := spinFor(time.Minute, true, func() bool { return yields > 0 }); !ok || yields == 0 {
		t.Errorf("adaptive spin: ok=%v after %d yields, want a yield", ok, yields)
	}
	yields = 0
	never := func() bool { return false }
	if ok, _ := spinFor(20*yieldAfter, false, never); ok || yields != 0 {
		t.Errorf("fixed spin of %v: ok=%v after %d yields, want none", 20*yieldAfter, ok, yields)
	}
	// A condition that comes true before yieldAfter is caught without one.
	yields = 0
	n := 0
	if ok, _ := spinFor(time.Second, true, func() bool { n++; return n > 10 }); !ok || yields != 0 {
		t.Errorf("short adaptive spin: ok=%v after %d yields, want no yield", ok, yields)
	}
}
