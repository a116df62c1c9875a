package main

import (
	"fmt"
	"strings"
)

// Every shmq row is compared with the C floor that does its work with
// nothing of shmq's (floor.go): the ratio of the row's figure to the
// floor's, from the same run of the benchmark. For a throughput the ratio
// is at most 1 in principle (0.2x: a fifth of what the machine does); for a
// time it is at least 1 (1.3x: 30% slower).

// Figures a row can be compared by.
const (
	metricThroughput = "msgs_per_sec"
	metricP50        = "p50_ns"
	metricNsPerMsg   = "ns_per_msg"
)

// floorOf names the floor of a shmq record, and the figure compared; ""
// for rows without one.
func floorOf(r Record) (floor, metric string) {
	if !strings.HasPrefix(r.Mechanism, "shmq-") || r.Skipped != "" {
		return "", ""
	}
	mpmc := strings.HasPrefix(r.Mechanism, "shmq-mpmc")
	switch r.Pattern {
	case patternStream:
		if mpmc {
			return floorVyukov.name, metricThroughput
		}
		return floorRing.name, metricThroughput
	case patternPingPong:
		if r.Mechanism == shmqSPSCPark.name || r.Mechanism == shmqMPMCLocked.name {
			return floorFutex.name, metricP50
		}
		return floorSpin.name, metricP50
	case patternShape:
		return floorVyukov.name, metricNsPerMsg
	}
	return "", ""
}

// figure returns a record's value of metric.
func figure(r Record, metric string) float64 {
	switch metric {
	case metricP50:
		return float64(r.P50Nanos)
	case metricNsPerMsg:
		return r.NanosPerMsg
	}
	return r.MsgsPerSec
}

// attachFloors fills in Floor, FloorMetric and FloorRatio of every shmq
// record whose floor was measured in the same run.
func attachFloors(records []Record) {
	type key struct {
		mech, pattern string
		size, p, c    int
	}
	floors := map[key]Record{}
	for _, r := range records {
		if strings.HasPrefix(r.Mechanism, "floor-") && r.Skipped == "" {
			floors[key{r.Mechanism, r.Pattern, r.Size, r.Producers, r.Consumers}] = r
		}
	}
	for i := range records {
		r := &records[i]
		name, metric := floorOf(*r)
		if name == "" {
			continue
		}
		f, ok := floors[key{name, r.Pattern, r.Size, r.Producers, r.Consumers}]
		if !ok || figure(f, metric) <= 0 {
			continue
		}
		r.Floor, r.FloorMetric, r.FloorRatio = name, metric, figure(*r, metric)/figure(f, metric)
	}
}

// formatRatio prints a floor ratio for the tables.
func formatRatio(r Record) string {
	if r.Floor == "" {
		return ""
	}
	switch {
	case r.FloorRatio >= 10:
		return fmt.Sprintf("%.0fx", r.FloorRatio)
	case r.FloorRatio >= 0.1:
		return fmt.Sprintf("%.2fx", r.FloorRatio)
	}
	return fmt.Sprintf("%.3fx", r.FloorRatio)
}
