package main

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// errPathCheck marks a run whose data did not take the path its row claims
// (a shared-memory library falling back to its socket, a descriptor in the
// wrong mode, bytes that never crossed the mechanism). Such a run is
// rejected: it is listed with the failures and kept out of the tables.
var errPathCheck = errors.New("path check failed")

// pathCounters are what one side counted about the path its messages took:
// system calls and bytes, wake-ups, fallbacks, kernel attributes read back.
// Keys are chosen by each mechanism.
type pathCounters map[string]int64

// pathCounter is implemented by a Conn that counts its path. The harness
// calls PathCounters once, after the last message, in the process that owns
// the Conn; the child's counters travel back in its report.
type pathCounter interface {
	PathCounters() pathCounters
}

// pathRun is what a path check sees once a run is over.
type pathRun struct {
	Pattern string
	Size    int
	// ToChild and ToParent are the messages the harness moved each way,
	// warm-up rounds included (a mechanism's own handshake is not).
	ToChild, ToParent int
	// Parent and Child are each side's counters (nil for a side that does
	// not count, such as the C peer).
	Parent, Child pathCounters
}

// pathCheck inspects a finished run. It returns a short note for the
// report's path column (what was seen: syscalls, wakes per message) and an
// error when the data took another path or the setup is not what was
// asked for.
type pathCheck func(pathRun) (note string, err error)

// messagesOf returns how many messages the harness moves each way in a run.
func messagesOf(spec peerSpec) (toChild, toParent int) {
	if spec.Pattern == patternPingPong {
		n := spec.Warmup + spec.Count
		return n, n
	}
	return spec.Count, 0
}

// flatten merges both sides' counters under "parent." and "child." keys
// for the JSON record.
func (r pathRun) flatten() map[string]int64 {
	if r.Parent == nil && r.Child == nil {
		return nil
	}
	out := make(map[string]int64, len(r.Parent)+len(r.Child))
	for k, v := range r.Parent {
		out["parent."+k] = v
	}
	for k, v := range r.Child {
		out["child."+k] = v
	}
	return out
}

// side is one process's counters, named for messages.
type side struct {
	name string
	pc   pathCounters
}

// sides returns the parent's and the child's counters.
func (r pathRun) sides() []side { return []side{{"parent", r.Parent}, {"child", r.Child}} }

// counterChecks collects the mismatches of a path check, so one report
// names every problem at once.
type counterChecks struct{ errs []error }

// equal records a mismatch between a counter and what it should be.
func (c *counterChecks) equal(s side, key string, want int64) {
	if got, ok := c.get(s, key); ok && got != want {
		c.failf("%s %s = %d, want %d", s.name, key, got, want)
	}
}

// atMost records a counter above a ceiling.
func (c *counterChecks) atMost(s side, key string, ceiling int64) {
	if got, ok := c.get(s, key); ok && got > ceiling {
		c.failf("%s %s = %d, want at most %d", s.name, key, got, ceiling)
	}
}

// get returns a counter, recording its absence as a problem.
func (c *counterChecks) get(s side, key string) (int64, bool) {
	got, ok := s.pc[key]
	switch {
	case s.pc == nil:
		c.failf("%s reported no counters", s.name)
	case !ok:
		c.failf("%s did not count %s (has %v)", s.name, key, slices.Sorted(maps.Keys(s.pc)))
	}
	return got, ok
}

// failf records a problem found another way.
func (c *counterChecks) failf(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf(format, args...))
}

// err wraps every recorded problem in errPathCheck, or returns nil.
func (c *counterChecks) err() error {
	if len(c.errs) == 0 {
		return nil
	}
	msgs := make([]string, len(c.errs))
	for i, e := range c.errs {
		msgs[i] = e.Error()
	}
	return fmt.Errorf("%w: %s", errPathCheck, strings.Join(msgs, "; "))
}

// perMessage formats a count per message for a path note.
func perMessage(n int64, msgs int) string {
	if msgs <= 0 {
		return "-"
	}
	// Three significant digits, never in exponent form: 0.00004, 1.27.
	v, _ := strconv.ParseFloat(fmt.Sprintf("%.3g", float64(n)/float64(msgs)), 64)
	return strconv.FormatFloat(v, 'f', -1, 64)
}
