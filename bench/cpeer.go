package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
)

// cPeerProgram builds cpeer/peer.c against layout/shmq.h once per process
// and returns the binary's path. It needs this source tree (the benchmark
// runs from it) and a C compiler.
var cPeerProgram = sync.OnceValues(func() (string, error) {
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot locate the bench sources")
	}
	dir := filepath.Dir(self)
	src := filepath.Join(dir, "cpeer", "peer.c")
	include := filepath.Join(dir, "..", "layout")
	cc, err := exec.LookPath("cc")
	if err != nil {
		return "", fmt.Errorf("no C compiler for the C peer: %w", err)
	}
	out, err := os.MkdirTemp("", "shmq-bench-cpeer-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(out, "peer")
	build := exec.Command(cc, "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-I", include, "-o", bin, src)
	if msg, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the C peer: %w\n%s", err, msg)
	}
	return bin, nil
})
