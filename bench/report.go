package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// column is one column of a results table: its heading, whether it holds
// numbers (right-aligned), and how a record fills it. To report another
// figure, append a column to pingPongColumns or streamColumns.
type column struct {
	head    string
	numeric bool
	cell    func(Record) string
}

var (
	mechanismColumn = column{"mechanism", false, func(r Record) string { return r.Mechanism }}
	sizeColumn      = column{"size", true, func(r Record) string { return formatSize(r.Size) }}
	pathColumn      = column{"path (checked)", false, func(r Record) string { return r.PathNote }}
	floorColumn     = column{"vs floor", true, formatRatio}

	pingPongColumns = []column{
		mechanismColumn, sizeColumn,
		{"p50", true, func(r Record) string { return formatNanos(r.P50Nanos) }},
		{"p90", true, func(r Record) string { return formatNanos(r.P90Nanos) }},
		{"p99", true, func(r Record) string { return formatNanos(r.P99Nanos) }},
		{"p99.9", true, func(r Record) string { return formatNanos(r.P999Nanos) }},
		{"max", true, func(r Record) string { return formatNanos(r.MaxNanos) }},
		{"round trips/s", true, func(r Record) string { return formatCount(r.MsgsPerSec) }},
		{"CPU/round trip", true, func(r Record) string { return formatNanos(int64(r.CPUPerMsg)) }},
		floorColumn,
		pathColumn,
	}
	streamColumns = []column{
		mechanismColumn, sizeColumn,
		{"messages", true, func(r Record) string { return fmt.Sprint(r.Messages) }},
		{"msgs/s", true, func(r Record) string { return formatCount(r.MsgsPerSec) }},
		{"bytes/s", true, func(r Record) string { return formatBytes(r.BytesPerSec) + "/s" }},
		{"CPU/msg (both sides)", true, func(r Record) string { return formatNanos(int64(r.CPUPerMsg)) }},
		floorColumn,
		pathColumn,
	}
	shapeColumns = []column{
		mechanismColumn,
		{"producers x consumers", true, func(r Record) string { return fmt.Sprintf("%dx%d", r.Producers, r.Consumers) }},
		sizeColumn,
		{"messages", true, func(r Record) string { return fmt.Sprint(r.Messages) }},
		{"ns/msg", true, func(r Record) string { return fmt.Sprintf("%.1f", r.NanosPerMsg) }},
		{"msgs/s", true, func(r Record) string { return formatCount(r.MsgsPerSec) }},
		{"CPU/msg (all)", true, func(r Record) string { return formatNanos(int64(r.CPUPerMsg)) }},
		floorColumn,
		pathColumn,
	}
)

// writeMarkdown prints the latency table, the throughput table, what was
// skipped, failed or rejected and why, then each mechanism's configuration.
func writeMarkdown(w io.Writer, records []Record, failures []runFailure) {
	measured := func(pattern string) func(Record) bool {
		return func(r Record) bool { return r.Pattern == pattern && r.Skipped == "" }
	}
	fmt.Fprintln(w, "### Ping-pong round trip (HdrHistogram, warm-up discarded)")
	fmt.Fprintln(w)
	writeTable(w, pingPongColumns, records, measured(patternPingPong))
	fmt.Fprintln(w)
	fmt.Fprintln(w, "### One-way streaming (consumer verifies count and checksum)")
	fmt.Fprintln(w)
	writeTable(w, streamColumns, records, measured(patternStream))
	if slices.ContainsFunc(records, measured(patternShape)) {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "### MPMC: producer and consumer processes on one queue (wall time over all messages)")
		fmt.Fprintln(w)
		writeTable(w, shapeColumns, records, measured(patternShape))
	}
	writeScaling(w, records)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Floors (`floor-*`) are C programs doing each row's work with nothing of shmq's; each is the best of several runs, "+
		"listed in the configuration table. *vs floor* is a shmq row's figure over its floor's from the same run: "+
		"throughput (at most 1x), p50 round trip or ns per message (at least 1x).")
	var notes []string
	for _, r := range records {
		if r.Skipped != "" {
			notes = append(notes, fmt.Sprintf("- skipped %s %s %s: %s", r.Mechanism, r.Pattern, formatSize(r.Size), r.Skipped))
		}
	}
	for _, f := range failures {
		what := "FAILED"
		if f.PathError != "" {
			what = "REJECTED (not shown above)"
		}
		notes = append(notes, fmt.Sprintf("- %s %s %s %s: %s", what, f.Mechanism, f.Pattern, formatSize(f.Size), oneLine(f.Err.Error())))
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, strings.Join(notes, "\n"))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Peers are separate processes except those marked in-process. CPU is user+system time of both processes over the timed section. "+
		"The path column is what each run's path check saw after the run; a run whose check fails is rejected.")
	all := slices.Clip(records)
	for _, f := range failures {
		all = append(all, f.Record)
	}
	if rows := configRows(all); len(rows) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "### Configuration (as each mechanism was set up, and why)")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| mechanism | setting | value | why |")
		fmt.Fprintln(w, "|---|---|---|---|")
		for _, r := range rows {
			fmt.Fprintf(w, "| %s | %s | %s | %s |\n", r[0], r[1], r[2], r[3])
		}
	}
}

// writeTable prints the records that keep accepts as a markdown table.
func writeTable(w io.Writer, cols []column, records []Record, keep func(Record) bool) {
	heads, rule := make([]string, len(cols)), make([]string, len(cols))
	for i, c := range cols {
		heads[i], rule[i] = c.head, "---"
		if c.numeric {
			rule[i] = "---:"
		}
	}
	fmt.Fprintf(w, "| %s |\n|%s|\n", strings.Join(heads, " | "), strings.Join(rule, "|"))
	cells := make([]string, len(cols))
	for _, r := range records {
		if !keep(r) {
			continue
		}
		for i, c := range cols {
			cells[i] = escapeCell(c.cell(r))
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
}

// configRows merges the settings of every run of each mechanism into one
// row per setting; values that differ between runs (a buffer sized by the
// message) are listed by message size.
func configRows(records []Record) [][4]string {
	type key struct{ mech, name string }
	var order []key
	values := map[key][]string{}
	why := map[key]string{}
	for _, r := range records {
		for _, s := range r.Config {
			if k := (key{r.Mechanism, s.Name}); !slices.Contains(order, k) {
				order = append(order, k)
				why[k] = s.Why
			}
		}
	}
	bySize := slices.Clone(records)
	slices.SortStableFunc(bySize, func(a, b Record) int { return a.Size - b.Size })
	for _, r := range bySize {
		for _, s := range r.Config {
			k := key{r.Mechanism, s.Name}
			if !slices.Contains(values[k], s.Value) {
				values[k] = append(values[k], s.Value)
			}
		}
	}
	rows := make([][4]string, len(order))
	for i, k := range order {
		rows[i] = [4]string{k.mech, escapeCell(k.name), escapeCell(strings.Join(values[k], "; ")), escapeCell(why[k])}
	}
	return rows
}

// escapeCell keeps a value inside its markdown table cell.
func escapeCell(s string) string {
	return strings.ReplaceAll(oneLine(s), "|", `\|`)
}

// oneLine joins the lines of a message (errors.Join uses newlines).
func oneLine(s string) string {
	return strings.ReplaceAll(s, "\n", "; ")
}

// writeJSON writes the measured records and the rejected runs (which carry
// path_error); runs that failed outright have no numbers and are left out.
func writeJSON(path string, records []Record, failures []runFailure) error {
	records = slices.Clip(records)
	for _, f := range failures {
		if f.PathError != "" {
			records = append(records, f.Record)
		}
	}
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
