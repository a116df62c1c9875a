//go:build unix

package shmtest

import (
	"time"

	"golang.org/x/sys/unix"
)

// haveCPUTime: cpuTime measures.
const haveCPUTime = true

// cpuTime is the CPU time this process has used, user and system.
func cpuTime() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
