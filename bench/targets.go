package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// Paired targets (-pairs N): the floors are bimodal on a shared VM, and so
// is shmq; the main run compares a shmq row measured once with the best of
// several floor runs taken minutes apart, so a ratio can say more about
// which mode each side landed in than about the code. Here each target's
// floor (one run) and shmq row are measured back to back, N times, and the
// median of the N ratios is compared with the target: like against like,
// in whatever mode the machine is in at that moment.

// targetRules are issue 12's targets, 64 B, as ratios of the same shape as
// the guard's (guard.go), with the targets' limits.
var targetRules = []guardRule{
	{what: "SPSC streaming, per-message Send",
		row: guardRow{mech: shmqSPSCDefault.name, pattern: patternStream, size: 64}, base: guardRow{mech: floorRing.name, pattern: patternStream, size: 64},
		metric: metricThroughput, atLeast: true, limit: 0.2},
	{what: "SPSC batch path",
		row: guardRow{mech: shmqSPSCBatch.name, pattern: patternStream, size: 64}, base: guardRow{mech: floorRing.name, pattern: patternStream, size: 64},
		metric: metricThroughput, atLeast: true, limit: 0.4},
	{what: "spin round trip p50",
		row: guardRow{mech: shmqSPSCSpin.name, pattern: patternPingPong, size: 64}, base: guardRow{mech: floorSpin.name, pattern: patternPingPong, size: 64},
		metric: metricP50, limit: 1.3},
	{what: "park-at-once round trip p50",
		row: guardRow{mech: shmqSPSCPark.name, pattern: patternPingPong, size: 64}, base: guardRow{mech: floorFutex.name, pattern: patternPingPong, size: 64},
		metric: metricP50, limit: 1.2},
	{what: "MPMC 1x1 ns per message",
		row: guardRow{mech: shmqMPMCDefault.name, pattern: patternShape, size: 64, p: 1, c: 1}, base: guardRow{mech: floorVyukov.name, pattern: patternShape, size: 64, p: 1, c: 1},
		metric: metricNsPerMsg, limit: 1.5},
	{what: "MPMC 2x2 ns per message",
		row: guardRow{mech: shmqMPMCDefault.name, pattern: patternShape, size: 64, p: 2, c: 2}, base: guardRow{mech: floorVyukov.name, pattern: patternShape, size: 64, p: 2, c: 2},
		metric: metricNsPerMsg, limit: 1.5},
}

// referenceRules are measured in pairs after the targets, with no limit:
// they split shmq-mpmc's distance from floor-vyukov into what its claim
// protocol costs (the protocol in C over Vyukov's queue) and what the Go
// implementation adds (shmq-mpmc over the protocol in C).
var referenceRules = []guardRule{
	{what: "MPMC 1x1: the claim protocol in C",
		row: guardRow{mech: floorClaim.name, pattern: patternShape, size: 64, p: 1, c: 1}, base: guardRow{mech: floorVyukov.name, pattern: patternShape, size: 64, p: 1, c: 1},
		metric: metricNsPerMsg},
	{what: "MPMC 1x1: Go over the same protocol in C",
		row: guardRow{mech: shmqMPMCDefault.name, pattern: patternShape, size: 64, p: 1, c: 1}, base: guardRow{mech: floorClaim.name, pattern: patternShape, size: 64, p: 1, c: 1},
		metric: metricNsPerMsg},
	{what: "MPMC 2x2: the claim protocol in C",
		row: guardRow{mech: floorClaim.name, pattern: patternShape, size: 64, p: 2, c: 2}, base: guardRow{mech: floorVyukov.name, pattern: patternShape, size: 64, p: 2, c: 2},
		metric: metricNsPerMsg},
	{what: "MPMC 2x2: Go over the same protocol in C",
		row: guardRow{mech: shmqMPMCDefault.name, pattern: patternShape, size: 64, p: 2, c: 2}, base: guardRow{mech: floorClaim.name, pattern: patternShape, size: 64, p: 2, c: 2},
		metric: metricNsPerMsg},
}

// pairedResult is one target measured in pairs.
type pairedResult struct {
	rule   guardRule
	ratios []float64 // one per pair, in the order measured
	bases  []float64 // the base's figure in each pair: which mode the floor was in
	err    error
}

// median returns the median of the ratios (the mean of the middle two for
// an even count).
func (p pairedResult) median() float64 { return median(p.ratios) }

// median returns the median of v (the mean of the middle two for an even
// count), 0 for none.
func median(v []float64) float64 {
	r := slices.Clone(v)
	slices.Sort(r)
	n := len(r)
	switch {
	case n == 0:
		return 0
	case n%2 == 1:
		return r[n/2]
	}
	return (r[n/2-1] + r[n/2]) / 2
}

// reference reports whether the rule is a reference, with no limit.
func (p pairedResult) reference() bool { return p.rule.limit == 0 }

func (p pairedResult) ok() bool {
	if p.err != nil || len(p.ratios) == 0 {
		return false
	}
	if p.reference() {
		return true
	}
	if p.rule.atLeast {
		return p.median() >= p.rule.limit
	}
	return p.median() <= p.rule.limit
}

// measurePairs measures each rule's floor once and its row once, pairs
// times, alternating, with measure (the harness; the floor's spec asks for
// one run).
func measurePairs(rules []guardRule, pairs int, measure remeasure) []pairedResult {
	out := make([]pairedResult, 0, len(rules))
	for _, rule := range rules {
		res := pairedResult{rule: rule}
		for range pairs {
			var recs []Record
			for _, row := range []guardRow{rule.base, rule.row} {
				rec, err := measure(row)
				if err == nil && rec.Skipped != "" {
					err = fmt.Errorf("%v skipped: %s", row, rec.Skipped)
				}
				if err != nil {
					res.err = err
					break
				}
				recs = append(recs, rec)
			}
			if res.err != nil {
				break
			}
			g, _ := rule.check(recs)
			if g.ratio <= 0 {
				res.err = fmt.Errorf("%v: no figure to compare", rule.row)
				break
			}
			res.ratios = append(res.ratios, g.ratio)
			res.bases = append(res.bases, figure(recs[0], rule.metric))
		}
		out = append(out, res)
	}
	return out
}

// writePairs writes the paired results as a markdown table, under title.
func writePairs(w io.Writer, title string, results []pairedResult, pairs int) {
	fmt.Fprintf(w, "### %s (%d pairs, 64 B)\n\n", title, pairs)
	fmt.Fprintln(w, "| target | ratio | limit | median | each pair, in order | base: median (range) | verdict |")
	fmt.Fprintln(w, "|---|---|---:|---:|---|---|---|")
	for _, p := range results {
		limit := fmt.Sprintf("at most %g", p.rule.limit)
		if p.rule.atLeast {
			limit = fmt.Sprintf("at least %g", p.rule.limit)
		}
		if p.reference() {
			limit = "none"
		}
		each := make([]string, len(p.ratios))
		for i, r := range p.ratios {
			each[i] = fmt.Sprintf("%.3g", r)
		}
		verdict := "met"
		switch {
		case p.err != nil:
			verdict = "error: " + p.err.Error()
		case p.reference():
			verdict = "reference"
		case !p.ok():
			verdict = "missed"
		}
		fmt.Fprintf(w, "| %s | %s / %s | %s | %.3g | %s | %s | %s |\n", p.rule.what, p.rule.row, p.rule.base, limit,
			p.median(), strings.Join(each, ", "), p.baseSpread(), verdict)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Each pair is one run of the base (a floor: one run, not the best of several) followed at once by one run of the row; the ratio is the row's figure over the base's. The median of the pairs is what the verdict compares with the target. The base's own figures show which of its modes the machine ran in.")
	fmt.Fprintln(w)
}

// baseSpread formats the base's figures: their median and range, in the
// rule's unit.
func (p pairedResult) baseSpread() string {
	if len(p.bases) == 0 {
		return ""
	}
	lo, mid, hi := slices.Min(p.bases), median(p.bases), slices.Max(p.bases)
	if p.rule.metric == metricThroughput {
		return fmt.Sprintf("%s (%s to %s) msgs/s", formatCount(mid), formatCount(lo), formatCount(hi))
	}
	ns := func(v float64) string { return formatNanos(int64(math.Round(v))) }
	return fmt.Sprintf("%s (%s to %s)", ns(mid), ns(lo), ns(hi))
}
