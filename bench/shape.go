package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/mpmc"
	"github.com/shmq/shmq/ring"
)

// An MPMC shape run: P producer and C consumer processes on one shmq MPMC
// queue (a memfd segment they inherit), the default wait policy. Producer k
// sends its share of the messages stamped producer<<48 | sequence (as the
// floor-vyukov floor does); consumers check that each producer's sequence
// only grows and sum what they receive. Once every producer is done, the
// parent sends one stop message per consumer. The figure is wall time from
// the start signal to the last consumer's report, over all messages.

// shapeEnv marks a re-executed bench binary as a process of a shape run and
// carries its shapeSpec.
const shapeEnv = "SHMQ_BENCH_SHAPE"

// shapeStop is the stamp of a stop message.
const shapeStop = ^uint64(0)

// shapeSpec tells one process of a shape run its part.
type shapeSpec struct {
	Producer  bool
	Index     int
	Producers int
	Size      int
	Per       int // messages each producer sends
}

// shapeReport is what a shape process reports: Ready, then its counts.
type shapeReport struct {
	Ready    bool   `json:",omitempty"`
	Received int    `json:",omitempty"`
	Sum      uint64 `json:",omitempty"`
	CPUNanos int64  `json:",omitempty"`
	Err      string `json:",omitempty"`
}

// RunShape measures one shape (shapeRunner).
func (m shmqMPMCMechanism) RunShape(spec runSpec) (rec Record, err error) {
	rec = Record{Mechanism: m.name, Pattern: patternShape, Size: spec.Size, Producers: spec.Producers, Consumers: spec.Consumers}
	np, nc := spec.Producers, spec.Consumers
	per := spec.Count / np
	cfg := m.mpmcConfig(spec.Size)
	cfg.Registry = uint32(max(np+nc+1, mpmc.DefaultRegistry))
	q, err := mpmc.Create(ring.Memfd("bench-mpmc-shape"), cfg)
	if err != nil {
		return rec, err
	}
	defer q.Close()
	exe, err := os.Executable()
	if err != nil {
		return rec, err
	}
	goR, goW, err := os.Pipe()
	if err != nil {
		return rec, err
	}
	defer goR.Close()
	defer goW.Close()

	type proc struct {
		cmd     *exec.Cmd
		reports chan shapeReport
	}
	var procs []proc
	defer func() {
		for _, p := range procs {
			if err != nil {
				p.cmd.Process.Kill()
			}
			p.cmd.Wait()
		}
	}()
	for i := range np + nc {
		s := shapeSpec{Producer: i < np, Index: i, Producers: np, Size: spec.Size, Per: per}
		if !s.Producer {
			s.Index = i - np
		}
		raw, _ := json.Marshal(s)
		fd, err := unix.Dup(q.Segment().Fd())
		if err != nil {
			return rec, fmt.Errorf("dup: %w", err)
		}
		seg := os.NewFile(uintptr(fd), "shmq-mpmc-segment")
		repR, repW, err := os.Pipe()
		if err != nil {
			seg.Close()
			return rec, err
		}
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), shapeEnv+"="+string(raw))
		cmd.ExtraFiles = []*os.File{repW, seg}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = goR, os.Stderr, os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		err = cmd.Start()
		repW.Close()
		seg.Close()
		if err != nil {
			repR.Close()
			return rec, fmt.Errorf("start shape process: %w", err)
		}
		p := proc{cmd: cmd, reports: make(chan shapeReport, 2)}
		go func() {
			defer repR.Close()
			defer close(p.reports)
			sc := bufio.NewScanner(repR)
			for sc.Scan() {
				var r shapeReport
				if json.Unmarshal(sc.Bytes(), &r) != nil {
					r = shapeReport{Err: "bad report " + sc.Text()}
				}
				p.reports <- r
			}
		}()
		procs = append(procs, p)
	}
	deadline, cancel := context.WithTimeout(context.Background(), spec.Timeout)
	defer cancel()
	next := func(p proc) (shapeReport, error) {
		select {
		case r, ok := <-p.reports:
			if !ok {
				return r, errors.New("a shape process exited without reporting")
			}
			if r.Err != "" {
				return r, errors.New(r.Err)
			}
			return r, nil
		case <-deadline.Done():
			return shapeReport{}, fmt.Errorf("stuck after %v", spec.Timeout)
		}
	}
	for _, p := range procs {
		if _, err := next(p); err != nil {
			return rec, err
		}
	}
	stopper, err := q.Producer()
	if err != nil {
		return rec, err
	}
	defer stopper.Close()
	stop := newMessage(spec.Size)
	stampMessage(stop, shapeStop)

	start := time.Now()
	goW.Close() // every process reads EOF: go
	var cpu int64
	var received int
	var sum uint64
	for _, p := range procs[:np] {
		r, err := next(p)
		if err != nil {
			return rec, err
		}
		cpu += r.CPUNanos
	}
	for range nc {
		if err := stopper.Send(context.Background(), stop); err != nil {
			return rec, err
		}
	}
	for _, p := range procs[np:] {
		r, err := next(p)
		if err != nil {
			return rec, err
		}
		cpu += r.CPUNanos
		received += r.Received
		sum += r.Sum
	}
	elapsed := time.Since(start)
	var want uint64
	for k := range np {
		for i := range per {
			want += uint64(k)<<48 | uint64(i)
		}
	}
	if received != np*per || sum != want {
		return rec, fmt.Errorf("consumers received %d messages (sum %#x), want %d (sum %#x)", received, sum, np*per, want)
	}
	rec.Messages = received
	rec.NanosPerMsg = float64(elapsed.Nanoseconds()) / float64(received)
	rec.MsgsPerSec = float64(received) / elapsed.Seconds()
	rec.BytesPerSec = rec.MsgsPerSec * float64(spec.Size)
	rec.CPUPerMsg = float64(cpu) / float64(received)
	rec.Config = []Setting{
		{Name: "ring", Value: fmt.Sprintf("%d slots", cfg.Slots), Why: "as the shmq-mpmc rows: one memfd segment inherited by every process"},
		{Name: "processes", Value: fmt.Sprintf("%d producers, %d consumers", np, nc),
			Why: "each a re-executed bench binary with its own registry entry; the parent sends one stop message per consumer after the producers finish"},
		{Name: "wait", Value: "the default (adaptive spin of up to 20 µs, then park on a futex)", Why: "what a service gets untuned"},
	}
	note, err := checkShapeRegistry(q, np, nc, per, spec.Size)
	rec.PathNote = note
	if err != nil {
		rec.PathError = err.Error()
	}
	return rec, err
}

// checkShapeRegistry checks the registry counters after a shape run: each
// producer moved its share, the parent its stop messages, and the
// consumers everything between them.
func checkShapeRegistry(q *mpmc.Queue, np, nc, per, size int) (string, error) {
	var c counterChecks
	es, err := q.Entries()
	if err != nil {
		return "", err
	}
	var prods, stoppers, consumed, cons int
	var waits, wakes uint64
	for _, e := range es {
		waits += e.Waits
		wakes += e.Wakes
		switch {
		case e.Role == layout.RoleProducer && e.Messages == uint64(per):
			prods++
		case e.Role == layout.RoleProducer && e.Messages == uint64(nc) && e.State == layout.EntryAttached:
			stoppers++
		case e.Role == layout.RoleProducer && e.State != layout.EntryFree:
			c.failf("producer entry %d moved %d messages, want %d", e.Index, e.Messages, per)
		case e.Role == layout.RoleConsumer && e.State != layout.EntryFree:
			cons++
			consumed += int(e.Messages)
			if e.Bytes != e.Messages*uint64(size) {
				c.failf("consumer entry %d moved %d bytes for %d messages", e.Index, e.Bytes, e.Messages)
			}
		}
	}
	if prods != np || stoppers != 1 || cons != nc || consumed != np*per+nc {
		c.failf("registry: %d producers with %d messages each (want %d), %d stopper, %d consumers with %d messages (want %d)",
			prods, per, np, stoppers, cons, consumed, np*per+nc)
	}
	total := np*per + nc
	return fmt.Sprintf("registry counts agree: %d+%d processes, %s parks and %s futex wakes/msg",
		np, nc, perMessage(int64(waits), total), perMessage(int64(wakes), total)), c.err()
}

// maybeRunShape runs this process as part of a shape run, and exits, if it
// is one.
func maybeRunShape() {
	raw, ok := os.LookupEnv(shapeEnv)
	if !ok {
		return
	}
	report := os.NewFile(childReportFD, "report")
	enc := json.NewEncoder(report)
	rep, err := runShapeProcess(raw, enc)
	if err != nil {
		rep.Err = err.Error()
	}
	enc.Encode(rep)
	if err != nil {
		os.Exit(1)
	}
	os.Exit(0)
}

func runShapeProcess(raw string, enc *json.Encoder) (shapeReport, error) {
	var s shapeSpec
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return shapeReport{}, fmt.Errorf("decode shape spec: %w", err)
	}
	fd, err := unix.FcntlInt(uintptr(childFirstMechFD), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return shapeReport{}, err
	}
	unix.Close(childFirstMechFD)
	defer unix.Close(fd)
	q, err := mpmc.Open(context.Background(), ring.FD(fd), nil)
	if err != nil {
		return shapeReport{}, err
	}
	defer q.Close()
	ctx := context.Background()
	if s.Producer {
		p, err := q.Producer()
		if err != nil {
			return shapeReport{}, err
		}
		defer p.Close()
		msg := newMessage(s.Size)
		if err := shapeGo(enc); err != nil {
			return shapeReport{}, err
		}
		cpu0 := processCPU()
		for i := range s.Per {
			stampMessage(msg, uint64(s.Index)<<48|uint64(i))
			if err := p.Send(ctx, msg); err != nil {
				return shapeReport{}, fmt.Errorf("producer %d message %d: %w", s.Index, i, err)
			}
		}
		return shapeReport{CPUNanos: processCPU() - cpu0}, nil
	}
	c, err := q.Consumer()
	if err != nil {
		return shapeReport{}, err
	}
	defer c.Close()
	buf := make([]byte, s.Size)
	last := make([]int64, s.Producers)
	for i := range last {
		last[i] = -1
	}
	var rep shapeReport
	if err := shapeGo(enc); err != nil {
		return rep, err
	}
	cpu0 := processCPU()
	for {
		n, err := c.Recv(ctx, buf)
		if err != nil {
			return rep, err
		}
		w := binary.LittleEndian.Uint64(buf)
		if w == shapeStop {
			break
		}
		k, seq := int(w>>48), int64(w&(1<<48-1))
		if n != s.Size || k >= s.Producers || seq <= last[k] {
			return rep, fmt.Errorf("consumer %d: message %#x (%d bytes) after %d from producer %d", s.Index, w, n, last[k%s.Producers], k)
		}
		if err := checkMessage(buf, w, false); err != nil {
			return rep, err
		}
		last[k] = seq
		rep.Received++
		rep.Sum += w
	}
	rep.CPUNanos = processCPU() - cpu0
	return rep, nil
}

// shapeGo reports ready and waits for the start: EOF on stdin.
func shapeGo(enc *json.Encoder) error {
	if err := enc.Encode(shapeReport{Ready: true}); err != nil {
		return err
	}
	_, err := io.Copy(io.Discard, os.Stdin)
	return err
}
