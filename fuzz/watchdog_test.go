package fuzz

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// watchdog ends the fuzz process, with a report, when an operation of a fuzz
// target hangs: a hung call cannot be interrupted, and a process that dies
// makes the fuzzer save the input.
//
// It tells a hang from a stall. A call that spins uses CPU: the watchdog
// fires when the process has used spin of CPU time while the same operation
// was running. A call parked for good uses none: it fires when the same
// operation has been running for block of wall time. A process descheduled
// on a loaded machine uses no CPU either, but its operations, which return
// in microseconds once it runs, do not stay unfinished for block; the old
// watchdog's limit of 1 s of wall time alone was exceeded that way.
//
// The report lists every goroutine's stack, then names the step and the
// operation and describes the queue (state). A fuzz worker's stdout and
// stderr are /dev/null (the coordinator starts workers without them), so in
// a worker the report also goes to the coordinator's stderr, which is the
// fuzzing log.
type watchdog struct {
	spin  time.Duration // process CPU time one operation may use
	block time.Duration // wall time one operation may take
	tick  time.Duration
	state func() string // describes the queue; called only when the watchdog fires

	// seq is odd while an operation runs; op and end advance it. Only the
	// fuzz goroutine writes it.
	seq atomic.Uint64

	mu   sync.Mutex
	name string // the running or last operation; guarded by mu
	step int    // guarded by mu

	// now and fire are the clocks and the action, replaced in tests.
	now  func() sample
	fire func(report string)

	// Owned by check's caller (the watchdog goroutine): the operation seen
	// running at the last tick and when it was first seen.
	seen  uint64
	since sample

	stop, exited chan struct{}
}

// sample is a reading of the wall clock and of the process's CPU time.
type sample struct{ wall, cpu time.Duration }

func newWatchdog(state func() string) *watchdog {
	return &watchdog{
		spin:   time.Second,
		block:  20 * time.Second,
		tick:   100 * time.Millisecond,
		state:  state,
		now:    processClock,
		fire:   crash,
		stop:   make(chan struct{}),
		exited: make(chan struct{}),
	}
}

// startWatchdog starts a watchdog whose report describes the queue with
// state (nil for none). Stop it with done before the queue is unmapped.
func startWatchdog(state func() string) *watchdog {
	w := newWatchdog(state)
	go w.run()
	return w
}

func (w *watchdog) run() {
	defer close(w.exited)
	t := time.NewTicker(w.tick)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			if verdict := w.check(w.now()); verdict != "" {
				w.fire(w.report(verdict))
				return
			}
		}
	}
}

// done stops the watchdog and waits for it, so that it never reads a queue
// unmapped after done returns.
func (w *watchdog) done() {
	close(w.stop)
	<-w.exited
}

// at records the step of the input being run, for the report.
func (w *watchdog) at(step int) {
	w.mu.Lock()
	w.step = step
	w.mu.Unlock()
}

// op marks the start of an operation named name.
func (w *watchdog) op(name string) {
	w.mu.Lock()
	w.name = name
	w.mu.Unlock()
	w.seq.Store((w.seq.Load() + 1) | 1)
}

// end marks the end of the running operation.
func (w *watchdog) end() {
	if s := w.seq.Load(); s&1 != 0 {
		w.seq.Store(s + 1)
	}
}

// check is one tick: it returns why the running operation counts as hung,
// or "" if none does.
func (w *watchdog) check(now sample) string {
	seq := w.seq.Load()
	if seq&1 == 0 || seq != w.seen {
		w.seen, w.since = seq, now
		return ""
	}
	wall, cpu := now.wall-w.since.wall, now.cpu-w.since.cpu
	switch {
	case cpu >= w.spin:
		return fmt.Sprintf("spinning: the process used %v of CPU time in %v while it ran (limit %v)", cpu, wall, w.spin)
	case wall >= w.block:
		return fmt.Sprintf("blocked: it ran for %v (limit %v), the process using %v of CPU time", wall, w.block, cpu)
	}
	return ""
}

// report lists the goroutines first and ends with the verdict and the queue
// state. When the fuzzing log is a regular file, the worker appends to it
// through a file description of its own, and the coordinator's last lines,
// written at its own offset, overwrite the start of the report: the
// watchdog's own stack, not the summary.
func (w *watchdog) report(verdict string) string {
	w.mu.Lock()
	name, step := w.name, w.step
	w.mu.Unlock()
	stacks := make([]byte, 64<<10)
	stacks = stacks[:runtime.Stack(stacks, true)]
	var b strings.Builder
	fmt.Fprintf(&b, "\nfuzz watchdog: the goroutines of process %d:\n%s\n", os.Getpid(), stacks)
	fmt.Fprintf(&b, "fuzz watchdog: step %d: %s did not return; %s\n", step, name, verdict)
	if w.state != nil {
		b.WriteString(w.state())
	}
	return b.String()
}

var clockStart = time.Now()

// crash writes the report where it will be read and exits as a panic
// would. Writes to an *os.File are unbuffered system calls, so the report
// has reached the file, pipe or terminal when os.Exit runs.
func crash(report string) {
	os.Stderr.WriteString(report)
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		// O_APPEND: if the log is a file, write at its end rather than at
		// the offset 0 of a new open file description.
		log, err := os.OpenFile(fmt.Sprintf("/proc/%d/fd/2", os.Getppid()), os.O_WRONLY|os.O_APPEND, 0)
		if err == nil {
			log.WriteString(report)
			log.Close()
		}
	}
	os.Exit(2)
}
