// Package relay moves messages between a local shmq queue and NATS
// JetStream: Out (queue to JetStream) and In (JetStream to queue), each in a
// file of its own. Both keep their counters in a Stats, which the command
// prints as progress lines and a final summary.
package relay

import (
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"
)

// Stats holds a bridge's counters. The relay goroutine updates them; any
// goroutine may read them.
type Stats struct {
	// Out: messages published for the first time, published again after an
	// error or timeout, acknowledged by JetStream, acknowledged as
	// duplicates (the stream already had the id), and taken from the local
	// queue after a consumer that died had taken them.
	// In: messages received from JetStream, committed to the local queue,
	// acknowledged to JetStream, redelivered by JetStream (delivered before,
	// not acknowledged), duplicates skipped (already committed by this
	// process), and times the local queue was full.
	Published, Resent, Acked, Duplicates, Redelivered atomic.Uint64
	Received, Committed, Full                         atomic.Uint64
	InFlight                                          atomic.Int64 // published, not yet acknowledged (out); received, not yet committed (in)
}

// Line formats the counters of role ("out" or "in") as key=value pairs.
func (s *Stats) Line(role string) string {
	var b strings.Builder
	if role == "out" {
		fmt.Fprintf(&b, "published=%d acknowledged=%d duplicates=%d resent=%d redelivered=%d in_flight=%d",
			s.Published.Load(), s.Acked.Load(), s.Duplicates.Load(), s.Resent.Load(), s.Redelivered.Load(), s.InFlight.Load())
	} else {
		fmt.Fprintf(&b, "received=%d committed=%d acknowledged=%d redelivered=%d duplicates=%d full=%d",
			s.Received.Load(), s.Committed.Load(), s.Acked.Load(), s.Redelivered.Load(), s.Duplicates.Load(), s.Full.Load())
	}
	return b.String()
}

// Progress prints a line to w every period until stop is closed: the
// counters and the acknowledged rate since the previous line.
func (s *Stats) Progress(w io.Writer, prefix, role string, period time.Duration, stop <-chan struct{}) {
	if period <= 0 {
		return
	}
	t := time.NewTicker(period)
	defer t.Stop()
	last, lastT := s.Acked.Load(), time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			n := s.Acked.Load()
			rate := float64(n-last) / now.Sub(lastT).Seconds()
			last, lastT = n, now
			fmt.Fprintf(w, "%s: %s rate=%.0f/s\n", prefix, s.Line(role), rate)
		}
	}
}
