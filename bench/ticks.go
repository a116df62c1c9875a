package main

import "time"

var monoEpoch = time.Now()

// monoTicks is nanoseconds of the monotonic clock, the fallback tick.
func monoTicks() uint64 { return uint64(time.Since(monoEpoch)) }
