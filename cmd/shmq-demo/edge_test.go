//go:build unix

package main

import (
	"strings"
	"testing"
)

// TestNegativeTimeout: a negative -timeout is a usage error, not a context
// that ends at once.
func TestNegativeTimeout(t *testing.T) {
	for _, args := range [][]string{
		{"consume", "-queue", "x", "-count", "1", "-timeout", "-1s"},
		{"produce", "-queue", "x", "-count", "1", "-size", "8", "-timeout", "-5ms"},
	} {
		p := runBin(t, args...)
		if p.code != exitUsage || !strings.Contains(p.stderr.String(), "-timeout must not be negative") {
			t.Errorf("%s", p)
		}
	}
}

// TestConsumeNothing: a consume that stops without a message says so
// instead of printing a duration measured from the zero time.
func TestConsumeNothing(t *testing.T) {
	name := queueName(t, "nothing")
	p := runBin(t, "consume", "-queue", name, "-idle-exit", "50ms", "-timeout", "25s")
	if p.code != 0 || !strings.Contains(p.stderr.String(), "received no message") || strings.Contains(p.stderr.String(), "h47m") {
		t.Fatalf("%s", p)
	}
}
