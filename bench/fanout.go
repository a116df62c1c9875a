package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// The fan-out comparison (go run . -fanout): one publisher, in this
// process, delivers every message to 1, 2 and 4 subscriber processes over
// each fanoutMechanism; each subscriber checks every sequence number and a
// checksum. It reports messages/s per subscriber (the messages published,
// over the time from the first send until the last subscriber has the last
// message), the publisher's CPU per message and the subscribers' mean CPU
// per message.

// fanoutEnv marks a re-executed bench binary as a fan-out subscriber and
// carries its spec.
const fanoutEnv = "SHMQ_BENCH_FANOUT"

// fanoutSpec is what a subscriber process needs.
type fanoutSpec struct {
	Mechanism string
	Size      int
	Count     int
	Files     int
}

// FanoutRecord is one measured mechanism × subscribers × size.
type FanoutRecord struct {
	Mechanism      string  `json:"mechanism"`
	Subscribers    int     `json:"subscribers"`
	Size           int     `json:"size"`
	Messages       int     `json:"messages"`
	MsgsPerSec     float64 `json:"msgs_per_sec_per_subscriber"`
	PublisherCPU   float64 `json:"publisher_cpu_ns_per_msg"`
	SubscriberCPU  float64 `json:"subscriber_cpu_ns_per_msg"`
	ElapsedSeconds float64 `json:"elapsed_s"`
}

func init() {
	// A subscriber process runs here, before main (or TestMain), and exits.
	raw, ok := os.LookupEnv(fanoutEnv)
	if !ok {
		return
	}
	if err := runFanoutSubscriber(raw); err != nil {
		fmt.Fprintf(os.Stderr, "bench fan-out subscriber: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runFanoutSubscriber(raw string) error {
	var spec fanoutSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		return fmt.Errorf("decode spec: %w", err)
	}
	report := os.NewFile(childReportFD, "report")
	enc := json.NewEncoder(report)
	m, err := lookupFanout(spec.Mechanism)
	if err != nil {
		return err
	}
	if spec.Files > childMaxMechFiles {
		return fmt.Errorf("%d inherited files is too many", spec.Files)
	}
	files := make([]*os.File, spec.Files)
	for i := range files {
		files[i] = os.NewFile(uintptr(childFirstMechFD+i), fmt.Sprintf("inherited-%d", i))
	}
	conn, err := m.Attach(files, spec.Size)
	if err != nil {
		enc.Encode(peerReport{Err: fmt.Sprintf("attach: %v", err)})
		return err
	}
	defer conn.Close()
	if err := enc.Encode(peerReport{Ready: true}); err != nil {
		return err
	}
	rep := runPeer(conn, peerSpec{Pattern: patternStream, Size: spec.Size, Count: spec.Count}, func() error { return nil }, processCPU)
	if err := enc.Encode(rep); err != nil {
		return err
	}
	if rep.Err != "" {
		return errors.New(rep.Err)
	}
	io.Copy(io.Discard, os.Stdin) // keep our end open until the publisher is done
	return nil
}

// fanoutSub is a running subscriber process.
type fanoutSub struct {
	cmd     *exec.Cmd
	stdin   io.Closer
	reports chan peerReport
	done    chan error
}

func startFanoutSub(m fanoutMechanism, files []*os.File, size, count int) (*fanoutSub, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(fanoutSpec{Mechanism: m.Name(), Size: size, Count: count, Files: len(files)})
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), fanoutEnv+"="+string(raw))
	cmd.ExtraFiles = append([]*os.File{w}, files...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	err = cmd.Start()
	w.Close()
	closeFiles(files)
	if err != nil {
		r.Close()
		return nil, err
	}
	s := &fanoutSub{cmd: cmd, stdin: stdin, reports: make(chan peerReport, 2), done: make(chan error, 1)}
	go func() {
		defer r.Close()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			var rep peerReport
			if err := json.Unmarshal(sc.Bytes(), &rep); err != nil {
				break
			}
			s.reports <- rep
		}
		s.done <- fmt.Errorf("subscriber exited without reporting: %w", errors.Join(sc.Err(), cmd.Wait()))
	}()
	return s, nil
}

// next waits for the subscriber's next report.
func (s *fanoutSub) next(deadline time.Time) (peerReport, error) {
	select {
	case rep := <-s.reports:
		if rep.Err != "" {
			return rep, errors.New(rep.Err)
		}
		return rep, nil
	case err := <-s.done:
		return peerReport{}, err
	case <-time.After(time.Until(deadline)):
		return peerReport{}, fmt.Errorf("subscriber pid %d timed out", s.cmd.Process.Pid)
	}
}

func (s *fanoutSub) stop() {
	s.stdin.Close()
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// runFanout measures one mechanism with n subscribers and count messages
// of size bytes.
func runFanout(m fanoutMechanism, n, size, count int) (rec FanoutRecord, err error) {
	rec = FanoutRecord{Mechanism: m.Name(), Subscribers: n, Size: size, Messages: count}
	link, err := m.Setup(n, size)
	if err != nil {
		return rec, fmt.Errorf("setup: %w", err)
	}
	defer link.Close()
	var subs []*fanoutSub
	defer func() {
		for _, s := range subs {
			if err != nil {
				s.cmd.Process.Kill()
			}
			s.stop()
		}
	}()
	deadline := time.Now().Add(fanoutTimeout)
	for k := range n {
		s, err := startFanoutSub(m, link.ChildFiles[k], size, count)
		if err != nil {
			for _, fs := range link.ChildFiles[k+1:] {
				closeFiles(fs)
			}
			return rec, err
		}
		subs = append(subs, s)
	}
	for _, s := range subs {
		if rep, err := s.next(deadline); err != nil || !rep.Ready {
			return rec, fmt.Errorf("subscriber did not get ready: %w", err)
		}
	}
	msg := newMessage(size)
	cpu0 := processCPU()
	start := time.Now()
	for i := range count {
		stampMessage(msg, uint64(i))
		if err := link.Publish(msg); err != nil {
			return rec, fmt.Errorf("publish message %d: %w", i, err)
		}
	}
	pubCPU := processCPU() - cpu0
	var subCPU int64
	want := expectedChecksum(size, count)
	for _, s := range subs {
		rep, err := s.next(deadline)
		if err != nil {
			return rec, err
		}
		if rep.Received != count || rep.Checksum != want {
			return rec, fmt.Errorf("subscriber received %d messages, checksum %#x; want %d, %#x", rep.Received, rep.Checksum, count, want)
		}
		subCPU += rep.CPUNanos
	}
	elapsed := time.Since(start)
	rec.ElapsedSeconds = elapsed.Seconds()
	rec.MsgsPerSec = float64(count) / elapsed.Seconds()
	rec.PublisherCPU = float64(pubCPU) / float64(count)
	rec.SubscriberCPU = float64(subCPU) / float64(n) / float64(count)
	return rec, nil
}

// fanoutPlan is what -fanout measures.
type fanoutPlan struct {
	Subscribers []int
	Sizes       []int
	Messages    int
}

var (
	defaultFanoutPlan = fanoutPlan{Subscribers: []int{1, 2, 4}, Sizes: []int{64, 1 << 10}, Messages: 500_000}
	quickFanoutPlan   = fanoutPlan{Subscribers: []int{1, 2, 4}, Sizes: []int{64}, Messages: 100_000}
)

// runFanoutPlan measures every mechanism and prints the table to w,
// progress to progress; it writes the records to jsonPath if it is set.
func runFanoutPlan(p fanoutPlan, w, progress io.Writer, jsonPath string) error {
	var recs []FanoutRecord
	var failed []string
	for _, size := range p.Sizes {
		for _, n := range p.Subscribers {
			for _, m := range registeredFanout() {
				fmt.Fprintf(progress, "fan-out: %s, %d subscriber(s), %d B ...\n", m.Name(), n, size)
				rec, err := runFanout(m, n, size, p.Messages)
				if err != nil {
					failed = append(failed, fmt.Sprintf("- FAILED %s, %d subscribers, %s: %v", m.Name(), n, formatSize(size), err))
					continue
				}
				recs = append(recs, rec)
			}
		}
	}
	fmt.Fprintln(w, "### Fan-out: one publisher, every message to every subscriber process")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| mechanism | subscribers | size | msgs/s per subscriber | publisher CPU/msg | subscriber CPU/msg |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|")
	for _, r := range recs {
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s |\n", r.Mechanism, r.Subscribers, formatSize(r.Size),
			formatCount(r.MsgsPerSec), formatNanos(int64(r.PublisherCPU)), formatNanos(int64(r.SubscriberCPU)))
	}
	for _, f := range failed {
		fmt.Fprintln(w, f)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%d messages per run; msgs/s per subscriber is the messages published over the time from the first send until every subscriber has checked the last one. CPU is user+system time: the publisher's over its send loop, each subscriber's over its receive loop (mean).\n", p.Messages)
	if jsonPath != "" {
		b, err := json.MarshalIndent(recs, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(jsonPath, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d fan-out runs failed", len(failed))
	}
	return nil
}
