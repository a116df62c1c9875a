package counter

import (
	"sync/atomic"
	"testing"
)

// TestSet: a value set through a Counter is what an atomic load of the
// word reads, all 64 bits of it.
func TestSet(t *testing.T) {
	var w atomic.Uint64
	c := Of(&w)
	for _, v := range []uint64{1, 1<<32 + 7, ^uint64(0), 0} {
		c.Set(v)
		if got := w.Load(); got != v {
			t.Fatalf("Set(%#x) left %#x", v, got)
		}
	}
}

// TestZero: the zero Counter discards what is set.
func TestZero(t *testing.T) {
	var c Counter
	c.Set(42)
	var e Entry
	e.Messages.Set(1)
}
