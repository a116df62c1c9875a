//go:build unix

package fuzz

import (
	"time"

	"golang.org/x/sys/unix"
)

func processClock() sample {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return sample{
		wall: time.Since(clockStart),
		cpu:  time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
	}
}
