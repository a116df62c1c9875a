package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// writePlots draws one latency chart per ping-pong size and two throughput
// charts (messages/s and bytes/s against message size, both log scale).
func writePlots(dir string, records []Record) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("plot dir: %w", err)
	}
	var pingSizes []int
	for _, r := range records {
		if r.Pattern == patternPingPong && r.Skipped == "" && !slices.Contains(pingSizes, r.Size) {
			pingSizes = append(pingSizes, r.Size)
		}
	}
	for _, size := range pingSizes {
		name := filepath.Join(dir, fmt.Sprintf("latency_%dB.png", size))
		if err := plotLatency(name, records, size); err != nil {
			return err
		}
	}
	if err := plotThroughput(filepath.Join(dir, "throughput_msgs.png"), records, "messages/s",
		func(r Record) float64 { return r.MsgsPerSec }, false); err != nil {
		return err
	}
	return plotThroughput(filepath.Join(dir, "throughput_bytes.png"), records, "bytes/s",
		func(r Record) float64 { return r.BytesPerSec }, true)
}

// plotLatency puts mechanisms on the Y axis and one marker per percentile on
// a log X axis, so long names stay readable.
func plotLatency(path string, records []Record, size int) error {
	var rows []Record
	for _, r := range records {
		if r.Pattern == patternPingPong && r.Size == size && r.Skipped == "" {
			rows = append(rows, r)
		}
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Ping-pong round trip, %s messages (lower is better)", formatSize(size))
	p.X.Label.Text = "round-trip latency (µs, log scale)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = decadeTicks{format: func(v float64) string { return formatNanos(int64(v * 1e3)) }}
	names := make([]string, len(rows))
	for i, r := range rows {
		names[i] = r.Mechanism
	}
	slices.Reverse(names) // first registered at the top
	p.NominalY(names...)
	p.Y.Min, p.Y.Max = -0.6, float64(len(rows))-0.4
	percentiles := []struct {
		label string
		value func(Record) int64
	}{
		{"p50", func(r Record) int64 { return r.P50Nanos }},
		{"p90", func(r Record) int64 { return r.P90Nanos }},
		{"p99", func(r Record) int64 { return r.P99Nanos }},
		{"p99.9", func(r Record) int64 { return r.P999Nanos }},
		{"max", func(r Record) int64 { return r.MaxNanos }},
	}
	for i, pc := range percentiles {
		pts := make(plotter.XYs, len(rows))
		for j, r := range rows {
			pts[j] = plotter.XY{X: max(float64(pc.value(r))/1e3, 0.001), Y: float64(len(rows) - 1 - j)}
		}
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return fmt.Errorf("latency chart: %w", err)
		}
		sc.GlyphStyle.Color = plotutil.Color(i)
		sc.GlyphStyle.Shape = plotutil.Shape(i)
		sc.GlyphStyle.Radius = vg.Points(4)
		p.Add(sc)
		p.Legend.Add(pc.label, sc)
	}
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.Left = false
	return savePlot(p, path, vg.Length(len(rows))*0.45*vg.Inch+2*vg.Inch)
}

// plotThroughput draws one line per mechanism against message size.
func plotThroughput(path string, records []Record, unit string, value func(Record) float64, legendTop bool) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("One-way streaming throughput, %s (higher is better)", unit)
	p.X.Label.Text = "message size (log scale)"
	p.Y.Label.Text = unit + " (log scale)"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	format := formatCount
	if unit == "bytes/s" {
		format = formatBytes
	}
	p.Y.Tick.Marker = decadeTicks{format: format}
	var mechs []string
	var sizes []int
	for _, r := range records {
		if r.Pattern != patternStream || r.Skipped != "" {
			continue
		}
		if !slices.Contains(mechs, r.Mechanism) {
			mechs = append(mechs, r.Mechanism)
		}
		if !slices.Contains(sizes, r.Size) {
			sizes = append(sizes, r.Size)
		}
	}
	slices.Sort(sizes)
	ticks := make(plot.ConstantTicks, len(sizes))
	for i, s := range sizes {
		ticks[i] = plot.Tick{Value: float64(s), Label: formatSize(s)}
	}
	p.X.Tick.Marker = ticks
	for i, m := range mechs {
		var pts plotter.XYs
		for _, r := range records {
			if r.Pattern == patternStream && r.Skipped == "" && r.Mechanism == m {
				pts = append(pts, plotter.XY{X: float64(r.Size), Y: value(r)})
			}
		}
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return fmt.Errorf("throughput chart: %w", err)
		}
		line.Color, points.Color = plotutil.Color(i), plotutil.Color(i)
		line.Dashes = plotutil.Dashes(i / len(plotutil.DefaultColors))
		points.Shape = plotutil.Shape(i)
		line.Width = vg.Points(1.5)
		p.Add(line, points)
		p.Legend.Add(m, line, points)
	}
	p.Add(plotter.NewGrid())
	p.Legend.Top = legendTop
	p.Legend.Left = true
	p.Legend.XOffs = vg.Points(8)
	if legendTop {
		p.Legend.YOffs = -vg.Points(8)
	} else {
		p.Legend.YOffs = vg.Points(8)
	}
	return savePlot(p, path, 7*vg.Inch)
}

func savePlot(p *plot.Plot, path string, height vg.Length) error {
	p.Legend.ThumbnailWidth = vg.Points(20)
	p.Legend.Padding = vg.Points(2)
	if err := p.Save(10*vg.Inch, height, path); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	return nil
}

// decadeTicks labels 1, 2 and 5 times each power of ten on a log axis in
// human units (µs, k, MiB) instead of exponents.
type decadeTicks struct{ format func(float64) string }

func (t decadeTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for decade := math.Pow(10, math.Floor(math.Log10(lo))); decade <= hi; decade *= 10 {
		for _, m := range []float64{1, 2, 5} {
			if v := decade * m; v >= lo && v <= hi {
				ticks = append(ticks, plot.Tick{Value: v, Label: t.format(v)})
			}
		}
	}
	return ticks
}
