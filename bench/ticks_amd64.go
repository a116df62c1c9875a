package main

// haveTicks: RDTSCP is there (tickClock turns it off if its rate is absurd).
var haveTicks = true

// ticks reads the time-stamp counter (RDTSCP, after earlier instructions
// have executed), or the monotonic clock once tickClock gave up on it.
func ticks() uint64 {
	if haveTicks {
		return rdtscp()
	}
	return monoTicks()
}

// rdtscp is in ticks_amd64.s.
func rdtscp() uint64
