package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Record is one measured (or skipped) mechanism × pattern × size. For
// ping-pong a "message" is one round trip.
type Record struct {
	Mechanism   string  `json:"mechanism"`
	Pattern     string  `json:"pattern"`
	Size        int     `json:"size"`
	InProcess   bool    `json:"in_process,omitempty"`
	Messages    int     `json:"messages"`
	MsgsPerSec  float64 `json:"msgs_per_sec"`
	BytesPerSec float64 `json:"bytes_per_sec"`
	P50Nanos    int64   `json:"p50_ns"`
	P90Nanos    int64   `json:"p90_ns"`
	P99Nanos    int64   `json:"p99_ns"`
	P999Nanos   int64   `json:"p999_ns"`
	MaxNanos    int64   `json:"max_ns"`
	CPUPerMsg   float64 `json:"cpu_ns_per_msg"`
	Skipped     string  `json:"skipped,omitempty"`
	// Producers and Consumers are the processes of an MPMC shape run
	// (pattern "shape"), whose figure is NanosPerMsg: wall time over all
	// messages.
	Producers   int     `json:"producers,omitempty"`
	Consumers   int     `json:"consumers,omitempty"`
	NanosPerMsg float64 `json:"ns_per_msg,omitempty"`
	// Floor names the C floor row this one is compared with, FloorMetric
	// the figure compared (msgs_per_sec, p50_ns or ns_per_msg), and
	// FloorRatio this row's figure over the floor's: at most 1 for a
	// throughput, at least 1 for a time (see ratio.go).
	Floor       string  `json:"floor,omitempty"`
	FloorMetric string  `json:"floor_metric,omitempty"`
	FloorRatio  float64 `json:"floor_ratio,omitempty"`
	// Config is how the mechanism was set up for this run, with reasons.
	Config []Setting `json:"config,omitempty"`
	// Path holds both sides' path counters ("parent.…", "child.…"),
	// PathNote what the path check saw, and PathError why it rejected the
	// run (such a record is listed with the failures, never in the tables).
	Path      map[string]int64 `json:"path,omitempty"`
	PathNote  string           `json:"path_note,omitempty"`
	PathError string           `json:"path_error,omitempty"`
}

// runSpec is one run to perform.
type runSpec struct {
	peerSpec
	Timeout time.Duration
	// Producers and Consumers are the processes of a shape run.
	Producers, Consumers int
	// Runs is how many times a floor repeats the run; it reports the best.
	Runs int
}

// runMechanism sets up m, starts its peer, drives the pattern from this
// process and returns the measurements. The peer is killed on any failure.
func runMechanism(m Mechanism, spec runSpec) (rec Record, err error) {
	rec = Record{Mechanism: m.Name(), Pattern: spec.Pattern, Size: spec.Size}
	if err := m.Check(spec.Size); err != nil {
		rec.Skipped = err.Error()
		return rec, nil
	}
	if s, ok := m.(selfRunner); ok {
		return s.RunSelf(spec)
	}
	if spec.Pattern == patternShape {
		s, ok := m.(shapeRunner)
		if !ok {
			return rec, fmt.Errorf("%s does not run MPMC shapes", m.Name())
		}
		return s.RunShape(spec)
	}
	spec.Mechanism = m.Name()
	link, err := m.Setup(spec.Size)
	if err != nil {
		return rec, fmt.Errorf("setup: %w", err)
	}
	if link.Cleanup != nil {
		defer link.Cleanup()
	}
	rec.InProcess = link.InProcessPeer != nil
	spec.Arg = link.ChildArg
	spec.GOMAXPROCS = link.GOMAXPROCS
	defer setGOMAXPROCS(link.GOMAXPROCS)() // runs last, after the peer is gone
	rec.Config = append([]Setting{gomaxprocsSetting(link.GOMAXPROCS, runtime.GOMAXPROCS(0), link.GOMAXPROCSWhy)}, link.Config...)

	peer, err := startPeer(m, link, spec.peerSpec)
	if err != nil {
		return rec, err
	}
	defer func() {
		if err != nil {
			peer.kill() // it may wait forever for messages that will not come
		}
		peer.stop()
	}()
	watchdog := time.AfterFunc(spec.Timeout, func() {
		fmt.Fprintf(os.Stderr, "bench: %s %s %d B stuck after %v; killing the peer\n", m.Name(), spec.Pattern, spec.Size, spec.Timeout)
		peer.kill()
		// A peer's death does not wake every blocking call (message queues),
		// so give up on the whole process rather than hang.
		time.AfterFunc(3*time.Second, func() { os.Exit(3) })
	})
	defer watchdog.Stop()

	conn, err := link.OpenParent()
	if err != nil {
		return rec, fmt.Errorf("open parent end: %w", err)
	}
	defer conn.Close()
	if rep, err := peer.next(); err != nil || !rep.Ready {
		return rec, errors.Join(fmt.Errorf("peer did not get ready: %s", rep.Err), err)
	}

	var parentCPU int64
	var elapsed time.Duration
	var streamStart time.Time
	var hist *hdrhistogram.Histogram
	switch spec.Pattern {
	case patternStream:
		parentCPU, streamStart, err = produceStream(conn, spec.peerSpec)
	case patternPingPong:
		hist, parentCPU, elapsed, err = pingPong(conn, spec.peerSpec)
	default:
		err = fmt.Errorf("unknown pattern %q", spec.Pattern)
	}
	if err != nil {
		return rec, err
	}
	// The report arrives only after the peer consumed everything, so for
	// streaming the clock runs until the last message was verified.
	rep, err := peer.next()
	if err != nil {
		return rec, err
	}
	if spec.Pattern == patternStream {
		elapsed = peer.reportedAt.Sub(streamStart)
	}
	if rep.Err != "" {
		return rec, fmt.Errorf("peer: %s", rep.Err)
	}
	if err := verifyReport(rep, spec.peerSpec); err != nil {
		return rec, err
	}

	rec.Messages = spec.Count
	secs := elapsed.Seconds()
	rec.MsgsPerSec = float64(spec.Count) / secs
	rec.BytesPerSec = rec.MsgsPerSec * float64(spec.Size)
	if spec.Pattern == patternPingPong {
		rec.BytesPerSec *= 2 // both directions
	}
	rec.CPUPerMsg = float64(parentCPU+rep.CPUNanos) / float64(spec.Count)
	if hist != nil {
		rec.P50Nanos = hist.ValueAtQuantile(50)
		rec.P90Nanos = hist.ValueAtQuantile(90)
		rec.P99Nanos = hist.ValueAtQuantile(99)
		rec.P999Nanos = hist.ValueAtQuantile(99.9)
		rec.MaxNanos = hist.Max()
	}
	if err := checkPath(&rec, link, conn, rep, spec.peerSpec); err != nil {
		rec.PathError = err.Error()
		return rec, err
	}
	return rec, nil
}

// checkPath runs the link's path check on both sides' counters, checks
// that both processes ran with the GOMAXPROCS the link asked for, and
// files what it saw in rec.
func checkPath(rec *Record, link *Link, conn Conn, rep peerReport, spec peerSpec) error {
	run := pathRun{Pattern: spec.Pattern, Size: spec.Size, Child: rep.Path}
	run.ToChild, run.ToParent = messagesOf(spec)
	if pc, ok := conn.(pathCounter); ok {
		run.Parent = pc.PathCounters()
	}
	rec.Path = run.flatten()
	if rec.Path == nil {
		rec.Path = map[string]int64{}
	}
	procs := runtime.GOMAXPROCS(0)
	rec.Path["parent.gomaxprocs"] = int64(procs)
	if rep.GOMAXPROCS != 0 {
		rec.Path["child.gomaxprocs"] = int64(rep.GOMAXPROCS)
	}
	var c counterChecks
	if link.GOMAXPROCS > 0 && procs != link.GOMAXPROCS {
		c.failf("parent ran with GOMAXPROCS=%d, want %d", procs, link.GOMAXPROCS)
	}
	if link.GOMAXPROCS > 0 && rep.GOMAXPROCS != 0 && rep.GOMAXPROCS != link.GOMAXPROCS {
		c.failf("peer ran with GOMAXPROCS=%d, want %d", rep.GOMAXPROCS, link.GOMAXPROCS)
	}
	if link.CheckPath == nil {
		c.failf("%s has no path check", rec.Mechanism)
		return c.err()
	}
	note, err := link.CheckPath(run)
	rec.PathNote = note
	return errors.Join(c.err(), err)
}

func verifyReport(rep peerReport, spec peerSpec) error {
	if rep.Received != spec.Count+spec.Warmup*boolInt(spec.Pattern == patternPingPong) {
		return fmt.Errorf("peer received %d messages, want %d", rep.Received, spec.Count)
	}
	if spec.Pattern == patternStream {
		if want := expectedChecksum(spec.Size, spec.Count); rep.Checksum != want {
			return fmt.Errorf("peer checksum %#x, want %#x", rep.Checksum, want)
		}
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// produceStream sends spec.Count messages as fast as the mechanism takes
// them; the caller stops the clock when the peer reports.
func produceStream(conn Conn, spec peerSpec) (cpu int64, start time.Time, err error) {
	msg := newMessage(spec.Size)
	cpu0 := processCPU()
	start = time.Now()
	for i := range spec.Count {
		stampMessage(msg, uint64(i))
		if err := conn.Send(msg); err != nil {
			return 0, start, fmt.Errorf("send message %d: %w", i, err)
		}
	}
	if f, ok := conn.(flusher); ok {
		if err := f.Flush(); err != nil {
			return 0, start, fmt.Errorf("flush: %w", err)
		}
	}
	return processCPU() - cpu0, start, nil
}

// pingPong times round trips; the first spec.Warmup are not recorded.
func pingPong(conn Conn, spec peerSpec) (*hdrhistogram.Histogram, int64, time.Duration, error) {
	hist := hdrhistogram.New(1, int64(time.Minute), 3)
	out, in := newMessage(spec.Size), make([]byte, spec.Size)
	clk := tickClock()
	var cpu0 int64
	var start time.Time
	for i := range spec.Warmup + spec.Count {
		if i == spec.Warmup {
			cpu0, start = processCPU(), time.Now()
		}
		stampMessage(out, uint64(i))
		t := clk.now()
		if err := conn.Send(out); err != nil {
			return nil, 0, 0, fmt.Errorf("send ping %d: %w", i, err)
		}
		if err := conn.Recv(in); err != nil {
			return nil, 0, 0, fmt.Errorf("receive pong %d: %w", i, err)
		}
		rtt := clk.since(t)
		if err := checkMessage(in, uint64(i), spec.FullCheck); err != nil {
			return nil, 0, 0, fmt.Errorf("pong: %w", err)
		}
		if i >= spec.Warmup {
			hist.RecordValue(max(rtt, 1))
		}
	}
	return hist, processCPU() - cpu0, time.Since(start), nil
}

// peerHandle is the running far side: a child process or a goroutine.
type peerHandle struct {
	reports    chan peerReport
	readErr    chan error
	cmd        *exec.Cmd
	exited     chan struct{} // closed once the child is reaped
	release    io.Closer     // closing the child's stdin lets it exit
	reportedAt time.Time
	stopConn   func()
}

func startPeer(m Mechanism, link *Link, spec peerSpec) (*peerHandle, error) {
	p := &peerHandle{reports: make(chan peerReport, 2), readErr: make(chan error, 1), exited: make(chan struct{})}
	if link.InProcessPeer != nil {
		conn, err := link.InProcessPeer()
		if err != nil {
			return nil, fmt.Errorf("open in-process peer: %w", err)
		}
		p.stopConn = func() { conn.Close() }
		go func() {
			ready := func() error { p.reports <- peerReport{Ready: true}; return nil }
			p.reports <- runPeer(conn, spec, ready, nil)
		}()
		return p, nil
	}

	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own binary: %w", err)
	}
	rawSpec, err := json.Marshal(struct {
		peerSpec
		Files int
	}{spec, len(link.ChildFiles)})
	if err != nil {
		return nil, fmt.Errorf("encode spec: %w", err)
	}
	reportR, reportW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("report pipe: %w", err)
	}
	cmd := exec.Command(exe)
	if link.ChildProgram != "" {
		cmd = exec.Command(link.ChildProgram, spec.Pattern, strconv.Itoa(spec.Size), strconv.Itoa(spec.Count),
			strconv.Itoa(spec.Warmup), strconv.Itoa(boolInt(spec.FullCheck)))
	}
	cmd.Env = append(os.Environ(), childEnv+"="+string(rawSpec))
	cmd.ExtraFiles = append([]*os.File{reportW}, link.ChildFiles...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr // stdout is reserved for the table
	// The child holds its end open until we close its stdin, so our last
	// send never races with the peer tearing down.
	release, err := cmd.StdinPipe()
	if err != nil {
		reportR.Close()
		reportW.Close()
		return nil, fmt.Errorf("peer stdin: %w", err)
	}
	p.release = release
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	// Our copies of the child's ends must go, or EOF never comes when it dies.
	reportW.Close()
	for _, f := range link.ChildFiles {
		f.Close()
	}
	if err != nil {
		reportR.Close()
		return nil, fmt.Errorf("start peer: %w", err)
	}
	p.cmd = cmd
	go func() {
		defer reportR.Close()
		sc := bufio.NewScanner(reportR)
		var decodeErr error
		for sc.Scan() {
			var rep peerReport
			if decodeErr = json.Unmarshal(sc.Bytes(), &rep); decodeErr != nil {
				cmd.Process.Kill()
				break
			}
			p.reports <- rep
		}
		waitErr := cmd.Wait()
		close(p.exited)
		p.readErr <- fmt.Errorf("peer exited without reporting: %w", errors.Join(decodeErr, sc.Err(), waitErr))
	}()
	return p, nil
}

// next waits for the peer's next report.
func (p *peerHandle) next() (peerReport, error) {
	select {
	case rep := <-p.reports:
		p.reportedAt = time.Now()
		return rep, nil
	case err := <-p.readErr:
		return peerReport{}, err
	}
}

func (p *peerHandle) kill() {
	if p.cmd != nil {
		p.cmd.Process.Kill()
	}
	if p.stopConn != nil {
		p.stopConn()
	}
}

// stop reaps the child (which exits after its last report) or closes the
// goroutine's end.
func (p *peerHandle) stop() {
	if p.stopConn != nil {
		p.stopConn()
		return
	}
	p.release.Close()
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}
