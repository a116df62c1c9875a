//go:build !unix

package shmtest

import "time"

// haveCPUTime: no getrusage here, so CheckIdleRecv skips (the queues whose
// idle cost it measures do not exist here either).
const haveCPUTime = false

func cpuTime() time.Duration { return 0 }
