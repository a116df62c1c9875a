package main

import (
	"io"
	"strings"
	"testing"
)

// guardRecords is a run in which every guard rule holds with room to spare.
func guardRecords() []Record {
	return []Record{
		{Mechanism: "pipe", Pattern: patternStream, Size: 64, MsgsPerSec: 2e6},
		{Mechanism: floorRing.name, Pattern: patternStream, Size: 64, MsgsPerSec: 400e6},
		{Mechanism: shmqSPSCDefault.name, Pattern: patternStream, Size: 64, MsgsPerSec: 60e6},
		{Mechanism: shmqSPSCBatch.name, Pattern: patternStream, Size: 64, MsgsPerSec: 200e6},
		{Mechanism: floorSpin.name, Pattern: patternPingPong, Size: 64, P50Nanos: 130},
		{Mechanism: shmqSPSCSpin.name, Pattern: patternPingPong, Size: 64, P50Nanos: 170},
		{Mechanism: floorVyukov.name, Pattern: patternShape, Size: 64, Producers: 1, Consumers: 1, NanosPerMsg: 16},
		{Mechanism: shmqMPMCDefault.name, Pattern: patternShape, Size: 64, Producers: 1, Consumers: 1, NanosPerMsg: 24},
	}
}

func TestGuardPasses(t *testing.T) {
	var out strings.Builder
	if err := runGuards(&out, guardRecords(), nil); err != nil {
		t.Fatalf("guard failed a good run: %v\n%s", err, out.String())
	}
	if n := strings.Count(out.String(), ": ok"); n != len(guardRules) {
		t.Fatalf("%d rules passed, want %d:\n%s", n, len(guardRules), out.String())
	}
}

// TestGuardCatchesSlowdowns: each rule fails a run in which its row is ten
// times worse, even when measuring again gives the same.
func TestGuardCatchesSlowdowns(t *testing.T) {
	for _, rule := range guardRules {
		records := guardRecords()
		for i, r := range records {
			if rule.row.matches(r) {
				records[i].MsgsPerSec /= 10
				records[i].P50Nanos *= 10
				records[i].NanosPerMsg *= 10
			}
		}
		again := func(row guardRow) (Record, error) {
			for _, r := range records {
				if row.matches(r) {
					return r, nil
				}
			}
			t.Fatalf("asked to measure %v, which the run does not have", row)
			return Record{}, nil
		}
		err := runGuards(io.Discard, records, again)
		if err == nil || !strings.Contains(err.Error(), rule.what) {
			t.Errorf("%s: a tenfold slowdown passed: %v", rule.what, err)
		}
	}
}

// TestGuardMeasuresAgain: a miss that does not repeat passes.
func TestGuardMeasuresAgain(t *testing.T) {
	records := guardRecords()
	records[2].MsgsPerSec = 1e6 // shmq-spsc below the pipe, once
	asked := 0
	again := func(row guardRow) (Record, error) {
		asked++
		for _, r := range guardRecords() {
			if row.matches(r) {
				return r, nil
			}
		}
		return Record{}, nil
	}
	if err := runGuards(io.Discard, records, again); err != nil {
		t.Fatalf("a transient miss failed the guard: %v", err)
	}
	if asked == 0 {
		t.Fatal("the guard did not measure again")
	}
}

// TestGuardSkipsMissingRows: a run that did not measure a rule's rows
// (-only) does not fail it.
func TestGuardSkipsMissingRows(t *testing.T) {
	if err := runGuards(io.Discard, guardRecords()[:1], nil); err != nil {
		t.Fatal(err)
	}
}

// TestAttachFloors: each shmq row gets its floor's ratio, from the floor
// with the same pattern, size and shape.
func TestAttachFloors(t *testing.T) {
	records := append(guardRecords(),
		Record{Mechanism: floorRing.name, Pattern: patternStream, Size: 8, MsgsPerSec: 100e6},
		Record{Mechanism: shmqSPSCPark.name, Pattern: patternPingPong, Size: 64, P50Nanos: 9000},
		Record{Mechanism: floorFutex.name, Pattern: patternPingPong, Size: 64, P50Nanos: 7500},
		Record{Mechanism: shmqMPMCDefault.name, Pattern: patternStream, Size: 64, MsgsPerSec: 10e6},
		Record{Mechanism: floorVyukov.name, Pattern: patternStream, Size: 64, MsgsPerSec: 50e6},
	)
	attachFloors(records)
	want := map[string]float64{
		shmqSPSCDefault.name + " stream": 60.0 / 400,
		shmqSPSCBatch.name + " stream":   200.0 / 400,
		shmqSPSCSpin.name + " pingpong":  170.0 / 130,
		shmqMPMCDefault.name + " shape":  24.0 / 16,
		shmqSPSCPark.name + " pingpong":  9000.0 / 7500,
		shmqMPMCDefault.name + " stream": 10.0 / 50,
		floorRing.name + " stream":       0,
		"pipe stream":                    0,
		floorVyukov.name + " shape":      0,
		floorSpin.name + " pingpong":     0,
		floorFutex.name + " pingpong":    0,
		floorVyukov.name + " stream":     0,
	}
	for _, r := range records {
		w, ok := want[r.Mechanism+" "+r.Pattern]
		if !ok {
			t.Fatalf("no expectation for %s %s", r.Mechanism, r.Pattern)
		}
		if d := r.FloorRatio - w; d > 1e-9 || d < -1e-9 {
			t.Errorf("%s %s %d B: floor ratio %v (floor %q), want %v", r.Mechanism, r.Pattern, r.Size, r.FloorRatio, r.Floor, w)
		}
	}
}
