package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// writeMarkdown prints the latency table, the throughput table, then what
// was skipped or failed and why.
func writeMarkdown(w io.Writer, records []Record, failures []runFailure) {
	fmt.Fprintln(w, "### Ping-pong round trip (HdrHistogram, warm-up discarded)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| mechanism | size | p50 | p90 | p99 | p99.9 | max | round trips/s | CPU/round trip |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range records {
		if r.Pattern != patternPingPong || r.Skipped != "" {
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Mechanism, formatSize(r.Size),
			formatNanos(r.P50Nanos), formatNanos(r.P90Nanos), formatNanos(r.P99Nanos), formatNanos(r.P999Nanos),
			formatNanos(r.MaxNanos), formatCount(r.MsgsPerSec), formatNanos(int64(r.CPUPerMsg)))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "### One-way streaming (consumer verifies count and checksum)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| mechanism | size | messages | msgs/s | bytes/s | CPU/msg (both sides) |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|")
	for _, r := range records {
		if r.Pattern != patternStream || r.Skipped != "" {
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %d | %s | %s/s | %s |\n", r.Mechanism, formatSize(r.Size), r.Messages,
			formatCount(r.MsgsPerSec), formatBytes(r.BytesPerSec), formatNanos(int64(r.CPUPerMsg)))
	}
	var notes []string
	for _, r := range records {
		if r.Skipped != "" {
			notes = append(notes, fmt.Sprintf("- skipped %s %s %s: %s", r.Mechanism, r.Pattern, formatSize(r.Size), r.Skipped))
		}
	}
	for _, f := range failures {
		notes = append(notes, fmt.Sprintf("- FAILED %s %s %s: %v", f.Mechanism, f.Pattern, formatSize(f.Size), f.Err))
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, strings.Join(notes, "\n"))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Peers are separate processes except those marked in-process. CPU is user+system time of both processes over the timed section.")
}

func writeJSON(path string, records []Record) error {
	b, err := json.MarshalIndent(records, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

func formatSize(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

func formatNanos(ns int64) string {
	switch {
	case ns >= 1e9:
		return fmt.Sprintf("%.2f s", float64(ns)/1e9)
	case ns >= 1e6:
		return fmt.Sprintf("%.2f ms", float64(ns)/1e6)
	case ns >= 1e4:
		return fmt.Sprintf("%.1f µs", float64(ns)/1e3)
	case ns >= 1e3:
		return fmt.Sprintf("%.2f µs", float64(ns)/1e3)
	}
	return fmt.Sprintf("%d ns", ns)
}

func formatCount(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.2fG", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func formatBytes(v float64) string {
	switch {
	case v >= 1<<30:
		return fmt.Sprintf("%.2f GiB", v/(1<<30))
	case v >= 1<<20:
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	case v >= 1<<10:
		return fmt.Sprintf("%.1f KiB", v/(1<<10))
	}
	return fmt.Sprintf("%.0f B", v)
}
