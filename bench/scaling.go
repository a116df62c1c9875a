package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// writeScaling prints throughput against message size for the mechanisms
// that scale (scaler), one column each, in bytes/s, with each shmq
// column's ratio to the ring floor: large messages should run near memcpy
// speed.
func writeScaling(w io.Writer, records []Record) {
	var mechs []string
	var sizes []int
	bySize := map[string]map[int]Record{}
	for _, r := range records {
		if r.Pattern != patternStream || r.Skipped != "" {
			continue
		}
		m, err := lookupMechanism(r.Mechanism)
		if err != nil || !scales(m) {
			continue
		}
		if !slices.Contains(mechs, r.Mechanism) {
			mechs = append(mechs, r.Mechanism)
			bySize[r.Mechanism] = map[int]Record{}
		}
		if !slices.Contains(sizes, r.Size) {
			sizes = append(sizes, r.Size)
		}
		bySize[r.Mechanism][r.Size] = r
	}
	if len(mechs) == 0 || len(sizes) < 2 {
		return
	}
	slices.Sort(sizes)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "### Throughput against message size (bytes/s; shmq rows with their ratio to floor-spsc-ring)")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "| size | %s |\n|---:|%s\n", strings.Join(mechs, " | "), strings.Repeat("---:|", len(mechs)))
	for _, size := range sizes {
		cells := []string{formatSize(size)}
		for _, m := range mechs {
			r, ok := bySize[m][size]
			switch {
			case !ok:
				cells = append(cells, "")
			case r.Floor != "":
				cells = append(cells, fmt.Sprintf("%s/s (%s)", formatBytes(r.BytesPerSec), formatRatio(r)))
			default:
				cells = append(cells, formatBytes(r.BytesPerSec)+"/s")
			}
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
}
