package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestPairedMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := (pairedResult{ratios: c.in}).median(); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

// TestMeasurePairs: each pair measures the floor, then the shmq row, and
// the verdict compares the median ratio with the target, whichever way the
// target points; a skipped row is an error, not a ratio.
func TestMeasurePairs(t *testing.T) {
	var order []string
	floorMsgs := []float64{10, 80, 10} // a bimodal floor...
	shmqMsgs := []float64{3, 25, 2.5}  // ...and shmq, in the same modes
	var fi, si int
	measure := func(row guardRow) (Record, error) {
		order = append(order, row.mech)
		rec := Record{Mechanism: row.mech, Pattern: row.pattern, Size: row.size, Producers: row.p, Consumers: row.c}
		if row.mech == floorRing.name {
			rec.MsgsPerSec, fi = floorMsgs[fi]*1e6, fi+1
		} else {
			rec.MsgsPerSec, si = shmqMsgs[si]*1e6, si+1
		}
		return rec, nil
	}
	res := measurePairs(targetRules[:1], 3, measure)
	if want := "floor-spsc-ring shmq-spsc floor-spsc-ring shmq-spsc floor-spsc-ring shmq-spsc"; strings.Join(order, " ") != want {
		t.Fatalf("measured %v, want %s", order, want)
	}
	r := res[0]
	if r.err != nil || len(r.ratios) != 3 || r.median() != 0.3 || !r.ok() {
		t.Fatalf("ratios %v (median %v), err %v, ok %v; want median 0.3, met", r.ratios, r.median(), r.err, r.ok())
	}
	// The table shows the floor's figures, so the reader sees its modes.
	if got, want := r.baseSpread(), "10.00M (10.00M to 80.00M) msgs/s"; got != want {
		t.Fatalf("base figures %q, want %q", got, want)
	}
	// The best floor against a single shmq run would have said 3/80 here.

	// A time target (at most): 2x is missed against 1.3.
	times := func(row guardRow) (Record, error) {
		rec := Record{Mechanism: row.mech, Pattern: row.pattern, Size: row.size}
		rec.P50Nanos = 100
		if row.mech == shmqSPSCSpin.name {
			rec.P50Nanos = 200
		}
		return rec, nil
	}
	if r := measurePairs(targetRules[2:3], 2, times)[0]; r.ok() || r.median() != 2 {
		t.Fatalf("spin target: median %v, ok %v; want 2, missed", r.median(), r.ok())
	}
	skipped := func(row guardRow) (Record, error) { return Record{Skipped: "no C compiler"}, nil }
	if r := measurePairs(targetRules[:1], 2, skipped)[0]; r.err == nil || r.ok() {
		t.Fatalf("skipped rows: err %v, ok %v; want an error", r.err, r.ok())
	}
}

// TestReferencePairs: a reference rule has no limit, so it is neither met
// nor missed whatever its ratio, and the table says so; its pairs run base
// first like a target's.
func TestReferencePairs(t *testing.T) {
	var order []string
	measure := func(row guardRow) (Record, error) {
		order = append(order, row.mech)
		rec := Record{Mechanism: row.mech, Pattern: row.pattern, Size: row.size, Producers: row.p, Consumers: row.c, NanosPerMsg: 10}
		if row.mech == floorClaim.name {
			rec.NanosPerMsg = 17
		}
		return rec, nil
	}
	res := measurePairs(referenceRules[:1], 2, measure)
	if want := "floor-vyukov floor-mpmc-claim floor-vyukov floor-mpmc-claim"; strings.Join(order, " ") != want {
		t.Fatalf("measured %v, want %s", order, want)
	}
	if r := res[0]; r.err != nil || !r.reference() || !r.ok() || r.median() != 1.7 {
		t.Fatalf("reference: median %v, err %v, ok %v", r.median(), r.err, r.ok())
	}
	var out bytes.Buffer
	writePairs(&out, "References", res, 2)
	if !strings.Contains(out.String(), "| none | 1.7 | 1.7, 1.7 | 10 ns (10 ns to 10 ns) | reference |") {
		t.Fatalf("table:\n%s", out.String())
	}
	for _, r := range referenceRules {
		if r.limit != 0 {
			t.Errorf("%s: a reference with a limit", r.what)
		}
	}
}
