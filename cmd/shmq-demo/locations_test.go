//go:build unix

package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/mpmc"
	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/spsc"
)

// TestInspectFileLocations: inspect, reap and rm take a file as file:PATH
// or as a path with a slash, and report on it as they do on a shm name.
func TestInspectFileLocations(t *testing.T) {
	name := queueName(t, "floc")
	path := filepath.Join("/dev/shm", name)
	q, err := mpmc.Create(ring.Shm(name), mpmc.Config{Slots: 16, MaxMessage: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	p, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := p.TrySend([]byte("job")); err != nil {
			t.Fatal(err)
		}
	}
	byName := runBin(t, "inspect", name)
	if byName.code != 0 {
		t.Fatalf("inspect %s: %v", name, byName)
	}
	for _, arg := range []string{"file:" + path, path} {
		ins := runBin(t, "inspect", arg)
		if ins.code != 0 {
			t.Fatalf("inspect %s: %v", arg, ins)
		}
		out := ins.stdout.String()
		if first, _, _ := strings.Cut(out, "\n"); first != "queue file:"+path {
			t.Errorf("inspect %s: first line %q, want queue file:%s", arg, first, path)
		}
		for _, re := range []string{`(?m)^  kind +mpmc\b`, `(?m)^  depth +5 messages`, `(?m)^  registry +64 entries, 1 in use`} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("inspect %s does not match %s:\n%s", arg, re, out)
			}
		}
		// Apart from the location, the report is the one of the shm name.
		_, rest, _ := strings.Cut(out, "\n")
		_, restByName, _ := strings.Cut(byName.stdout.String(), "\n")
		if rest != restByName {
			t.Errorf("inspect %s differs from inspect %s:\n%s\nvs\n%s", arg, name, rest, restByName)
		}
	}
	if reap := runBin(t, "reap", "file:"+path); reap.code != 0 || !strings.Contains(reap.stdout.String(), "no dead processes") {
		t.Errorf("reap file:%s: %v", path, reap)
	}

	// Errors name the file; a file that is not a segment stays.
	other := filepath.Join(t.TempDir(), "other")
	if err := os.WriteFile(other, []byte("not a queue"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ arg, msg string }{
		{other, "not a shmq segment"},
		{"file:" + other, "not a shmq segment"},
		{path + "-missing", "no such segment"},
		{"file:", "invalid segment name"},
		{"fd:x", "invalid segment name"},
	} {
		for _, cmd := range []string{"inspect", "rm"} {
			p := runBin(t, cmd, tc.arg)
			if p.code != 1 || strings.Count(p.stderr.String(), "\n") != 1 || !strings.Contains(p.stderr.String(), tc.msg) {
				t.Errorf("%s %s: want exit 1 and one error line about %q: %v", cmd, tc.arg, tc.msg, p)
			}
		}
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("rm removed a foreign file: %v", err)
	}

	if rm := runBin(t, "rm", path); rm.code != 0 || strings.TrimSpace(rm.stdout.String()) != "removed file:"+path {
		t.Fatalf("rm %s: %v", path, rm)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s exists after rm: %v", path, err)
	}
}

// TestInspectSPSCFile: the SPSC report of a file-backed queue.
func TestInspectSPSCFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stream")
	q, err := spsc.Create(ring.File(path), spsc.Config{Capacity: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	p, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.TrySend(make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	t.Chdir(filepath.Dir(path))
	ins := runBin(t, "inspect", "./"+filepath.Base(path))
	out := ins.stdout.String()
	for _, re := range []string{
		`(?m)^queue file:\./stream$`,
		`(?m)^  capacity +4096 bytes$`,
		fmt.Sprintf(`(?m)^  depth +%d bytes `, layout.RecordSize(64)),
		fmt.Sprintf(`(?m)^    \[0\] role=producer pid=%d state=attached alive .*messages=1 bytes=64 `, os.Getpid()),
		`(?m)^    \[1\] free$`,
	} {
		if ins.code != 0 || !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("inspect does not match %s: %v", re, ins)
		}
	}
}

// TestListTemporaryFile: a file in /dev/shm whose name is no queue name (a
// creator's temporary, left by one that died) is listed by its path, which
// rm takes.
func TestListTemporaryFile(t *testing.T) {
	name := fmt.Sprintf(".shmq-%d-0-sdt", os.Getpid())
	path := filepath.Join("/dev/shm", name)
	b := make([]byte, 2*layout.PageSize)
	binary.LittleEndian.PutUint64(b, layout.Magic) // magic, never published
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Skip("no /dev/shm:", err)
	}
	t.Cleanup(func() { os.Remove(path) })
	lst := runBin(t, "list")
	want := regexp.MustCompile(fmt.Sprintf(`(?m)^file:%s +- +abandoned +- creator died during initialization`, regexp.QuoteMeta(path)))
	if lst.code != 0 || !want.MatchString(lst.stdout.String()) {
		t.Errorf("list: want a line matching %s: %v", want, lst)
	}
	if rm := runBin(t, "rm", path); rm.code != 0 {
		t.Fatalf("rm %s: %v", path, rm)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s exists after rm: %v", path, err)
	}
	if lst := runBin(t, "list"); bytes.Contains(lst.stdout.Bytes(), []byte(name)) {
		t.Errorf("list after rm still shows %s: %v", name, lst)
	}
}
