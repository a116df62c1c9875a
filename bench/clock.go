package main

import (
	"sync"
	"time"
)

// Round trips are timed with a tick counter where there is one. time.Now
// reads the clock twice (wall and monotonic), which on a VM whose clock
// source is kvm-clock costs about 160 ns: more than a spinning shared-memory
// round trip, so timing each round trip with it would measure the clock.
// RDTSCP costs about 20 ns. The C floors time their round trips the same
// way (floor/floor.c), so the two are comparable.

// clock is a calibrated tick counter.
type clock struct {
	nsPerTick float64
}

// now returns the current tick.
func (c clock) now() uint64 { return ticks() }

// since returns the nanoseconds from tick t to now.
func (c clock) since(t uint64) int64 { return int64(float64(ticks()-t) * c.nsPerTick) }

// tickClock calibrates the tick counter against the monotonic clock once,
// over 20 ms. Without a usable counter (another architecture, or a rate
// that makes no sense) ticks are nanoseconds of the monotonic clock.
var tickClock = sync.OnceValue(func() clock {
	if !haveTicks {
		return clock{nsPerTick: 1}
	}
	t0, c0 := time.Now(), ticks()
	for time.Since(t0) < 20*time.Millisecond {
	}
	d, c := time.Since(t0), ticks()-c0
	k := float64(d) / float64(c)
	if c == 0 || k < 0.01 || k > 100 {
		haveTicks = false
		return clock{nsPerTick: 1}
	}
	return clock{nsPerTick: k}
})
