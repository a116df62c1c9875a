package interop

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/spsc"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// sizeSpec mirrors layout/c/payload.h: message seq has
// min + seq*7919 % (max-min+1) bytes.
type sizeSpec struct{ min, max uint64 }

func (s sizeSpec) String() string {
	if s.min == s.max {
		return fmt.Sprint(s.min)
	}
	return fmt.Sprintf("%d-%d", s.min, s.max)
}

func (s sizeSpec) size(seq uint64) int { return int(s.min + seq*7919%(s.max-s.min+1)) }

// fill writes message seq as payload.h does: the little-endian sequence
// number (truncated below 8 bytes), then byte(seq) ^ byte(i*7).
func fill(b []byte, seq uint64) {
	var le [8]byte
	binary.LittleEndian.PutUint64(le[:], seq)
	copy(b, le[:])
	for i := 8; i < len(b); i++ {
		b[i] = byte(seq) ^ byte(i*7)
	}
}

func verify(b []byte, seq uint64, want int) error {
	if len(b) != want {
		return fmt.Errorf("message %d has %d bytes, want %d", seq, len(b), want)
	}
	exp := make([]byte, want)
	fill(exp, seq)
	if !bytes.Equal(b, exp) {
		return fmt.Errorf("message %d: wrong content (lost, duplicated, reordered or corrupted)", seq)
	}
	return nil
}

func summary(n, bytes uint64, crc uint32) string {
	return fmt.Sprintf("messages=%d bytes=%d crc32c=%08x", n, bytes, crc)
}

var nameSeq atomic.Uint32

// newQueue creates an SPSC queue in /dev/shm (or a memfd) and removes it at
// the end of the test. It returns the queue and the location argument for
// the C programs, and the files to pass them.
func newQueue(t testing.TB, memfd bool, cfg spsc.Config) (*spsc.Queue, string, []*os.File) {
	t.Helper()
	if memfd {
		q, err := spsc.Create(ring.Memfd("interop"), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
		// ExtraFiles[0] is descriptor 3 in the child.
		return q, "fd:3", []*os.File{q.Segment().File()}
	}
	name := fmt.Sprintf("shmq-it-%d-%d", os.Getpid(), nameSeq.Add(1))
	loc := ring.Shm(name)
	q, err := spsc.Create(loc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		q.Close()
		ring.Unlink(loc)
	})
	return q, name, nil
}

// start starts cmd and returns a context that ends when it exits, so a Go
// side blocked on a dead or failed C peer stops waiting, and a function
// that waits for the exit and returns stdout, failing on error.
func start(t testing.TB, cmd *exec.Cmd) (context.Context, func() string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The context bounds the Go side's blocking calls. It is not cancelled
	// when the child exits: the child may exit as soon as its last message
	// is committed, before the Go consumer has received it, and a blocked
	// Go call learns of a dead peer from the queue (ErrPeerDead) anyway.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		cmd.Process.Kill()
	})
	return ctx, func() string {
		t.Helper()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v\nstdout: %s\nstderr: %s", cmd, err, stdout.String(), stderr.String())
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("%s did not exit\nstderr: %s", cmd, stderr.String())
		}
		return strings.TrimSpace(stdout.String())
	}
}

type streamCase struct {
	name  string
	memfd bool
	cfg   spsc.Config
	count uint64
	sizes sizeSpec
	pause bool // the Go side pauses now and then, so the C side must park
}

func streamCases() []streamCase {
	return []streamCase{
		{name: "shm/small-ring/mixed-sizes", cfg: spsc.Config{Capacity: 4096}, count: 20000, sizes: sizeSpec{1, 1000}},
		{name: "memfd/fixed-8", memfd: true, cfg: spsc.Config{Capacity: 1 << 16}, count: 50000, sizes: sizeSpec{8, 8}},
		{name: "shm/cursor-wrap-2^64", cfg: spsc.Config{Capacity: 1 << 12, StartPosition: 1<<64 - 1<<16}, count: 5000, sizes: sizeSpec{9, 300}},
		{name: "shm/max-message", cfg: spsc.Config{Capacity: 1 << 12}, count: 200, sizes: sizeSpec{1500, 2040}},
		{name: "shm/parked-peer", cfg: spsc.Config{Capacity: 1 << 12}, count: 400, sizes: sizeSpec{8, 200}, pause: true},
	}
}

// goToC streams from a Go producer to the C consumer.
func goToC(t *testing.T, progs programs, tc streamCase) {
	q, loc, files := newQueue(t, tc.memfd, tc.cfg)
	p, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cmd := exec.Command(progs.consume, loc, fmt.Sprint(tc.count), tc.sizes.String())
	cmd.Env, cmd.ExtraFiles = progs.env, files
	ctx, wait := start(t, cmd)
	var crc uint32
	var total uint64
	buf := make([]byte, tc.sizes.max)
	for seq := uint64(0); seq < tc.count; seq++ {
		if tc.pause && seq%100 == 99 {
			time.Sleep(20 * time.Millisecond) // the C consumer parks meanwhile
		}
		m := buf[:tc.sizes.size(seq)]
		fill(m, seq)
		if err := p.Send(ctx, m); err != nil {
			wait()
			t.Fatalf("send %d: %v", seq, err)
		}
		crc = crc32.Update(crc, castagnoli, m)
		total += uint64(len(m))
	}
	if got, want := wait(), summary(tc.count, total, crc); got != want {
		t.Fatalf("C consumer printed %q, want %q", got, want)
	}
	checkRegistry(t, q, layout.SPSCConsumerEntry, cmd.Process.Pid, tc.count, total, tc.pause)
}

// cToGo streams from the C producer to a Go consumer.
func cToGo(t *testing.T, progs programs, tc streamCase) {
	q, loc, files := newQueue(t, tc.memfd, tc.cfg)
	c, err := q.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cmd := exec.Command(progs.produce, loc, fmt.Sprint(tc.count), tc.sizes.String())
	cmd.Env, cmd.ExtraFiles = progs.env, files
	ctx, wait := start(t, cmd)
	var crc uint32
	var total uint64
	buf := make([]byte, q.MaxMessage())
	for seq := uint64(0); seq < tc.count; seq++ {
		if tc.pause && seq%100 == 99 {
			time.Sleep(20 * time.Millisecond) // the ring fills and the C producer parks
		}
		n, err := c.Recv(ctx, buf)
		if err != nil {
			wait()
			t.Fatalf("recv %d: %v", seq, err)
		}
		if err := verify(buf[:n], seq, tc.sizes.size(seq)); err != nil {
			t.Fatal(err)
		}
		crc = crc32.Update(crc, castagnoli, buf[:n])
		total += uint64(n)
	}
	if got, want := wait(), summary(tc.count, total, crc); got != want {
		t.Fatalf("C producer printed %q, want %q", got, want)
	}
	if _, err := c.TryRecv(buf); err != spsc.ErrEmpty {
		t.Fatalf("after %d messages: TryRecv returned %v, want ErrEmpty", tc.count, err)
	}
	checkRegistry(t, q, layout.SPSCProducerEntry, cmd.Process.Pid, tc.count, total, tc.pause)
}

// checkRegistry checks the registry entry the C peer left: detached, with
// its pid and counters. If parked, the C peer must have parked and the Go
// side must have woken it: the wake protocol ran across languages.
func checkRegistry(t *testing.T, q *spsc.Queue, entry, pid int, msgs, total uint64, parked bool) {
	t.Helper()
	st, err := q.Stats()
	if err != nil {
		t.Fatal(err)
	}
	e := st.Producer
	role := layout.RoleProducer
	if entry == layout.SPSCConsumerEntry {
		e, role = st.Consumer, layout.RoleConsumer
	}
	if e.State != layout.EntryDetached || e.Role != role || e.PID != uint32(pid) || e.Gen != 1 ||
		e.Alive || e.Messages != msgs || e.Bytes != total {
		t.Fatalf("registry entry %d after the C peer exited: %+v; want detached, role %d, pid %d, gen 1, %d messages, %d bytes",
			entry, e, role, pid, msgs, total)
	}
	if parked {
		goSide := st.Consumer
		if entry == layout.SPSCConsumerEntry {
			goSide = st.Producer
		}
		if e.Waits == 0 || goSide.Wakes == 0 {
			t.Fatalf("the C peer parked %d times and the Go side woke it %d times; want both > 0", e.Waits, goSide.Wakes)
		}
		t.Logf("C peer parked %d times; Go side woke it %d times", e.Waits, goSide.Wakes)
	}
}

func runStreams(t *testing.T, progs programs) {
	for _, tc := range streamCases() {
		t.Run("GoToC/"+tc.name, func(t *testing.T) { goToC(t, progs, tc) })
		t.Run("CToGo/"+tc.name, func(t *testing.T) { cToGo(t, progs, tc) })
	}
	t.Run("Corrupt", func(t *testing.T) { corrupt(t, progs) })
	t.Run("RoleTaken", func(t *testing.T) { roleTaken(t, progs) })
}

// TestInterop streams between Go and C in both directions, with the C
// built plainly.
func TestInterop(t *testing.T) {
	cc := compiler(t)
	runStreams(t, buildPrograms(t, cc, false))
}

// TestInteropSanitized repeats TestInterop with the C built under
// -fsanitize=address,undefined. It skips only if the sanitizer runtime is
// missing.
func TestInteropSanitized(t *testing.T) {
	cc := compiler(t)
	if ok, why := sanitizerAvailable(t, cc); !ok {
		t.Skipf("sanitizer runtime missing (%s -fsanitize=address,undefined failed): %s", cc, why)
	}
	runStreams(t, buildPrograms(t, cc, true))
}

// corrupt checks that the C consumer rejects what no correct peer writes,
// as the Go consumer does, instead of crashing or reading out of bounds.
func corrupt(t *testing.T, progs programs) {
	cases := []struct {
		name  string
		spoil func(t *testing.T, q *spsc.Queue)
		want  string
	}{
		{"record-length-past-tail", func(t *testing.T, q *spsc.Queue) {
			binary.LittleEndian.PutUint32(q.Segment().Data()[layout.RecordLength:], 0x7fffffff)
		}, "corrupt"},
		{"record-length-below-header", func(t *testing.T, q *spsc.Queue) {
			binary.LittleEndian.PutUint32(q.Segment().Data()[layout.RecordLength:], 4)
		}, "corrupt"},
		{"unknown-type", func(t *testing.T, q *spsc.Queue) {
			binary.LittleEndian.PutUint32(q.Segment().Data()[layout.RecordType:], 7)
		}, "corrupt"},
		{"padding-not-at-end", func(t *testing.T, q *spsc.Queue) {
			binary.LittleEndian.PutUint32(q.Segment().Data()[layout.RecordType:], layout.TypePadding)
		}, "corrupt"},
		{"tail-misaligned", func(t *testing.T, q *spsc.Queue) {
			h := q.Segment().Header()
			w, err := q.Segment().Uint64(h.Producer + layout.CursorPosition)
			if err != nil {
				t.Fatal(err)
			}
			w.Add(4)
		}, "corrupt"},
		{"tail-beyond-ring", func(t *testing.T, q *spsc.Queue) {
			h := q.Segment().Header()
			w, err := q.Segment().Uint64(h.Producer + layout.CursorPosition)
			if err != nil {
				t.Fatal(err)
			}
			w.Add(2 * h.Capacity)
		}, "corrupt"},
		{"header-data-misaligned", func(t *testing.T, q *spsc.Queue) {
			b := q.Segment().Bytes()
			binary.LittleEndian.PutUint64(b[layout.OffTabData:], binary.LittleEndian.Uint64(b[layout.OffTabData:])+8)
		}, "corrupt"},
		{"header-registry-overlaps-data", func(t *testing.T, q *spsc.Queue) {
			b := q.Segment().Bytes()
			binary.LittleEndian.PutUint64(b[layout.OffTabRegistry:], binary.LittleEndian.Uint64(b[layout.OffTabData:]))
		}, "corrupt"},
		{"header-size-mismatch", func(t *testing.T, q *spsc.Queue) {
			b := q.Segment().Bytes()
			binary.LittleEndian.PutUint64(b[layout.OffTotalSize:], uint64(len(b))+layout.PageSize)
		}, "corrupt"},
		{"header-flags", func(t *testing.T, q *spsc.Queue) {
			binary.LittleEndian.PutUint32(q.Segment().Bytes()[layout.OffFlags:], 1)
		}, "version"},
		{"header-max-message", func(t *testing.T, q *spsc.Queue) {
			binary.LittleEndian.PutUint32(q.Segment().Bytes()[layout.OffMaxMessage:], uint32(q.Capacity()))
		}, "corrupt"},
		{"header-kind", func(t *testing.T, q *spsc.Queue) {
			binary.LittleEndian.PutUint32(q.Segment().Bytes()[layout.OffKind:], 9)
		}, "kind"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q, loc, files := newQueue(t, false, spsc.Config{Capacity: 4096})
			p, err := q.Producer()
			if err != nil {
				t.Fatal(err)
			}
			msg := make([]byte, 24)
			fill(msg, 0)
			if err := p.TrySend(msg); err != nil {
				t.Fatal(err)
			}
			p.Close()
			tc.spoil(t, q)
			cmd := exec.Command(progs.consume, loc, "1", "24")
			cmd.Env, cmd.ExtraFiles = append(progs.env, "SHMQ_TIMEOUT_MS=2000"), files
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err = cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("C consumer on a spoiled queue: %v (want exit status 1)\nstderr: %s", err, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("C consumer's error %q does not mention %q", stderr.String(), tc.want)
			}
		})
	}
}

// roleTaken checks that the OFD lock keeps a C process off a role a live Go
// handle holds, and lets it take the role once the Go handle detaches.
func roleTaken(t *testing.T, progs programs) {
	q, loc, files := newQueue(t, false, spsc.Config{Capacity: 4096})
	c, err := q.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(progs.consume, loc, "0", "8")
	cmd.Env, cmd.ExtraFiles = progs.env, files
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "role taken") {
		t.Fatalf("C consumer beside a live Go consumer: %v, stderr %q; want a role-taken failure", err, stderr.String())
	}
	c.Close()
	cmd = exec.Command(progs.consume, loc, "0", "8")
	cmd.Env, cmd.ExtraFiles = progs.env, files
	if got := strings.TrimSpace(output(t, cmd)); got != summary(0, 0, 0) {
		t.Fatalf("C consumer after the Go consumer detached printed %q", got)
	}
	st, err := q.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Consumer.Gen != 2 || st.Consumer.State != layout.EntryDetached {
		t.Fatalf("consumer entry after Go then C attached: %+v, want gen 2, detached", st.Consumer)
	}
}
