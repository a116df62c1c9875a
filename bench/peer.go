package main

import (
	"fmt"
	"runtime"
)

// Patterns a run can measure.
const (
	patternStream   = "stream"   // parent produces, peer consumes and verifies
	patternPingPong = "pingpong" // parent sends, peer echoes, parent times the round trip
	patternShape    = "shape"    // producer and consumer processes on one MPMC queue (shape.go)
)

// peerSpec tells the peer what to expect; it travels to a child process as
// JSON in an environment variable.
type peerSpec struct {
	Mechanism string
	Arg       string
	Pattern   string
	Size      int
	Count     int // timed messages (stream) or round trips (ping-pong)
	Warmup    int // untimed ping-pong rounds before the timed ones
	FullCheck bool
	// GOMAXPROCS, when above zero, is applied by a child before it attaches.
	GOMAXPROCS int
}

// peerReport is what the peer sends back: first a Ready report, then the
// final one with its own measurements.
type peerReport struct {
	Ready    bool   `json:",omitempty"`
	Received int    `json:",omitempty"`
	Checksum uint64 `json:",omitempty"`
	CPUNanos int64  `json:",omitempty"`
	Err      string `json:",omitempty"`
	// Path is what the peer's Conn counted about the path (pathCounter);
	// GOMAXPROCS is the value the peer ran with (0 when not a Go peer).
	Path       pathCounters `json:",omitempty"`
	GOMAXPROCS int          `json:",omitempty"`
}

// runPeer is the far side of every run, in a child process or a goroutine.
// cpu measures the peer's own CPU time (nil when it shares the parent's).
func runPeer(conn Conn, spec peerSpec, ready func() error, cpu func() int64) peerReport {
	if cpu == nil {
		cpu = func() int64 { return 0 }
	}
	buf := make([]byte, spec.Size)
	if err := ready(); err != nil {
		return peerReport{Err: err.Error()}
	}
	var rep peerReport
	var cpu0 int64
	switch spec.Pattern {
	case patternStream:
		cpu0 = cpu()
		for i := range spec.Count {
			if err := conn.Recv(buf); err != nil {
				return peerReport{Received: i, Err: fmt.Sprintf("receive message %d: %v", i, err)}
			}
			if err := checkMessage(buf, uint64(i), spec.FullCheck); err != nil {
				return peerReport{Received: i, Err: err.Error()}
			}
			rep.Checksum = foldChecksum(rep.Checksum, buf)
			rep.Received++
		}
	case patternPingPong:
		for i := range spec.Warmup + spec.Count {
			if i == spec.Warmup {
				cpu0 = cpu()
			}
			if err := conn.Recv(buf); err != nil {
				return peerReport{Received: i, Err: fmt.Sprintf("receive ping %d: %v", i, err)}
			}
			if err := checkMessage(buf, uint64(i), spec.FullCheck); err != nil {
				return peerReport{Received: i, Err: err.Error()}
			}
			if err := conn.Send(buf); err != nil {
				return peerReport{Received: i, Err: fmt.Sprintf("echo %d: %v", i, err)}
			}
			rep.Received++
		}
	default:
		return peerReport{Err: fmt.Sprintf("unknown pattern %q", spec.Pattern)}
	}
	rep.CPUNanos = cpu() - cpu0
	if pc, ok := conn.(pathCounter); ok {
		rep.Path = pc.PathCounters()
	}
	rep.GOMAXPROCS = runtime.GOMAXPROCS(0)
	return rep
}
