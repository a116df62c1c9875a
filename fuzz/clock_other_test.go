//go:build !unix

package fuzz

import "time"

// processClock has no CPU time here (no getrusage), so the watchdog can
// only report blocked calls, never spinning ones.
func processClock() sample { return sample{wall: time.Since(clockStart)} }
