package notify

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shmq/shmq/internal/spinhint"
)

// Adaptive spinning, the default (Policy.Spin == 0).
//
// Spinning pays when the condition comes true sooner than a park and a
// wake would take, and is pure loss otherwise: at a low message rate a
// fixed spin burns its whole length on every message, on both sides of a
// queue. So each Line keeps a spin budget: it doubles, up to DefaultSpin,
// each time a spin catches the condition, and halves each time a spin runs
// out; below minSpinBudget it drops to zero, and waiters park at once.
//
// While the budget is zero a waiter spins only on a probe, one wait in
// every probeEvery waits, and a probe spins for up to probeSpin, longer
// than the budget ever is: long enough to cover the peer's own wake-up.
// Two processes trading messages one at a time (window 1) that both park
// each wait for the other's wake-up, so neither can see that spinning
// would pay until one of them waits long enough to catch the answer and
// then spins while the other comes round. A probe that catches the
// condition restores the full budget (a smaller one, fitted to the wait
// the probe saw, fails on the next bit of jitter and never gets back);
// within DefaultSpin it also restores probing every firstProbeEvery
// waits, later (a stream with gaps longer than a spin should last, or a
// peer waking up) it probes at most every weakProbeEvery waits. A probe
// that fails doubles the interval, up to maxProbeEvery. So a stream that speeds
// up is noticed within a few waits, and a slow one costs on average a
// small fraction of DefaultSpin per wait.
//
// The budget is shared by the goroutines of the process that wait on the
// same Line value (the handles of one Queue), and updated racily: it is a
// hint, and a lost update costs at most one spin.
//
// Spinning only helps while the peer can run, so at most maxSpinners
// goroutines of the process spin at once (as many as the processors Go
// may use, and none on a single CPU); a waiter that finds them all
// spinning parks at once, and does not count that as a failed spin.
// Processes do not coordinate: on a small machine the spinners of several
// processes can still outnumber the CPUs.

const (
	minSpinBudget   = time.Microsecond
	probeSpin       = 50 * time.Microsecond
	firstProbeEvery = 8
	weakProbeEvery  = 64
	maxProbeEvery   = 1024

	// yieldAfter is how long an adaptive spin checks its condition between
	// runtime.Gosched calls, which only let other goroutines of this
	// process run, before it gives the processor to any thread (osYield)
	// between checks instead: by then the peer is likely not running, and
	// on a machine with more busy processes than CPUs (two producers and
	// two consumers on two cores) it may be waiting for this very CPU. A
	// spinning round trip between two running processes takes well under
	// it, so ping-pong latency is unchanged; the yield itself is a system
	// call (about a microsecond on a VM) that returns at once when nothing
	// else is runnable.
	yieldAfter = 2 * time.Microsecond
)

// clockEvery is how many checks a spin makes between looks at the clock
// (and yields), each with a spin hint after it: about a quarter of a
// microsecond, short next to yieldAfter and to a spin budget.
const clockEvery = spinhint.PerMicrosecond / 4

// osYield is schedYield, a variable so that tests can count the calls.
var osYield = schedYield

// spinState is the adaptive budget of one Line.
type spinState struct {
	budget atomic.Int64  // nanoseconds; 0: park at once, except on probes
	waits  atomic.Uint32 // waits since the last probe while budget is 0
	every  atomic.Uint32 // the probe interval while budget is 0; 0 means firstProbeEvery
}

func newSpinState() *spinState {
	s := new(spinState)
	s.budget.Store(int64(DefaultSpin))
	return s
}

// sharedSpin is the state of Lines built without NewLine.
var sharedSpin = newSpinState()

// spinners counts the goroutines of this process in an adaptive spin.
var spinners atomic.Int32

// maxSpinners is how many goroutines may spin at once: as many as the
// processors Go uses (GOMAXPROCS, at most the CPUs), none on one CPU (the
// peer could not run), read once.
var maxSpinners = sync.OnceValue(func() int32 {
	if n := min(runtime.GOMAXPROCS(0), runtime.NumCPU()); n > 1 {
		return int32(n)
	}
	return 0
})

// spin checks ready for the adaptive budget and reports whether it became
// true.
func (s *spinState) spin(ready func() bool) bool {
	if ready() {
		return true
	}
	b := time.Duration(s.budget.Load())
	probe := b == 0
	if probe {
		every := s.every.Load()
		if every == 0 {
			every = firstProbeEvery
		}
		if s.waits.Add(1) < every {
			return false
		}
		b = probeSpin
	}
	if spinners.Add(1) > maxSpinners() {
		spinners.Add(-1)
		return false
	}
	ok, took := spinFor(b, true, ready)
	spinners.Add(-1)
	switch {
	case ok && probe && took <= DefaultSpin:
		s.waits.Store(0)
		s.every.Store(0)
		s.budget.Store(int64(DefaultSpin))
	case ok && probe:
		s.waits.Store(0)
		s.every.Store(min(2*max(s.every.Load(), firstProbeEvery/2), weakProbeEvery))
		s.budget.Store(int64(DefaultSpin))
	case ok:
		s.budget.Store(int64(min(max(2*b, minSpinBudget), DefaultSpin)))
	case probe:
		s.waits.Store(0)
		s.every.Store(min(2*max(s.every.Load(), firstProbeEvery), maxProbeEvery))
	default:
		if b /= 2; b < minSpinBudget {
			b = 0
		}
		s.budget.Store(int64(b))
	}
	return ok
}

// spinFor checks ready for d, yielding the processor now and then, and
// reports whether it became true and how long that took. With yield, a spin
// that lasts past yieldAfter gives the processor to any runnable thread
// between checks; without it (a fixed policy: the caller chose to hold a
// processor for latency) only to goroutines of this process.
//
// It reads the clock and yields every clockEvery checks.
func spinFor(d time.Duration, yield bool, ready func() bool) (bool, time.Duration) {
	start := time.Now()
	for i := 0; ; i++ {
		if ready() {
			return true, time.Since(start)
		}
		spinhint.Pause()
		if i%clockEvery == clockEvery-1 {
			el := time.Since(start)
			if el >= d {
				return false, el
			}
			if yield && el >= yieldAfter {
				osYield()
			} else {
				runtime.Gosched()
			}
		}
	}
}
