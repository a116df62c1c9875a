package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// The regression guard: ratios between rows of one run, never absolute
// times, each with generous slack, so that CI on a noisy 2-vCPU machine
// passes while a change that makes shmq's hot path several times slower
// fails instead of landing. A ratio that misses is measured again (up to
// guardRetries times, all rows it involves) before it counts as a failure:
// a real slowdown misses every time, a neighbour's burst of load does not.

// guardRule requires a ratio between two rows of the same run.
type guardRule struct {
	what string // for the report
	// row and base name a record each: mechanism, pattern, size (and, for
	// a shape, producers x consumers).
	row, base guardRow
	// atLeast: row's figure / base's figure must be at least limit (a
	// throughput); otherwise at most limit (a time).
	metric  string
	atLeast bool
	limit   float64
}

type guardRow struct {
	mech, pattern string
	size          int
	p, c          int
}

func (g guardRow) String() string {
	if g.pattern == patternShape {
		return fmt.Sprintf("%s %dx%d %s", g.mech, g.p, g.c, formatSize(g.size))
	}
	return fmt.Sprintf("%s %s %s", g.mech, g.pattern, formatSize(g.size))
}

func (g guardRow) matches(r Record) bool {
	return r.Mechanism == g.mech && r.Pattern == g.pattern && r.Size == g.size &&
		r.Producers == g.p && r.Consumers == g.c && r.Skipped == ""
}

// guardRules are the checks. The targets the rows are meant to meet are
// tighter (README.md's performance section); these catch regressions. The
// floors are bimodal on a shared VM (the C ring streamed 15M to 70M msg/s
// on one machine in one day), so the limits against them sit below the
// lowest ratio seen in the slow mode: shmq-spsc 0.07x the ring, the batch
// path 0.12x, the spin p50 3.05x, MPMC 1x1 4.6x.
var guardRules = []guardRule{
	{what: "SPSC streaming against a pipe",
		row: guardRow{mech: shmqSPSCDefault.name, pattern: patternStream, size: 64}, base: guardRow{mech: "pipe", pattern: patternStream, size: 64},
		metric: metricThroughput, atLeast: true, limit: 5},
	{what: "SPSC streaming against the C ring",
		row: guardRow{mech: shmqSPSCDefault.name, pattern: patternStream, size: 64}, base: guardRow{mech: floorRing.name, pattern: patternStream, size: 64},
		metric: metricThroughput, atLeast: true, limit: 0.05},
	{what: "SPSC batch streaming against the C ring",
		row: guardRow{mech: shmqSPSCBatch.name, pattern: patternStream, size: 64}, base: guardRow{mech: floorRing.name, pattern: patternStream, size: 64},
		metric: metricThroughput, atLeast: true, limit: 0.08},
	{what: "spin round trip against two spinning C processes",
		row: guardRow{mech: shmqSPSCSpin.name, pattern: patternPingPong, size: 64}, base: guardRow{mech: floorSpin.name, pattern: patternPingPong, size: 64},
		metric: metricP50, limit: 4},
	{what: "MPMC 1x1 against the C Vyukov queue",
		row: guardRow{mech: shmqMPMCDefault.name, pattern: patternShape, size: 64, p: 1, c: 1}, base: guardRow{mech: floorVyukov.name, pattern: patternShape, size: 64, p: 1, c: 1},
		metric: metricNsPerMsg, limit: 6},
}

// guardResult is one rule checked against a run.
type guardResult struct {
	rule  guardRule
	ratio float64
	ok    bool
}

func (g guardResult) String() string {
	op := "at least"
	if !g.rule.atLeast {
		op = "at most"
	}
	verdict := "ok"
	if !g.ok {
		verdict = "FAILED"
	}
	return fmt.Sprintf("%s: %s / %s = %.3g (%s %g): %s", g.rule.what, g.rule.row, g.rule.base, g.ratio, op, g.rule.limit, verdict)
}

// check evaluates a rule on records; ok is false with ratio 0 when a row is
// missing (not measured, skipped or failed).
func (g guardRule) check(records []Record) (guardResult, bool) {
	i := slices.IndexFunc(records, g.row.matches)
	j := slices.IndexFunc(records, g.base.matches)
	if i < 0 || j < 0 {
		return guardResult{rule: g}, false
	}
	a, b := figure(records[i], g.metric), figure(records[j], g.metric)
	if a <= 0 || b <= 0 {
		return guardResult{rule: g}, true
	}
	res := guardResult{rule: g, ratio: a / b}
	res.ok = res.ratio <= g.limit
	if g.atLeast {
		res.ok = res.ratio >= g.limit
	}
	return res, true
}

// guardRetries is how often a missed rule is measured again (each time as
// a pair: the row, then its floor once).
const guardRetries = 3

// remeasure runs a guard row again; the harness supplies it.
type remeasure func(guardRow) (Record, error)

// runGuards checks every rule whose rows the run measured, measuring a
// rule's rows again when it misses. It writes one line per rule to w and
// returns an error naming the rules that missed every time.
func runGuards(w io.Writer, records []Record, again remeasure) error {
	var failed []string
	for _, rule := range guardRules {
		res, measured := rule.check(records)
		if !measured {
			continue
		}
		for try := 0; !res.ok && try < guardRetries && again != nil; try++ {
			fmt.Fprintf(w, "guard: %v; measuring again\n", res)
			fresh := make([]Record, 0, 2)
			for _, row := range []guardRow{rule.row, rule.base} {
				rec, err := again(row)
				if err != nil {
					fmt.Fprintf(w, "guard: %v: %v\n", row, err)
					continue
				}
				fresh = append(fresh, rec)
			}
			if r, ok := rule.check(fresh); ok && (r.ok || better(r, res)) {
				res = r
			}
		}
		fmt.Fprintf(w, "guard: %v\n", res)
		if !res.ok {
			failed = append(failed, res.String())
		}
	}
	if len(failed) > 0 {
		return errors.New("regression guard: " + strings.Join(failed, "; "))
	}
	return nil
}

// better reports whether a is closer to passing than b.
func better(a, b guardResult) bool {
	if a.rule.atLeast {
		return a.ratio > b.ratio
	}
	return a.ratio < b.ratio
}
