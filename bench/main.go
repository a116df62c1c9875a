// Command bench measures local IPC mechanisms side by side: ping-pong
// latency, one-way streaming throughput and CPU cost per message, with every
// peer in a separate process (re-executing this binary).
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"time"
)

func main() {
	maybeRunChild()
	maybeRunShape()
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	quick := flag.Bool("quick", false, "short runs (the whole comparison in well under a minute)")
	jsonPath := flag.String("json", "", "also write one JSON record per mechanism, pattern and size to `FILE`")
	plotDir := flag.String("plot", "", "also write PNG charts to `DIR`")
	only := flag.String("only", "", "measure only mechanisms whose name matches `REGEX`")
	guard := flag.Bool("guard", true, "check the regression guard's ratios (guard.go) and fail if one misses")
	size := flag.Int("size", 0, "measure only messages of `BYTES` (every pattern)")
	fanout := flag.Bool("fanout", false, "measure fan-out to 1, 2 and 4 subscriber processes instead (fanout.go)")
	pairs := flag.Int("pairs", 0, "measure the performance targets instead, floor and shmq back to back `N` times each (targets.go)")
	flag.Parse()
	if *pairs > 0 {
		p := defaultPlan
		if *quick {
			p = quickPlan
		}
		p.FloorRuns = 1
		measure := func(row guardRow) (Record, error) { return measureRow(p, row) }
		results := measurePairs(targetRules, *pairs, measure)
		writePairs(os.Stdout, "Targets, floor and shmq measured back to back", results, *pairs)
		refs := measurePairs(referenceRules, *pairs, measure)
		writePairs(os.Stdout, "Where the MPMC time goes: references, measured back to back", refs, *pairs)
		for _, r := range append(results, refs...) {
			if r.err != nil {
				return r.err
			}
		}
		return nil
	}
	if *fanout {
		plan := defaultFanoutPlan
		if *quick {
			plan = quickFanoutPlan
		}
		return runFanoutPlan(plan, os.Stdout, os.Stderr, *jsonPath)
	}

	var re *regexp.Regexp
	if *only != "" {
		var err error
		if re, err = regexp.Compile(*only); err != nil {
			return fmt.Errorf("-only: %w", err)
		}
	}
	mechs := selectMechanisms(re)
	if len(mechs) == 0 {
		return fmt.Errorf("no mechanism matches -only %q", *only)
	}
	plan := defaultPlan
	if *quick {
		plan = quickPlan
	}
	if *size > 0 {
		plan = plan.only(*size)
	}

	started := time.Now()
	records, failures := runPlan(mechs, plan, os.Stderr)
	attachFloors(records)
	fmt.Fprintf(os.Stderr, "done in %v\n", time.Since(started).Round(time.Millisecond))

	writeMarkdown(os.Stdout, records, failures)
	if *jsonPath != "" {
		if err := writeJSON(*jsonPath, records, failures); err != nil {
			return err
		}
	}
	if *plotDir != "" {
		if err := writePlots(*plotDir, records); err != nil {
			return err
		}
	}
	var errs []error
	if len(failures) > 0 {
		errs = append(errs, fmt.Errorf("%d runs failed", len(failures)))
	}
	if *guard {
		// A miss is measured again as a pair, the row and its floor back
		// to back with one floor run each: the first ratio divides one
		// run of the row by the best of several floor runs taken minutes
		// earlier, and on a bimodal VM that alone can miss by twofold
		// (-pairs and targets.go).
		again := plan
		again.FloorRuns = 1
		errs = append(errs, runGuards(os.Stderr, records, func(row guardRow) (Record, error) { return measureRow(again, row) }))
	}
	return errors.Join(errs...)
}

// measureRow measures one row of the plan again, for the guard.
func measureRow(p plan, row guardRow) (Record, error) {
	m, err := lookupMechanism(row.mech)
	if err != nil {
		return Record{}, err
	}
	for _, spec := range p.runs(m) {
		if spec.Pattern == row.pattern && spec.Size == row.size && spec.Producers == row.p && spec.Consumers == row.c {
			return runMechanism(m, spec)
		}
	}
	return Record{}, fmt.Errorf("the plan does not measure %v", row)
}
