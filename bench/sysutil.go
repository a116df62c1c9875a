package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
)

// readProcInt reads a single integer such as a /proc/sys limit.
func readProcInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read limit: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", path, err)
	}
	return n, nil
}

var objectCounter atomic.Uint64

// nextObjectID makes names of kernel objects unique within this process.
func nextObjectID() uint64 { return objectCounter.Add(1) }
