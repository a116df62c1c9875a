//go:build unix

package ring

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmq/shmq/internal/ofd"
	"github.com/shmq/shmq/layout"
)

// With SHMQ_RING_LIST_HELPER=DIR the test binary lists DIR and prints one
// line per file, "NAME STATE permission=BOOL", then inspects and reaps the
// file named by SHMQ_RING_LIST_INSPECT; the tests run it as another user.
func init() {
	dir := os.Getenv("SHMQ_RING_LIST_HELPER")
	if dir == "" {
		return
	}
	infos, err := List(dir)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	for _, i := range infos {
		fmt.Printf("%s %s permission=%v\n", i.Name, strings.ReplaceAll(i.State.String(), " ", "-"), errors.Is(i.Err, ErrPermission))
	}
	loc := File(filepath.Join(dir, os.Getenv("SHMQ_RING_LIST_INSPECT")))
	info, err := Inspect(context.Background(), loc)
	fmt.Printf("inspect %s entries=%d err=%v\n", info.State, len(info.Entries), err)
	_, err = Reap(context.Background(), loc, &Options{AllowOtherOwner: true})
	fmt.Printf("reap permission=%v\n", errors.Is(err, ErrPermission))
	os.Exit(0)
}

// writeFixture writes a segment-like file: size bytes that start with the
// magic, unpublished (StateInit), the way a creator that is at work or
// died leaves it.
func writeFixture(t *testing.T, path string, size int) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Truncate(int64(size)); err != nil {
		t.Fatal(err)
	}
	var magic [8]byte
	binary.LittleEndian.PutUint64(magic[:], layout.Magic)
	if _, err := f.WriteAt(magic[:], layout.OffMagic); err != nil {
		t.Fatal(err)
	}
	return f
}

// listDir is a directory holding one file of every state List tells apart.
type listDir struct {
	dir     string
	ready   *Segment
	foreign []byte // contents of the foreign file, which must not change
}

func newListDir(t *testing.T) *listDir {
	t.Helper()
	d := &listDir{dir: t.TempDir()}
	d.ready = create(t, File(filepath.Join(d.dir, "ready")))
	d.foreign = bytes.Repeat([]byte("not a queue\n"), 1000)
	for name, content := range map[string][]byte{
		"foreign": d.foreign,
		"empty":   nil,
		"zeros":   make([]byte, 2*layout.PageSize),
	} {
		if err := os.WriteFile(filepath.Join(d.dir, name), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeFixture(t, filepath.Join(d.dir, "abandoned"), 3*layout.PageSize).Close()
	creator := writeFixture(t, filepath.Join(d.dir, "initializing"), 3*layout.PageSize)
	if err := ofd.TryLock(int(creator.Fd()), layout.InitLockByte); err != nil {
		t.Fatal(err)
	}
	corrupt := create(t, File(filepath.Join(d.dir, "corrupt")))
	corrupt.Bytes()[layout.OffTabData]++
	if err := unix.Mkfifo(filepath.Join(d.dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("ready", filepath.Join(d.dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(d.dir, "subdir"), 0o700); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestListStates(t *testing.T) {
	d := newListDir(t)
	h := d.ready.Header()
	e, err := d.ready.Attach(layout.SPSCConsumerEntry, layout.RoleConsumer)
	if err != nil {
		t.Fatal(err)
	}
	e.Messages.Store(3)
	head, _ := d.ready.Uint64(h.Consumer + layout.CursorPosition)
	tail, _ := d.ready.Uint64(h.Producer + layout.CursorPosition)
	head.Store(1 << 20)
	tail.Store(1<<20 + 96)
	set, _ := d.ready.WaiterSet(layout.WaiterSetConsumers)
	set[0].Store(1<<layout.SPSCConsumerEntry | 1<<7) // bit 7 stands for no entry of a 2-entry registry

	infos, err := List(d.dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		state SegmentState
		err   error
	}{
		"abandoned":    {StateAbandoned, ErrAbandoned},
		"corrupt":      {StateUnreadable, layout.ErrCorrupt},
		"empty":        {StateNotSegment, layout.ErrNotSegment},
		"fifo":         {StateNotSegment, layout.ErrNotSegment},
		"foreign":      {StateNotSegment, layout.ErrNotSegment},
		"initializing": {StateInitializing, layout.ErrNotReady},
		"link":         {StateNotSegment, layout.ErrNotSegment},
		"ready":        {StateReady, nil},
		"zeros":        {StateNotSegment, layout.ErrNotSegment},
	}
	var names []string
	for _, i := range infos {
		names = append(names, i.Name)
		w, ok := want[i.Name]
		if !ok {
			t.Errorf("unexpected entry %+v", i)
			continue
		}
		if i.State != w.state || !errors.Is(i.Err, w.err) || (w.err == nil) != (i.Err == nil) {
			t.Errorf("%s: state %v, err %v; want %v, %v", i.Name, i.State, i.Err, w.state, w.err)
		}
		if i.Location != File(filepath.Join(d.dir, i.Name)) {
			t.Errorf("%s: location %v", i.Name, i.Location)
		}
	}
	if got := strings.Join(names, " "); got != "abandoned corrupt empty fifo foreign initializing link ready zeros" {
		t.Errorf("listed %s; want every file but the directory, sorted", got)
	}

	var ready SegmentInfo
	for _, i := range infos {
		if i.Name == "ready" {
			ready = i
		}
	}
	if ready.Header != h || ready.Size != int64(h.TotalSize) || ready.Mode != 0o600 || ready.UID != uint32(os.Geteuid()) {
		t.Errorf("ready: header %+v size %d mode %v uid %d", ready.Header, ready.Size, ready.Mode, ready.UID)
	}
	if ready.Head != 1<<20 || ready.Tail != 1<<20+96 {
		t.Errorf("ready: head %d tail %d", ready.Head, ready.Tail)
	}
	if d, ok := ready.Depth(); d != 96 || !ok {
		t.Errorf("ready: depth %d, %v; want 96 bytes", d, ok)
	}
	if len(ready.Entries) != 2 || ready.Entries[1].State != layout.EntryAttached || !ready.Entries[1].Alive ||
		ready.Entries[1].Messages != 3 || ready.Entries[0].State != layout.EntryFree {
		t.Errorf("ready: entries %+v", ready.Entries)
	}
	if len(ready.Waiters) != layout.SPSCWaiterSets || ready.Waiters[layout.WaiterSetConsumers] != 1 || ready.Waiters[layout.WaiterSetProducers] != 0 {
		t.Errorf("ready: waiters %v, want [0 1]", ready.Waiters)
	}

	// Nothing was changed, and nothing removed.
	if b, err := os.ReadFile(filepath.Join(d.dir, "foreign")); err != nil || !bytes.Equal(b, d.foreign) {
		t.Errorf("the foreign file changed: %v", err)
	}
	if again, err := List(d.dir); err != nil || len(again) != len(infos) {
		t.Errorf("second listing: %d entries, %v; want %d", len(again), err, len(infos))
	}

	if _, err := List(filepath.Join(d.dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("listing a missing directory: %v", err)
	}
}

// TestListShmDir: in the shm directory, valid names are shm locations and
// other names (a creator's temporary, say) files.
func TestListShmDir(t *testing.T) {
	loc := tempShm(t)
	create(t, loc)
	tmp := filepath.Join(shmDir, fmt.Sprintf(".shmq-%d-test", os.Getpid()))
	writeFixture(t, tmp, 3*layout.PageSize)
	t.Cleanup(func() { os.Remove(tmp) })
	infos, err := List("")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, i := range infos {
		switch i.Name {
		case loc.name:
			found++
			if i.Location != loc || i.State != StateReady {
				t.Errorf("%s: %v %v", i.Name, i.Location, i.State)
			}
		case filepath.Base(tmp):
			found++
			if i.Location != File(tmp) || i.State != StateAbandoned {
				t.Errorf("%s: %v %v", i.Name, i.Location, i.State)
			}
		}
	}
	if found != 2 {
		t.Errorf("found %d of the 2 files in %s: %+v", found, shmDir, infos)
	}
}

func TestInspect(t *testing.T) {
	ctx := context.Background()
	shm := tempShm(t)
	s := create(t, shm)
	d := newListDir(t)
	for _, loc := range []Location{shm, File(filepath.Join(d.dir, "ready")), FD(s.Fd())} {
		info, err := Inspect(ctx, loc)
		if err != nil || info.State != StateReady || info.Location != loc || info.Header.Kind != layout.KindSPSC || len(info.Entries) != 2 {
			t.Errorf("Inspect(%v) = %+v, %v", loc, info, err)
		}
	}
	if info, _ := Inspect(ctx, shm); info.Name != shm.name {
		t.Errorf("name %q, want %q", info.Name, shm.name)
	}
	for _, tc := range []struct {
		name  string
		state SegmentState
		err   error
	}{
		{"missing", StateUnreadable, ErrNotFound},
		{"foreign", StateNotSegment, layout.ErrNotSegment},
		{"fifo", StateNotSegment, layout.ErrNotSegment},
		{"subdir", StateNotSegment, layout.ErrNotSegment},
		{"link", StateUnreadable, ErrPermission},
		{"abandoned", StateAbandoned, ErrAbandoned},
		{"corrupt", StateUnreadable, layout.ErrCorrupt},
	} {
		info, err := Inspect(ctx, File(filepath.Join(d.dir, tc.name)))
		if !errors.Is(err, tc.err) || info.State != tc.state || info.Err != err {
			t.Errorf("Inspect(%s) = state %v, err %v; want %v, %v", tc.name, info.State, err, tc.state, tc.err)
		}
	}
	// A segment being initialized is waited for, as long as ctx allows.
	// The clock starts before ctx's, so that a stall between the two
	// cannot make a wait that lasted until ctx ended look short.
	start := time.Now()
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	info, err := Inspect(short, File(filepath.Join(d.dir, "initializing")))
	if !errors.Is(err, layout.ErrNotReady) || !errors.Is(err, context.DeadlineExceeded) || info.State != StateInitializing {
		t.Errorf("initializing: %v, %v", info.State, err)
	}
	if time.Since(start) < 40*time.Millisecond {
		t.Errorf("initializing: returned after %v, before ctx ended", time.Since(start))
	}
	if _, err := Inspect(ctx, Memfd("x")); !errors.Is(err, ErrBadName) {
		t.Errorf("memfd label: %v", err)
	}
}

// TestInspectDeadEntry: a view tells a live holder from a dead one, as the
// segment's own Entry does.
func TestInspectDeadEntry(t *testing.T) {
	loc := tempShm(t)
	create(t, loc)
	cmd := startHolder(t, loc)
	info, err := Inspect(context.Background(), loc)
	if err != nil || !info.Entries[0].Alive || info.Entries[0].PID != uint32(cmd.Process.Pid) {
		t.Fatalf("while the holder lives: %+v, %v", info.Entries, err)
	}
	cmd.Process.Signal(unix.SIGKILL)
	cmd.Wait()
	if info, err = Inspect(context.Background(), loc); err != nil || !info.Entries[0].Dead() {
		t.Fatalf("after the holder died: %+v, %v", info.Entries, err)
	}
}

// startHolder starts a process that attaches to entry 0 of the SPSC
// segment at loc and waits to be killed.
func startHolder(t *testing.T, loc Location) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SHMQ_RING_HELPER="+loc.name)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line := make([]byte, 9)
	if _, err := io.ReadFull(out, line); err != nil || string(line) != "attached\n" {
		t.Fatalf("holder said %q, %v", line, err)
	}
	return cmd
}

func TestReap(t *testing.T) {
	ctx := context.Background()
	loc := tempShm(t)
	s := create(t, loc)
	if _, err := s.Attach(layout.SPSCConsumerEntry, layout.RoleConsumer); err != nil {
		t.Fatal(err)
	}
	cmd := startHolder(t, loc)
	if reaped, err := Reap(ctx, loc, nil); err != nil || len(reaped) != 0 {
		t.Fatalf("with live holders: %+v, %v", reaped, err)
	}
	cmd.Process.Signal(unix.SIGKILL)
	cmd.Wait()
	reaped, err := Reap(ctx, loc, nil)
	if err != nil || len(reaped) != 1 || reaped[0].Index != 0 || reaped[0].PID != uint32(cmd.Process.Pid) {
		t.Fatalf("Reap = %+v, %v; want entry 0 of pid %d", reaped, err, cmd.Process.Pid)
	}
	info, _ := Inspect(ctx, loc)
	if info.Entries[0].State != layout.EntryFree || !info.Entries[1].Alive {
		t.Fatalf("after Reap: %+v", info.Entries)
	}
	if reaped, err := Reap(ctx, loc, nil); err != nil || len(reaped) != 0 {
		t.Fatalf("second Reap: %+v, %v", reaped, err)
	}
	d := newListDir(t)
	if _, err := Reap(ctx, File(filepath.Join(d.dir, "foreign")), nil); !errors.Is(err, layout.ErrNotSegment) {
		t.Fatalf("Reap of a foreign file: %v", err)
	}
}

func TestRemove(t *testing.T) {
	d := newListDir(t)
	at := func(name string) Location { return File(filepath.Join(d.dir, name)) }
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"foreign", layout.ErrNotSegment},
		{"empty", layout.ErrNotSegment},
		{"zeros", layout.ErrNotSegment},
		{"fifo", layout.ErrNotSegment},
		{"subdir", layout.ErrNotSegment},
		{"link", ErrPermission},
		{"missing", ErrNotFound},
	} {
		if err := Remove(at(tc.name)); !errors.Is(err, tc.err) {
			t.Errorf("Remove(%s) = %v, want %v", tc.name, err, tc.err)
		}
		if _, err := os.Lstat(filepath.Join(d.dir, tc.name)); tc.name != "missing" && err != nil {
			t.Errorf("Remove(%s) removed it: %v", tc.name, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(d.dir, "foreign")); err != nil || !bytes.Equal(b, d.foreign) {
		t.Errorf("the foreign file changed: %v", err)
	}
	// shmq's files go whatever their state, truncated ones too.
	if err := os.Truncate(filepath.Join(d.dir, "corrupt"), 100); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ready", "abandoned", "initializing", "corrupt"} {
		if err := Remove(at(name)); err != nil {
			t.Errorf("Remove(%s): %v", name, err)
		}
		if _, err := os.Lstat(filepath.Join(d.dir, name)); !os.IsNotExist(err) {
			t.Errorf("Remove(%s) left it: %v", name, err)
		}
	}
	// The mapping stays usable by whoever has it.
	if w, err := d.ready.Uint64(d.ready.Header().Producer); err != nil {
		t.Error(err)
	} else {
		w.Store(5)
	}
	shm := tempShm(t)
	create(t, shm)
	if err := Remove(shm); err != nil {
		t.Fatal(err)
	}
	if err := Remove(shm); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Remove: %v", err)
	}
	for _, loc := range []Location{Memfd("x"), FD(0), {}} {
		if err := Remove(loc); !errors.Is(err, ErrBadName) {
			t.Errorf("Remove(%v) = %v, want ErrBadName", loc, err)
		}
	}
}

func TestViewTruncatedAndClosed(t *testing.T) {
	loc := File(filepath.Join(t.TempDir(), "q"))
	create(t, loc)
	v, err := OpenView(context.Background(), loc)
	if err != nil {
		t.Fatal(err)
	}
	h := v.Header()
	if w, err := v.Load64(h.Data); err != nil || w != 0 {
		t.Fatalf("Load64 of the data region: %d, %v", w, err)
	}
	if _, err := v.Load32(2); !errors.Is(err, layout.ErrCorrupt) {
		t.Fatalf("misaligned Load32: %v", err)
	}
	if err := os.Truncate(loc.name, layout.PageSize); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Load64(h.Data); !errors.Is(err, ErrTruncated) {
		t.Fatalf("Load64 past the end of a truncated file: %v", err)
	}
	if _, err := v.Info(); err != nil {
		t.Fatalf("Info of a file truncated after its header: %v", err)
	}
	if err := os.Truncate(loc.name, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Info(); !errors.Is(err, ErrTruncated) {
		t.Fatalf("Info of a truncated file: %v", err)
	}
	v.Close()
	if _, err := v.Load32(0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Load32 after Close: %v", err)
	}
	if _, err := v.Info(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Info after Close: %v", err)
	}
	var nilView *View
	if _, err := nilView.Info(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("nil view: %v", err)
	}
}

func TestDepth(t *testing.T) {
	info := SegmentInfo{State: StateReady, Header: layout.Header{Capacity: 64}}
	for _, tc := range []struct {
		head, tail, depth uint64
		ok                bool
	}{
		{0, 0, 0, true},
		{10, 74, 64, true},
		{10, 75, 65, false},
		{10, 9, ^uint64(0), false},
		{^uint64(0) - 1, 5, 7, true}, // across the wrap of the 64-bit counters
	} {
		info.Head, info.Tail = tc.head, tc.tail
		if d, ok := info.Depth(); d != tc.depth || ok != tc.ok {
			t.Errorf("head %d tail %d: depth %d, %v; want %d, %v", tc.head, tc.tail, d, ok, tc.depth, tc.ok)
		}
	}
	if _, ok := (&SegmentInfo{State: StateAbandoned}).Depth(); ok {
		t.Error("depth of an abandoned segment")
	}
}

func TestParseLocation(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Location
	}{
		{"jobs", Shm("jobs")},
		{"/jobs", File("/jobs")},
		{"shm:jobs", Shm("jobs")},
		{"shm:/jobs", Shm("jobs")},
		{"file:/var/lib/q", File("/var/lib/q")},
		{"file:q", File("q")},
		{"./q", File("./q")},
		{"fd:3", FD(3)},
		{"memfd:buf", Memfd("buf")},
	} {
		got, err := ParseLocation(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseLocation(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if err == nil && tc.in == got.String() {
			continue
		}
		// String's form reads back as the same location.
		if back, err := ParseLocation(tc.want.String()); err != nil || back != tc.want {
			t.Errorf("ParseLocation(%q) = %v, %v", tc.want.String(), back, err)
		}
	}
	for _, bad := range []string{"", "shm:", "shm:a/b", "file:", "fd:", "fd:-1", "fd:x", ".hidden", "-flag", "a:b", strings.Repeat("x", 31)} {
		if got, err := ParseLocation(bad); !errors.Is(err, ErrBadName) {
			t.Errorf("ParseLocation(%q) = %v, %v; want ErrBadName", bad, got, err)
		}
	}
}

// TestListAsAnotherUser: a user who may read a segment but not write it
// lists and inspects it, and cannot reap it; a segment it may not read is
// reported, not a failed listing.
func TestListAsAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a helper as another user")
	}
	const nobody = 65534
	// The helper binary and the directory must be reachable by nobody.
	dir, err := os.MkdirTemp("", "shmq-list-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "ring.test")
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	qdir := filepath.Join(dir, "q")
	if err := os.Mkdir(qdir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, qdir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	readable, err := Create(File(filepath.Join(qdir, "readable")), plan(t), &Options{Mode: 0o644}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer readable.Close()
	if _, err := readable.Attach(0, layout.RoleProducer); err != nil {
		t.Fatal(err)
	}
	create(t, File(filepath.Join(qdir, "private")))

	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), "SHMQ_RING_LIST_HELPER="+qdir, "SHMQ_RING_LIST_INSPECT=readable")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	want := "private unreadable permission=true\n" +
		"readable ready permission=false\n" +
		"inspect ready entries=2 err=<nil>\n" +
		"reap permission=true\n"
	if string(out) != want {
		t.Fatalf("helper printed\n%s\nwant\n%s", out, want)
	}
}
