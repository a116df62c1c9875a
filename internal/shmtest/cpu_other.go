//go:build !unix

package shmtest

import (
	"runtime"
	"time"
)

// cpuTime cannot be measured here; the queues whose idle cost it measures
// do not exist here either.
func cpuTime() time.Duration { panic("shmtest: no getrusage on " + runtime.GOOS) }
