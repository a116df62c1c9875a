// Package interop runs the C implementation of the shmq layout (layout/shmq.h
// and the programs in layout/c) against the Go packages: Go producer to C
// consumer, C producer to Go consumer, header constants, corruption
// handling, and a Python ctypes consumer. It holds only tests.
//
// The C programs are built with the system C compiler ($CC, else cc, else
// gcc). Where there is none the tests skip, except under CI (CI=true), where
// a missing compiler fails them.
package interop

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

var cflags = []string{"-std=c11", "-Wall", "-Wextra", "-Werror", "-O2"}

var sanitizeFlags = []string{"-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g"}

func inCI() bool { return os.Getenv("CI") == "true" }

// compiler returns the C compiler, skipping (or failing under CI) the test
// if there is none or the platform is not the one the layout targets.
func compiler(t testing.TB) string {
	t.Helper()
	if runtime.GOOS != "linux" || (runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" &&
		runtime.GOARCH != "riscv64" && runtime.GOARCH != "ppc64le" && runtime.GOARCH != "loong64") {
		t.Skipf("shmq.h targets 64-bit little-endian Linux, not %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	cands := []string{"cc", "gcc", "clang"}
	if cc := os.Getenv("CC"); cc != "" {
		cands = append([]string{cc}, cands...)
	}
	for _, c := range cands {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	if inCI() {
		t.Fatal("no C compiler (cc, gcc, clang or $CC) found; CI requires one for the interop tests")
	}
	t.Skip("no C compiler found; skipping the C interop tests")
	return ""
}

// srcDir returns layout/c of this module.
func srcDir(t testing.TB) string {
	t.Helper()
	d, err := filepath.Abs(filepath.Join("..", "layout", "c"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// build compiles layout/c/NAME.c into dir with the given extra flags and
// returns the binary's path.
func build(t testing.TB, cc, dir, name string, extra ...string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	args := append(append(append([]string{}, cflags...), extra...), filepath.Join(srcDir(t), name+".c"), "-o", out)
	cmd := exec.Command(cc, args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", cc, strings.Join(args, " "), err, b)
	}
	return out
}

// sanitizerAvailable reports whether cc can build and run a program with
// the address and undefined-behaviour sanitizers, and why not.
func sanitizerAvailable(t *testing.T, cc string) (bool, string) {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "probe.c")
	if err := os.WriteFile(src, []byte("#include <stdlib.h>\nint main(void){char *p = malloc(4); p[0] = 1; int r = p[0] - 1; free(p); return r;}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "probe")
	args := append(append([]string{}, sanitizeFlags...), src, "-o", bin)
	if b, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		return false, strings.TrimSpace(string(b))
	}
	cmd := exec.Command(bin)
	cmd.Env = sanitizerEnv()
	if b, err := cmd.CombinedOutput(); err != nil {
		return false, "probe built but failed to run: " + strings.TrimSpace(string(b))
	}
	return true, ""
}

// sanitizerEnv makes sanitizer reports fatal. Leak detection is off: it
// needs ptrace, which containers often forbid, and the programs' leaks are
// irrelevant to the layout.
func sanitizerEnv() []string {
	return append(os.Environ(),
		"ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:halt_on_error=1",
		"UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1")
}

// programs is one build of the C peers.
type programs struct {
	produce, consume string
	env              []string
}

func buildPrograms(t *testing.T, cc string, sanitize bool) programs {
	t.Helper()
	dir := t.TempDir()
	var extra []string
	env := os.Environ()
	if sanitize {
		extra = sanitizeFlags
		env = sanitizerEnv()
	}
	return programs{
		produce: build(t, cc, dir, "shmq_produce", extra...),
		consume: build(t, cc, dir, "shmq_consume", extra...),
		env:     append(env, "SHMQ_TIMEOUT_MS=20000"),
	}
}

// output runs cmd to completion and returns its stdout, failing the test
// with its stderr if it fails.
func output(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\nstdout: %s\nstderr: %s", cmd, err, stdout.String(), stderr.String())
	}
	return stdout.String()
}
