package main

import (
	"strings"
	"testing"
)

// TestFanoutSmoke delivers a few thousand checked messages to two
// subscriber processes over every fan-out mechanism.
func TestFanoutSmoke(t *testing.T) {
	for _, m := range registeredFanout() {
		t.Run(m.Name(), func(t *testing.T) {
			for _, size := range []int{8, 1000} {
				rec, err := runFanout(m, 2, size, 3000)
				if err != nil {
					t.Fatalf("%d B: %v", size, err)
				}
				if rec.MsgsPerSec <= 0 || rec.Messages != 3000 || rec.Subscribers != 2 {
					t.Errorf("implausible record %+v", rec)
				}
			}
		})
	}
}

// TestFanoutTable: the plan's table has a row per mechanism and
// subscriber count.
func TestFanoutTable(t *testing.T) {
	var out, progress strings.Builder
	if err := runFanoutPlan(fanoutPlan{Subscribers: []int{1, 2}, Sizes: []int{64}, Messages: 500}, &out, &progress, ""); err != nil {
		t.Fatal(err)
	}
	rows := 0
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "| shmq-") || strings.HasPrefix(line, "| unix-") {
			rows++
		}
	}
	if rows != 2*len(registeredFanout()) {
		t.Fatalf("%d rows, want %d:\n%s", rows, 2*len(registeredFanout()), out.String())
	}
}
