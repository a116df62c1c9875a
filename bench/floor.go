package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The floors are what this machine does with the work of a row and nothing
// of shmq's: the same messages, record format and checks, in C, across
// processes (floor/floor.c). Each shmq row is reported as a ratio to its
// floor (ratio.go). On a shared VM the floors are bimodal from run to run
// (a ring of cached indices streams at 100 or at 500 M msg/s depending on
// where the two processes land), so each is measured plan.FloorRuns times
// and the best run is the floor; its configuration lists every run.

// floorProgram builds floor/floor.c once per process and returns the
// binary's path.
var floorProgram = sync.OnceValues(func() (string, error) {
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot locate the bench sources")
	}
	src := filepath.Join(filepath.Dir(self), "floor", "floor.c")
	cc, err := exec.LookPath("cc")
	if err != nil {
		return "", fmt.Errorf("no C compiler for the floors: %w", err)
	}
	out, err := os.MkdirTemp("", "shmq-bench-floor-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(out, "floor")
	build := exec.Command(cc, "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-o", bin, src)
	if msg, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the floors: %w\n%s", err, msg)
	}
	return bin, nil
})

// floorMechanism is one C floor. It runs itself (selfRunner): the program
// forks its own peers.
type floorMechanism struct {
	name     string
	mode     string // floor.c's mode
	patterns []string
	scales   bool
	what     string // for the configuration table
}

var (
	floorRing = floorMechanism{name: "floor-spsc-ring", mode: "ring", patterns: []string{patternStream}, scales: true,
		what: "an SPSC ring in C with cached indices, release/acquire cursors and shmq's record format, the capacity of the shmq rows; consumer in a forked process"}
	floorMemcpy = floorMechanism{name: "floor-memcpy", mode: "memcpy", patterns: []string{patternStream}, scales: true,
		what: "memcpy of each message into a ring-sized buffer, one process: the copy a queue cannot avoid, once"}
	floorSpin = floorMechanism{name: "floor-spin", mode: "spin", patterns: []string{patternPingPong},
		what: "ping-pong over two such C rings, both processes spinning with pause and never yielding, as shmq-spsc-spin"}
	floorFutex = floorMechanism{name: "floor-futex", mode: "futex", patterns: []string{patternPingPong},
		what: "ping-pong parking at once: the message in a shared buffer, a futex word per direction, FUTEX_WAKE every message"}
	floorVyukov = floorMechanism{name: "floor-vyukov", mode: "vyukov", patterns: []string{patternStream, patternShape},
		what: "Vyukov's bounded MPMC queue in C, slots laid out as shmq's (64-byte multiples, 16-byte header), producer and consumer processes, waiting with pause and a yield every 64 checks"}
	// floorClaim is not the floor of any row: it is shmq-mpmc's own claim
	// protocol in C, to tell what the protocol costs (over floor-vyukov)
	// from what the Go implementation adds (over this).
	floorClaim = floorMechanism{name: "floor-mpmc-claim", mode: "claim", patterns: []string{patternStream, patternShape},
		what: "the same queue with shmq's MPMC claim protocol (LAYOUT.md 14.4-14.7): an owner in every sequence word, claim by CAS of the slot word before the cursor CAS, publish and release by CAS, all sequentially consistent; no liveness checks, validation or wake protocol"}
)

func (f floorMechanism) Name() string       { return f.name }
func (f floorMechanism) Patterns() []string { return f.patterns }
func (f floorMechanism) Scales() bool       { return f.scales }

func (f floorMechanism) Check(int) error {
	_, err := floorProgram()
	return err
}

func (f floorMechanism) Setup(int) (*Link, error) {
	return nil, errors.New("a floor runs itself")
}

func (f floorMechanism) Attach(string, []*os.File, int) (Conn, error) {
	return nil, errors.New("a floor runs itself")
}

// floorResult is floor.c's report.
type floorResult struct {
	Err         string  `json:"err"`
	Received    int     `json:"received"`
	Checksum    uint64  `json:"checksum"`
	MsgsPerSec  float64 `json:"msgs_per_sec"`
	CPUPerMsg   float64 `json:"cpu_ns_per_msg"`
	NanosPerMsg float64 `json:"ns_per_msg"`
	P50         int64   `json:"p50_ns"`
	P90         int64   `json:"p90_ns"`
	P99         int64   `json:"p99_ns"`
	P999        int64   `json:"p999_ns"`
	Max         int64   `json:"max_ns"`
}

// better reports whether a is a better run than b for the pattern.
func (a floorResult) better(b floorResult, pattern string) bool {
	switch pattern {
	case patternPingPong:
		return a.P50 < b.P50
	case patternShape:
		return a.NanosPerMsg < b.NanosPerMsg
	}
	return a.MsgsPerSec > b.MsgsPerSec
}

// figure is the number a run is judged by, for the configuration table.
func (a floorResult) figure(pattern string) string {
	switch pattern {
	case patternPingPong:
		return formatNanos(a.P50)
	case patternShape:
		return fmt.Sprintf("%.1f ns", a.NanosPerMsg)
	}
	return formatCount(a.MsgsPerSec)
}

func (f floorMechanism) args(spec runSpec) []string {
	size, count := strconv.Itoa(spec.Size), strconv.Itoa(spec.Count)
	switch f.mode {
	case "spin", "futex":
		return []string{f.mode, size, count, strconv.Itoa(spec.Warmup)}
	case "vyukov", "claim":
		p, c := max(spec.Producers, 1), max(spec.Consumers, 1) // a stream is 1x1
		return []string{f.mode, strconv.Itoa(p), strconv.Itoa(c), size, count}
	}
	return []string{f.mode, size, count}
}

// RunSelf runs the floor spec.Runs times and reports the best run.
func (f floorMechanism) RunSelf(spec runSpec) (Record, error) {
	rec := Record{Mechanism: f.name, Pattern: spec.Pattern, Size: spec.Size, Producers: spec.Producers, Consumers: spec.Consumers}
	bin, err := floorProgram()
	if err != nil {
		return rec, err
	}
	runs := max(spec.Runs, 1)
	var best floorResult
	var seen []string
	for i := range runs {
		r, err := f.runOnce(bin, spec)
		if err != nil {
			return rec, err
		}
		if i == 0 || r.better(best, spec.Pattern) {
			best = r
		}
		seen = append(seen, r.figure(spec.Pattern))
	}
	rec.Messages = spec.Count
	rec.MsgsPerSec = best.MsgsPerSec
	rec.BytesPerSec = best.MsgsPerSec * float64(spec.Size)
	if spec.Pattern == patternPingPong {
		rec.BytesPerSec *= 2
	}
	rec.CPUPerMsg = best.CPUPerMsg
	rec.NanosPerMsg = best.NanosPerMsg
	rec.P50Nanos, rec.P90Nanos, rec.P99Nanos, rec.P999Nanos, rec.MaxNanos = best.P50, best.P90, best.P99, best.P999, best.Max
	rec.Config = []Setting{
		{Name: "floor", Value: "floor/floor.c " + f.mode + ", cc -O2", Why: f.what},
		{Name: "runs", Value: fmt.Sprintf("best of %d: %s", runs, strings.Join(seen, ", ")),
			Why: "the floor on a shared VM is bimodal from run to run; the best run is what the machine can do"},
	}
	rec.PathNote = "C, both sides checked every message"
	return rec, nil
}

func (f floorMechanism) runOnce(bin string, spec runSpec) (floorResult, error) {
	cmd := exec.Command(bin, f.args(spec)...)
	cmd.Stderr = os.Stderr
	timer := time.AfterFunc(spec.Timeout, func() {
		fmt.Fprintf(os.Stderr, "bench: %s stuck after %v; killing it\n", f.name, spec.Timeout)
		cmd.Process.Kill()
	})
	defer timer.Stop()
	out, err := cmd.Output()
	var r floorResult
	if jerr := json.Unmarshal(out, &r); jerr != nil {
		return r, fmt.Errorf("%s: %w (output %q)", f.name, errors.Join(err, jerr), out)
	}
	if r.Err != "" {
		err = errors.Join(errors.New(r.Err), err)
	}
	if err != nil {
		return r, fmt.Errorf("%s: %w", f.name, err)
	}
	if r.Received != spec.Count {
		return r, fmt.Errorf("%s: received %d messages, want %d", f.name, r.Received, spec.Count)
	}
	if f.mode == "ring" && r.Checksum != expectedChecksum(spec.Size, spec.Count) {
		return r, fmt.Errorf("%s: checksum %#x, want %#x", f.name, r.Checksum, expectedChecksum(spec.Size, spec.Count))
	}
	return r, nil
}
