package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// childEnv marks a re-executed bench binary (or test binary) as the peer
// process of one run and carries its peerSpec.
const childEnv = "SHMQ_BENCH_PEER"

// Inherited descriptors: 3 is the report pipe, the mechanism's files follow.
const (
	childReportFD     = 3
	childFirstMechFD  = 4
	childMaxMechFiles = 16
)

// maybeRunChild runs the peer and exits if this process is one; call it
// first thing in main and TestMain.
func maybeRunChild() {
	raw, ok := os.LookupEnv(childEnv)
	if !ok {
		return
	}
	if err := runChild(raw); err != nil {
		fmt.Fprintf(os.Stderr, "bench peer: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runChild(raw string) error {
	var spec struct {
		peerSpec
		Files int
	}
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		return fmt.Errorf("decode spec: %w", err)
	}
	report := os.NewFile(childReportFD, "report")
	enc := json.NewEncoder(report)
	m, err := lookupMechanism(spec.Mechanism)
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
	setGOMAXPROCS(spec.GOMAXPROCS) // before Attach: a library may size itself by it
	conn, err := m.Attach(spec.Arg, files, spec.Size)
	if err != nil {
		enc.Encode(peerReport{Err: fmt.Sprintf("attach: %v", err)})
		return fmt.Errorf("attach %s: %w", spec.Mechanism, err)
	}
	defer conn.Close()
	ready := func() error { return enc.Encode(peerReport{Ready: true}) }
	rep := runPeer(conn, spec.peerSpec, ready, processCPU)
	if err := enc.Encode(rep); err != nil {
		return fmt.Errorf("send report: %w", err)
	}
	if rep.Err != "" {
		return errors.New(rep.Err) // closing our end wakes a parent blocked on it
	}
	// Keep our end open until the parent is done with its own (EOF on stdin),
	// so its last send never races with our teardown.
	io.Copy(io.Discard, os.Stdin)
	return nil
}
