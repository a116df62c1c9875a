package main

import (
	"runtime"
	"strconv"
)

// Setting is one choice in how a mechanism is set up for a run: a buffer
// size, a kernel limit, an I/O mode. Every mechanism states its settings
// with the reason, and the report prints them next to its rows, so a reader
// can judge whether each peer was given its best honest chance.
type Setting struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	Why   string `json:"why"`
}

// gomaxprocsSetting describes the scheduler setting of a run: want is what
// the link asked for (0: Go's default), got what the parent runs with.
func gomaxprocsSetting(want, got int, why string) Setting {
	v := strconv.Itoa(got)
	if want <= 0 {
		v += " (Go's default)"
	}
	return Setting{Name: "GOMAXPROCS", Value: v, Why: why}
}

// setGOMAXPROCS applies n (when above zero) to this process and returns
// what undoes it.
func setGOMAXPROCS(n int) (restore func()) {
	if n <= 0 {
		return func() {}
	}
	old := runtime.GOMAXPROCS(n)
	return func() { runtime.GOMAXPROCS(old) }
}

// Reasons shared by several mechanisms.
const (
	whyBlockingIO = "plain read(2)/write(2) on the raw descriptors, so a row shows the kernel path " +
		"and not Go's netpoller; with one waiting goroutine per process, blocking I/O is what a tuned program uses"
	whyDefaultProcs = "one goroutine per process does all the work in blocking system calls, " +
		"so the Go scheduler is not on the path and its default is kept"
	whyKernelDefault = "the kernel's default, what a program gets untuned; the comparison is with the " +
		"mechanism as shipped"
)

// sizeSetting formats a byte count for a Setting value: exact where it is
// a round size, to three digits otherwise.
func sizeSetting(n int) string {
	if n < 1<<10 || n%(1<<10) == 0 {
		return formatSize(n)
	}
	return formatBytes(float64(n))
}
