package main

import (
	"errors"
	"fmt"
	"io"
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
	}
	quickPlan = plan{
		StreamSizes:    []int{8, 64, 1 << 10, 64 << 10},
		PingPongSizes:  []int{64},
		MaxStreamMsgs:  100_000,
		MaxStreamBytes: 128 << 20,
		PingPongRounds: 10_000,
		PingPongWarmup: 1_000,
		TimeoutPerRun:  30 * time.Second,
	}
)

// runs lists what the plan measures for one mechanism.
func (p plan) runs() []runSpec {
	var out []runSpec
	for _, size := range p.PingPongSizes {
		out = append(out, runSpec{peerSpec: peerSpec{Pattern: patternPingPong, Size: size,
			Count: p.PingPongRounds, Warmup: p.PingPongWarmup, FullCheck: p.FullCheck}, Timeout: p.TimeoutPerRun})
	}
	for _, size := range p.StreamSizes {
		count := max(min(p.MaxStreamMsgs, p.MaxStreamBytes/size), 1)
		out = append(out, runSpec{peerSpec: peerSpec{Pattern: patternStream, Size: size,
			Count: count, FullCheck: p.FullCheck}, Timeout: p.TimeoutPerRun})
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
	runs := p.runs()
	total, done := len(mechs)*len(runs), 0
	for _, m := range mechs {
		for _, r := range runs {
			done++
			fmt.Fprintf(progress, "[%2d/%d] %-22s %-8s %6s ... ", done, total, m.Name(), r.Pattern, formatSize(r.Size))
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
