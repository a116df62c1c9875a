//go:build unix

package main

import (
	"math"
	"syscall"
)

// pidNote says if pid names no running process.
func pidNote(pid uint32) string {
	if pid == 0 || pid > math.MaxInt32 {
		return ""
	}
	if err := syscall.Kill(int(pid), 0); err == syscall.ESRCH {
		return " (not running)"
	}
	return ""
}
