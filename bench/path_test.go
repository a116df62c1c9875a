package main

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	shmipc "github.com/cloudwego/shmipc-go"
	"golang.org/x/sys/unix"
)

// TestQuickPlanPeerPaths runs what `go run . -quick` runs for every peer
// (each mechanism that is not shmq's own) and fails if any run's path
// check trips: a shared-memory peer that fell back to its socket, a
// descriptor in the wrong mode, a setting that did not take. Volume
// matters (shmipc-go's pool runs out only under a long stream), so the runs
// are the -quick plan's, not the smoke test's. With -short only shmipc-go
// runs, the peer whose path depends on volume.
func TestQuickPlanPeerPaths(t *testing.T) {
	for _, m := range registeredMechanisms() {
		if strings.HasPrefix(m.Name(), "shmq-") || testing.Short() && m.Name() != "shmipc-go" {
			continue
		}
		t.Run(m.Name(), func(t *testing.T) {
			for _, spec := range quickPlan.runs(m) {
				rec, err := runMechanism(m, spec)
				if err != nil {
					t.Errorf("%s %s: %v", spec.Pattern, formatSize(spec.Size), err)
					continue
				}
				if rec.Skipped == "" && rec.PathNote == "" {
					t.Errorf("%s %s: the path check left no note", spec.Pattern, formatSize(spec.Size))
				}
			}
		})
	}
}

// TestShmipcFallbackRejected starves shmipc-go's pool so that a message
// cannot be allocated from it, which makes shmipc-go send it over its Unix
// socket; the run must be rejected, not reported.
func TestShmipcFallbackRejected(t *testing.T) {
	starved := shmipcMechanism{tune: func(c *shmipc.Config) {
		c.ShareMemoryBufferCap = 1 << 20 // the least shmipc-go accepts
		c.BufferSliceSizes = []*shmipc.SizePercentPair{{Size: 64 << 10, Percent: 100}}
	}}
	spec := runSpec{peerSpec: peerSpec{Pattern: patternStream, Size: 3 << 19, Count: 3, FullCheck: true}, Timeout: 30 * time.Second}
	rec, err := runMechanism(starved, spec)
	if !errors.Is(err, errPathCheck) {
		t.Fatalf("a run through a starved pool was not rejected: error %v, record %+v", err, rec)
	}
	if !strings.Contains(rec.PathError, "fallback_writes") || rec.Path["parent.fallback_writes"] == 0 {
		t.Errorf("rejected for another reason: %s (counters %v)", rec.PathError, rec.Path)
	}
	if !strings.Contains(rec.PathNote, "fell back") {
		t.Errorf("path note %q does not say the messages fell back", rec.PathNote)
	}
}

// TestPathChecksCatchMisconfiguration feeds each kind of check counters
// from a run that went the wrong way, and one that went right.
func TestPathChecksCatchMisconfiguration(t *testing.T) {
	const size, n = 64, 100
	fdSide := func(wrote, read int64) pathCounters {
		return pathCounters{"write_bytes": wrote, "read_bytes": read, "write_calls": n, "read_calls": n,
			"nonblocking_fds": 0, "fd_type": unix.S_IFIFO}
	}
	fdRun := func(edit func(p, c pathCounters)) pathRun {
		r := pathRun{Pattern: patternStream, Size: size, ToChild: n, Parent: fdSide(n*size, 0), Child: fdSide(0, n*size)}
		edit(r.Parent, r.Child)
		return r
	}
	fdCheck := func(r pathRun) error { _, err := checkFDPath(r, unix.S_IFIFO, nil); return err }

	shmipcSide := func() pathCounters {
		return pathCounters{"fallback_writes": 0, "fallback_reads": 0, "alloc_shm_errors": 0, "event_conn_errors": 0,
			"out_bytes": 0, "in_bytes": 0, "pool_bytes": shmipcPool - 4096}
	}
	shmipcRun := func(edit func(p, c pathCounters)) pathRun {
		r := pathRun{Pattern: patternStream, Size: size, ToChild: n, Parent: shmipcSide(), Child: shmipcSide()}
		r.Parent["out_bytes"], r.Child["in_bytes"] = n*size+1, n*size+1
		edit(r.Parent, r.Child)
		return r
	}
	shmipcCheck := func(r pathRun) error { _, err := checkShmipcPath(r, shmipcPool); return err }

	ringSide := func(out, in int64) pathCounters {
		return pathCounters{"out_tail": out, "out_head": out, "in_tail": in, "in_head": in,
			"eventfds": 4, "memfd": 1, "wakes_sent": 3, "sleeps": 3}
	}
	ringRun := func(edit func(p, c pathCounters)) pathRun {
		r := pathRun{Pattern: patternStream, Size: size, ToChild: n, Parent: ringSide(n, 0), Child: ringSide(0, n)}
		edit(r.Parent, r.Child)
		return r
	}
	ringCheck := func(r pathRun) error { _, err := checkShmRingPath(r); return err }

	none := func(p, c pathCounters) {}
	for _, tc := range []struct {
		name  string
		check func(pathRun) error
		run   pathRun
		ok    bool
	}{
		{"fd as intended", fdCheck, fdRun(none), true},
		{"fd non-blocking (netpoller)", fdCheck, fdRun(func(p, c pathCounters) { c["nonblocking_fds"] = 1 }), false},
		{"fd of another type", fdCheck, fdRun(func(p, c pathCounters) { p["fd_type"] = unix.S_IFSOCK }), false},
		{"fd bytes missing", fdCheck, fdRun(func(p, c pathCounters) { c["read_bytes"] -= size }), false},
		{"fd child silent", fdCheck, pathRun{Pattern: patternStream, Size: size, ToChild: n, Parent: fdSide(n*size, 0)}, false},
		{"shmipc in shared memory", shmipcCheck, shmipcRun(none), true},
		{"shmipc fell back", shmipcCheck, shmipcRun(func(p, c pathCounters) { p["fallback_writes"], c["fallback_reads"] = 7, 7 }), false},
		{"shmipc pool allocation failed", shmipcCheck, shmipcRun(func(p, c pathCounters) { p["alloc_shm_errors"] = 1 }), false},
		{"shmipc default pool", shmipcCheck, shmipcRun(func(p, c pathCounters) { p["pool_bytes"] = 32 << 20 }), false},
		{"shmipc resent after a full queue", shmipcCheck, shmipcRun(func(p, c pathCounters) {
			p["queue_full_resends"], p["out_bytes"] = 2, p["out_bytes"]+2*size
		}), true},
		{"ring as intended", ringCheck, ringRun(none), true},
		{"ring missed messages", ringCheck, ringRun(func(p, c pathCounters) { c["in_head"] = n - 1 }), false},
		{"ring echo not yet taken", ringCheck, ringRun(func(p, c pathCounters) { c["out_head"] = -1 }), true},
		{"ring cursor off", ringCheck, ringRun(func(p, c pathCounters) { p["out_head"] = n + 1 }), false},
		{"ring woken by something else", ringCheck, ringRun(func(p, c pathCounters) { c["sleeps"] = 9 }), false},
		{"ring without eventfds", ringCheck, ringRun(func(p, c pathCounters) { p["eventfds"] = 2 }), false},
	} {
		err := tc.check(tc.run)
		if tc.ok && err != nil {
			t.Errorf("%s: rejected: %v", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, errPathCheck) {
			t.Errorf("%s: not rejected (error %v)", tc.name, err)
		}
	}
}

// TestCheckPathGOMAXPROCS checks that the harness rejects a run whose peer
// ran with another GOMAXPROCS than its link asked for, and one whose
// mechanism has no path check.
func TestCheckPathGOMAXPROCS(t *testing.T) {
	pass := func(pathRun) (string, error) { return "fine", nil }
	spec := peerSpec{Pattern: patternStream, Size: 8, Count: 1}
	other := runtime.GOMAXPROCS(0) + 1 // not what this process runs with
	for _, tc := range []struct {
		name   string
		link   Link
		parent int // applied to this process during the check; 0 keeps it
		rep    peerReport
		ok     bool
	}{
		{"as asked", Link{GOMAXPROCS: 1, CheckPath: pass}, 1, peerReport{GOMAXPROCS: 1}, true},
		{"default both", Link{CheckPath: pass}, 0, peerReport{GOMAXPROCS: 5}, true},
		{"C peer", Link{GOMAXPROCS: 1, CheckPath: pass}, 1, peerReport{}, true},
		{"peer differs", Link{GOMAXPROCS: 1, CheckPath: pass}, 1, peerReport{GOMAXPROCS: 2}, false},
		{"parent differs", Link{GOMAXPROCS: other, CheckPath: pass}, 0, peerReport{GOMAXPROCS: other}, false},
		{"no check", Link{}, 0, peerReport{}, false},
	} {
		rec := Record{Mechanism: "m"}
		restore := setGOMAXPROCS(tc.parent)
		err := checkPath(&rec, &tc.link, &chanConn{}, tc.rep, spec)
		restore()
		if tc.ok && err != nil {
			t.Errorf("%s: rejected: %v", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, errPathCheck) {
			t.Errorf("%s: not rejected (error %v)", tc.name, err)
		}
	}
}

// TestMechanismsDescribeConfig checks that every mechanism states its
// configuration with reasons, says why it keeps or sets GOMAXPROCS, and
// has a path check.
func TestMechanismsDescribeConfig(t *testing.T) {
	for _, m := range registeredMechanisms() {
		if err := m.Check(64); err != nil {
			t.Logf("%s: %v", m.Name(), err)
			continue
		}
		if f, ok := m.(selfRunner); ok {
			// A floor has no Link: its run states its configuration.
			spec := runSpec{peerSpec: peerSpec{Pattern: patternsOf(m)[0], Size: 64, Count: 100, Warmup: 10},
				Timeout: 15 * time.Second, Runs: 1, Producers: 1, Consumers: 1}
			rec, err := f.RunSelf(spec)
			if err != nil {
				t.Fatalf("%s: %v", m.Name(), err)
			}
			if len(rec.Config) == 0 || rec.PathNote == "" {
				t.Errorf("%s: config %v, note %q", m.Name(), rec.Config, rec.PathNote)
			}
			for _, s := range rec.Config {
				if s.Name == "" || s.Value == "" || s.Why == "" {
					t.Errorf("%s: incomplete setting %+v", m.Name(), s)
				}
			}
			continue
		}
		link, err := m.Setup(64)
		if err != nil {
			t.Fatalf("%s: setup: %v", m.Name(), err)
		}
		closeFiles(link.ChildFiles)
		if link.Cleanup != nil {
			link.Cleanup()
		}
		if len(link.Config) == 0 || link.GOMAXPROCSWhy == "" || link.CheckPath == nil {
			t.Errorf("%s: config %v, GOMAXPROCS reason %q, path check set %v", m.Name(), link.Config, link.GOMAXPROCSWhy, link.CheckPath != nil)
		}
		for _, s := range link.Config {
			if s.Name == "" || s.Value == "" || s.Why == "" {
				t.Errorf("%s: incomplete setting %+v", m.Name(), s)
			}
		}
	}
}

func TestPerMessage(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		msgs int
		want string
	}{{4, 100000, "0.00004"}, {127, 100, "1.27"}, {0, 5, "0"}, {1, 3, "0.333"}, {5, 0, "-"}, {123456, 1, "123000"}} {
		if got := perMessage(tc.n, tc.msgs); got != tc.want {
			t.Errorf("perMessage(%d, %d) = %q, want %q", tc.n, tc.msgs, got, tc.want)
		}
	}
}
