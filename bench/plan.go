package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// plan sizes the runs. Stream counts are capped by bytes so large messages
// take about as long as small ones.
type plan struct {
	StreamSizes    []int
	PingPongSizes  []int
	MaxStreamMsgs  int
	MaxStreamBytes int
	PingPongRounds int
	PingPongWarmup int
	FullCheck      bool
	TimeoutPerRun  time.Duration
	// ScalingSizes are streamed too by the mechanisms that scale (shmq's
	// SPSC rows, the ring floor, memcpy): throughput against message size.
	ScalingSizes []int
	// Shapes are the MPMC runs: producer and consumer processes on one
	// queue, ShapeMsgs messages of ShapeSize bytes in all.
	Shapes    [][2]int
	ShapeSize int
	ShapeMsgs int
	// FloorRuns is how often each floor is measured; the best run counts
	// (the floors on a shared VM are bimodal, see floor.go).
	FloorRuns int
}

var (
	defaultPlan = plan{
		StreamSizes:    []int{8, 64, 1 << 10, 64 << 10},
		PingPongSizes:  []int{8, 64, 1 << 10, 64 << 10},
		MaxStreamMsgs:  500_000,
		MaxStreamBytes: 2 << 30,
		PingPongRounds: 50_000,
		PingPongWarmup: 5_000,
		TimeoutPerRun:  2 * time.Minute,
		ScalingSizes:   []int{8, 64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20},
		Shapes:         [][2]int{{1, 1}, {2, 2}, {4, 4}},
		ShapeSize:      64,
		ShapeMsgs:      1_000_000,
		FloorRuns:      5,
	}
	quickPlan = plan{
		StreamSizes:    []int{8, 64, 1 << 10, 64 << 10},
		PingPongSizes:  []int{64},
		MaxStreamMsgs:  100_000,
		MaxStreamBytes: 128 << 20,
		PingPongRounds: 10_000,
		PingPongWarmup: 1_000,
		TimeoutPerRun:  30 * time.Second,
		Shapes:         [][2]int{{1, 1}, {2, 2}},
		ShapeSize:      64,
		ShapeMsgs:      200_000,
		FloorRuns:      3,
	}
)

// only restricts the plan to messages of size bytes.
func (p plan) only(size int) plan {
	keep := func(sizes []int) []int {
		if len(sizes) == 0 {
			return nil
		}
		return []int{size}
	}
	p.StreamSizes, p.PingPongSizes, p.ScalingSizes = keep(p.StreamSizes), keep(p.PingPongSizes), keep(p.ScalingSizes)
	p.ShapeSize = size
	return p
}

// runs lists what the plan measures for mechanism m.
func (p plan) runs(m Mechanism) []runSpec {
	var out []runSpec
	streamSizes := p.StreamSizes
	if scales(m) {
		streamSizes = append(slices.Clone(p.StreamSizes), p.ScalingSizes...)
		slices.Sort(streamSizes)
		streamSizes = slices.Compact(streamSizes)
	}
	for _, pattern := range patternsOf(m) {
		switch pattern {
		case patternPingPong:
			for _, size := range p.PingPongSizes {
				out = append(out, runSpec{peerSpec: peerSpec{Pattern: patternPingPong, Size: size,
					Count: p.PingPongRounds, Warmup: p.PingPongWarmup, FullCheck: p.FullCheck}, Timeout: p.TimeoutPerRun, Runs: p.FloorRuns})
			}
		case patternStream:
			for _, size := range streamSizes {
				count := max(min(p.MaxStreamMsgs, p.MaxStreamBytes/size), 1)
				out = append(out, runSpec{peerSpec: peerSpec{Pattern: patternStream, Size: size,
					Count: count, FullCheck: p.FullCheck}, Timeout: p.TimeoutPerRun, Runs: p.FloorRuns})
			}
		case patternShape:
			for _, s := range p.Shapes {
				out = append(out, runSpec{peerSpec: peerSpec{Pattern: patternShape, Size: p.ShapeSize,
					Count: p.ShapeMsgs / s[0] * s[0], FullCheck: p.FullCheck}, Timeout: p.TimeoutPerRun,
					Producers: s[0], Consumers: s[1], Runs: p.FloorRuns})
			}
		}
	}
	return out
}

// runFailure is a run that errored, or whose path check rejected it; the
// comparison goes on without it. A rejected run's Record keeps its numbers
// and PathError.
type runFailure struct {
	Record
	Err error
}

// runPlan measures every mechanism, reporting progress to progress.
func runPlan(mechs []Mechanism, p plan, progress io.Writer) ([]Record, []runFailure) {
	var records []Record
	var failures []runFailure
	total, done := 0, 0
	for _, m := range mechs {
		total += len(p.runs(m))
	}
	for _, m := range mechs {
		for _, r := range p.runs(m) {
			done++
			what := r.Pattern
			if r.Pattern == patternShape {
				what = fmt.Sprintf("%dx%d", r.Producers, r.Consumers)
			}
			fmt.Fprintf(progress, "[%3d/%d] %-22s %-8s %6s ... ", done, total, m.Name(), what, formatSize(r.Size))
			start := time.Now()
			rec, err := runMechanism(m, r)
			switch {
			case errors.Is(err, errPathCheck):
				fmt.Fprintf(progress, "REJECTED: %v\n", err)
				failures = append(failures, runFailure{Record: rec, Err: err})
				continue
			case err != nil:
				fmt.Fprintf(progress, "FAILED: %v\n", err)
				failures = append(failures, runFailure{Record: rec, Err: err})
				continue
			case rec.Skipped != "":
				fmt.Fprintf(progress, "skipped: %s\n", rec.Skipped)
			case r.Pattern == patternShape:
				fmt.Fprintf(progress, "%.1f ns/msg (%v)\n", rec.NanosPerMsg, time.Since(start).Round(time.Millisecond))
			case r.Pattern == patternPingPong:
				fmt.Fprintf(progress, "p50 %s p99 %s (%v)\n", formatNanos(rec.P50Nanos), formatNanos(rec.P99Nanos), time.Since(start).Round(time.Millisecond))
			default:
				fmt.Fprintf(progress, "%s msg/s %s/s (%v)\n", formatCount(rec.MsgsPerSec), formatBytes(rec.BytesPerSec), time.Since(start).Round(time.Millisecond))
			}
			records = append(records, rec)
		}
	}
	return records, failures
}
