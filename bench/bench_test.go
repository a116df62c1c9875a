package main

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as the peer process, exactly as the
// bench binary does.
func TestMain(m *testing.M) {
	maybeRunChild()
	maybeRunShape()
	os.Exit(m.Run())
}

// TestMechanismsSmoke pushes a handful of fully checked messages through
// every registered mechanism in both patterns.
func TestMechanismsSmoke(t *testing.T) {
	for _, m := range registeredMechanisms() {
		t.Run(m.Name(), func(t *testing.T) {
			for _, size := range []int{8, 1000, 64 << 10} {
				for _, spec := range smokeRuns(size) {
					if !slices.Contains(patternsOf(m), spec.Pattern) {
						continue
					}
					rec, err := runMechanism(m, spec)
					if err != nil {
						t.Fatalf("%s %d B: %v", spec.Pattern, size, err)
					}
					if rec.Skipped != "" {
						t.Logf("%s %d B skipped: %s", spec.Pattern, size, rec.Skipped)
						continue
					}
					if rec.Messages != spec.Count || rec.MsgsPerSec <= 0 {
						t.Errorf("%s %d B: implausible record %+v", spec.Pattern, size, rec)
					}
				}
			}
		})
	}
}

func smokeRuns(size int) []runSpec {
	return []runSpec{
		{peerSpec: peerSpec{Pattern: patternPingPong, Size: size, Count: 20, Warmup: 3, FullCheck: true}, Timeout: 15 * time.Second, Runs: 1},
		{peerSpec: peerSpec{Pattern: patternStream, Size: size, Count: 200, FullCheck: true}, Timeout: 15 * time.Second, Runs: 1},
		{peerSpec: peerSpec{Pattern: patternShape, Size: size, Count: 400, FullCheck: true}, Timeout: 15 * time.Second,
			Producers: 2, Consumers: 2, Runs: 1},
	}
}

// TestHarnessCatchesFaults proves the smoke test would notice a mechanism
// that drops or corrupts a message.
func TestHarnessCatchesFaults(t *testing.T) {
	faults := map[string]func(seq int, msg []byte) ([]byte, bool){
		"drop":    func(seq int, msg []byte) ([]byte, bool) { return msg, seq != 7 },
		"corrupt": func(seq int, msg []byte) ([]byte, bool) { return corruptAt(msg, seq, 7, len(msg)/2), true },
		"trailer": func(seq int, msg []byte) ([]byte, bool) { return corruptAt(msg, seq, 7, len(msg)-1), true },
	}
	for name, fault := range faults {
		for _, spec := range smokeRuns(64) {
			if name == "drop" && spec.Pattern == patternPingPong {
				continue // a lost ping is a hang, which only the watchdog can catch
			}
			_, err := runMechanism(faultyMechanism{Mechanism: pipeMechanism{}, fault: fault}, spec)
			if err == nil {
				t.Errorf("%s fault in %s went unnoticed", name, spec.Pattern)
			}
		}
	}
}

func corruptAt(msg []byte, seq, victim, at int) []byte {
	if seq != victim {
		return msg
	}
	bad := append([]byte(nil), msg...)
	bad[at] ^= 0xff
	return bad
}

// faultyMechanism wraps a real one and tampers with what the parent sends.
// It keeps the inner name, so the child attaches with the real mechanism.
type faultyMechanism struct {
	Mechanism
	fault func(seq int, msg []byte) ([]byte, bool)
}

func (f faultyMechanism) Setup(size int) (*Link, error) {
	link, err := f.Mechanism.Setup(size)
	if err != nil {
		return nil, err
	}
	open := link.OpenParent
	link.OpenParent = func() (Conn, error) {
		c, err := open()
		return &faultyConn{Conn: c, fault: f.fault}, err
	}
	return link, nil
}

type faultyConn struct {
	Conn
	fault func(seq int, msg []byte) ([]byte, bool)
	seq   int
}

func (c *faultyConn) Send(msg []byte) error {
	out, keep := c.fault(c.seq, msg)
	c.seq++
	if !keep {
		return nil
	}
	return c.Conn.Send(out)
}

// TestMarkdownListsSkips checks that skipped sizes are explained in the output.
func TestMarkdownListsSkips(t *testing.T) {
	var sb strings.Builder
	writeMarkdown(&sb, []Record{{Mechanism: "m", Pattern: patternStream, Size: 65536, Skipped: "too big"}},
		[]runFailure{{Record: Record{Mechanism: "n", Pattern: patternPingPong, Size: 8}, Err: errors.New("boom")}})
	for _, want := range []string{"skipped m stream 64 KiB: too big", "FAILED n pingpong 8 B: boom"} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, sb.String())
		}
	}
}

// TestMPMCSizes checks that the MPMC mechanisms size a queue for every
// message the plans use and skip, with a reason, a message no slot holds.
func TestMPMCSizes(t *testing.T) {
	for _, m := range []shmqMPMCMechanism{shmqMPMCDefault, shmqMPMCLocked} {
		for _, size := range append(defaultPlan.StreamSizes, mpmcMaxMessage) {
			if err := m.Check(size); err != nil {
				t.Errorf("%s: %d B refused: %v", m.Name(), size, err)
			}
			link, err := m.Setup(size)
			if err != nil {
				t.Fatalf("%s: setup %d B: %v", m.Name(), size, err)
			}
			closeFiles(link.ChildFiles)
			link.Cleanup()
		}
		spec := smokeRuns(mpmcMaxMessage + 1)[1]
		rec, err := runMechanism(m, spec)
		if err != nil || !strings.Contains(rec.Skipped, "exceeds") {
			t.Errorf("%s: %d B not skipped: record %+v, error %v", m.Name(), spec.Size, rec, err)
		}
	}
}
