//go:build unix

package ring

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmq/shmq/internal/ofd"
	"github.com/shmq/shmq/layout"
)

// The test binary doubles as a helper process: with SHMQ_RING_HELPER set it
// attaches to a segment and waits to be killed.
func TestMain(m *testing.M) {
	if os.Getenv("SHMQ_RING_HELPER") != "" {
		helperMain()
		return
	}
	os.Exit(m.Run())
}

func helperMain() {
	loc := Shm(os.Getenv("SHMQ_RING_HELPER"))
	if os.Getenv("SHMQ_RING_HELPER") == "fd:3" {
		loc = FD(3)
	}
	seg, err := Open(context.Background(), loc, layout.KindSPSC, nil)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	if _, err := seg.Attach(0, layout.RoleProducer); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	if os.Getenv("SHMQ_RING_HELPER_CHILD") != "" {
		// Hand the segment's descriptor to a child that outlives us, as a
		// service hands a memfd to a worker.
		child := exec.Command("sleep", "60")
		child.ExtraFiles = []*os.File{seg.File()}
		if err := child.Start(); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Printf("attached %8d\n", child.Process.Pid)
	} else {
		fmt.Println("attached")
	}
	time.Sleep(time.Minute) // killed by the test long before
	os.Exit(3)
}

var nameSeq int

// tempShm returns a fresh shm location removed at the end of the test.
func tempShm(t *testing.T) Location {
	t.Helper()
	nameSeq++
	loc := Shm(fmt.Sprintf("shmq-rt-%d-%d", os.Getpid(), nameSeq))
	t.Cleanup(func() { Unlink(loc) })
	return loc
}

func plan(t *testing.T) layout.Header {
	t.Helper()
	h, err := layout.PlanSPSC(4096, 0)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func create(t *testing.T, loc Location) *Segment {
	t.Helper()
	s, err := Create(loc, plan(t), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestCreateOpenShm(t *testing.T) {
	loc := tempShm(t)
	s := create(t, loc)
	fi, err := os.Stat(filepath.Join(shmDir, loc.name))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || uint64(fi.Size()) != s.Header().TotalSize {
		t.Fatalf("mode %v size %d, want 0600 and %d", fi.Mode().Perm(), fi.Size(), s.Header().TotalSize)
	}
	o, err := Open(context.Background(), loc, layout.KindSPSC, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if o.Header() != s.Header() {
		t.Fatalf("opened header %+v differs from created %+v", o.Header(), s.Header())
	}
	w1, _ := s.Uint64(s.Header().Producer)
	w2, _ := o.Uint64(o.Header().Producer)
	w1.Store(42)
	if w2.Load() != 42 {
		t.Fatal("two mappings do not share memory")
	}
	if _, err := Create(loc, plan(t), nil, nil); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
}

func TestCreateMode(t *testing.T) {
	loc := tempShm(t)
	if _, err := Create(loc, plan(t), &Options{Mode: 0o640}, nil); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(shmDir, loc.name))
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, %v; want 0640", fi.Mode().Perm(), err)
	}
}

func TestFileBacking(t *testing.T) {
	loc := File(filepath.Join(t.TempDir(), "q"))
	s := create(t, loc)
	w, _ := s.Uint64(s.Header().Consumer)
	w.Store(7)
	s.Close()
	o, err := Open(context.Background(), loc, layout.KindSPSC, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if w, _ := o.Uint64(o.Header().Consumer); w.Load() != 7 {
		t.Fatal("file segment did not persist its contents")
	}
	if err := Unlink(loc); err != nil {
		t.Fatal(err)
	}
	if err := Unlink(loc); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second unlink: %v", err)
	}
}

func TestMemfdSealedAndReopened(t *testing.T) {
	s := create(t, Memfd("test"))
	o, err := Open(context.Background(), FD(s.Fd()), layout.KindSPSC, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	// The reopened descriptor is a separate open file description, so the
	// two handles' roles conflict as two processes' would.
	if _, err := s.Attach(0, layout.RoleProducer); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Attach(0, layout.RoleProducer); !errors.Is(err, ErrRoleTaken) {
		t.Fatalf("second producer through reopened memfd: %v", err)
	}
	if err := unix.Ftruncate(s.Fd(), 0); err != unix.EPERM {
		t.Fatalf("shrinking a sealed memfd: %v, want EPERM", err)
	}
	if _, err := Open(context.Background(), Memfd("x"), layout.KindSPSC, nil); !errors.Is(err, ErrBadName) {
		t.Fatalf("open of a memfd label: %v", err)
	}
}

func TestNames(t *testing.T) {
	for _, bad := range []string{"", ".hidden", "-flag", "a/b", "sp ace", strings.Repeat("x", 31), "ünï"} {
		if _, err := Create(Shm(bad), plan(t), nil, nil); !errors.Is(err, ErrBadName) {
			t.Errorf("Create(%q): %v, want ErrBadName", bad, err)
		}
		if _, err := Open(context.Background(), Shm(bad), layout.KindSPSC, nil); !errors.Is(err, ErrBadName) {
			t.Errorf("Open(%q): %v, want ErrBadName", bad, err)
		}
	}
	ok := fmt.Sprintf("%s-%05d", strings.Repeat("x", MaxNameLen-6), os.Getpid()%100000)
	loc := Shm("/" + ok)
	t.Cleanup(func() { Unlink(loc) })
	if _, err := Create(loc, plan(t), nil, nil); err != nil {
		t.Fatalf("30-character name with leading slash: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := Open(ctx, Shm("shmq-no-such-segment"), layout.KindSPSC, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	create(t, File(target))
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, File(link), layout.KindSPSC, nil); !errors.Is(err, ErrPermission) {
		t.Fatalf("symlink: %v, want ErrPermission", err)
	}
	if _, err := Create(File(link), plan(t), nil, nil); !errors.Is(err, ErrExists) {
		t.Fatalf("create over symlink: %v, want ErrExists", err)
	}
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, make([]byte, 3*layout.PageSize), 0o600); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(other, []byte(strings.Repeat("not a segment ", 1000))[:3*layout.PageSize], 0o600)
	if _, err := Open(ctx, File(other), layout.KindSPSC, nil); !errors.Is(err, layout.ErrNotSegment) {
		t.Fatalf("foreign file: %v, want ErrNotSegment", err)
	}
	for _, content := range []string{"hello", strings.Repeat("x", 2*layout.PageSize)} {
		os.WriteFile(other, []byte(content), 0o600)
		if _, err := Open(ctx, File(other), layout.KindSPSC, nil); !errors.Is(err, layout.ErrNotSegment) {
			t.Fatalf("foreign file of %d bytes: %v, want ErrNotSegment", len(content), err)
		}
	}
	// Nothing without the magic is a segment, however it starts: shmq
	// never creates a file at a name before writing the magic.
	for _, content := range [][]byte{nil, make([]byte, 2*layout.PageSize)} {
		os.WriteFile(other, content, 0o600)
		start := time.Now()
		if _, err := Open(ctx, File(other), layout.KindSPSC, nil); !errors.Is(err, layout.ErrNotSegment) || time.Since(start) > time.Second {
			t.Fatalf("%d zero bytes: %v after %v, want ErrNotSegment at once", len(content), err, time.Since(start))
		}
	}
	if _, err := Open(ctx, File(dir), layout.KindSPSC, nil); !errors.Is(err, layout.ErrNotSegment) {
		t.Fatalf("directory: %v, want ErrNotSegment", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, File(fifo), layout.KindSPSC, nil); !errors.Is(err, layout.ErrNotSegment) {
		t.Fatalf("fifo: %v, want ErrNotSegment", err)
	}
	if s, err := Open(ctx, File(target), 0, nil); err != nil {
		t.Fatalf("open of any kind: %v", err)
	} else {
		s.Close()
	}
	if _, err := Open(ctx, File(target), layout.KindMPMC, nil); !errors.Is(err, layout.ErrKind) {
		t.Fatalf("wrong kind: %v, want ErrKind", err)
	}
}

func TestOpenCorruptHeader(t *testing.T) {
	loc := File(filepath.Join(t.TempDir(), "q"))
	s := create(t, loc)
	b := s.Bytes()
	b[layout.OffTabData]++ // misaligned data region
	if _, err := Open(context.Background(), loc, layout.KindSPSC, nil); !errors.Is(err, layout.ErrCorrupt) {
		t.Fatalf("corrupt offset table: %v, want ErrCorrupt", err)
	}
	b[layout.OffTabData]--
	b[layout.OffVersion] = 9
	if _, err := Open(context.Background(), loc, layout.KindSPSC, nil); !errors.Is(err, layout.ErrVersion) {
		t.Fatalf("future version: %v, want ErrVersion", err)
	}
}

func TestOpenWaitsForReadyAndTimesOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// A creator at work (of a descriptor shared before Create returned):
	// sized, magic written, unpublished, init lock held.
	if err := ofd.TryLock(int(f.Fd()), layout.InitLockByte); err != nil {
		t.Fatal(err)
	}
	f.Truncate(3 * layout.PageSize)
	var magic [8]byte
	binary.LittleEndian.PutUint64(magic[:], layout.Magic)
	f.WriteAt(magic[:], layout.OffMagic)
	start := time.Now()
	_, err = Open(context.Background(), File(path), layout.KindSPSC, &Options{ReadyTimeout: 100 * time.Millisecond})
	if !errors.Is(err, layout.ErrNotReady) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want ErrNotReady and DeadlineExceeded", err)
	}
	if d := time.Since(start); d < 90*time.Millisecond || d > 2*time.Second {
		t.Fatalf("waited %v for a 100ms timeout", d)
	}
	// The creator dies: its lock goes, the segment is abandoned.
	f.Close()
	if _, err := Open(context.Background(), File(path), layout.KindSPSC, nil); !errors.Is(err, ErrAbandoned) {
		t.Fatalf("after creator death: %v, want ErrAbandoned", err)
	}
}

func TestOtherOwnerRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file to another uid")
	}
	loc := File(filepath.Join(t.TempDir(), "q"))
	create(t, loc)
	if err := os.Chown(loc.name, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), loc, layout.KindSPSC, nil); !errors.Is(err, ErrPermission) {
		t.Fatalf("foreign owner: %v, want ErrPermission", err)
	}
	s, err := Open(context.Background(), loc, layout.KindSPSC, &Options{AllowOtherOwner: true})
	if err != nil {
		t.Fatalf("with AllowOtherOwner: %v", err)
	}
	s.Close()
}

func TestNoSpace(t *testing.T) {
	h, err := layout.PlanSPSC(layout.MaxSPSCCapacity, 0) // 1 TiB
	if err != nil {
		t.Fatal(err)
	}
	loc := tempShm(t)
	if _, err := Create(loc, h, nil, nil); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("1 TiB segment: %v, want ErrNoSpace", err)
	}
	if _, err := os.Stat(filepath.Join(shmDir, loc.name)); !os.IsNotExist(err) {
		t.Fatalf("failed create left %s behind: %v", loc, err)
	}
}

func TestAtomicBounds(t *testing.T) {
	s := create(t, tempShm(t))
	n := uint64(len(s.Bytes()))
	for _, off := range []uint64{n, n - 4, 3, ^uint64(0) - 3} {
		if _, err := s.Uint64(off); !errors.Is(err, layout.ErrCorrupt) {
			t.Errorf("Uint64(%d): %v", off, err)
		}
	}
	if _, err := s.Uint32(n - 4); err != nil {
		t.Errorf("last word: %v", err)
	}
	if _, err := s.Uint32(2); !errors.Is(err, layout.ErrCorrupt) {
		t.Errorf("misaligned Uint32: %v", err)
	}
}

func TestRegistryLiveness(t *testing.T) {
	loc := tempShm(t)
	s := create(t, loc)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SHMQ_RING_HELPER="+loc.name)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 9)
	if _, err := out.Read(line); err != nil || string(line) != "attached\n" {
		cmd.Process.Kill()
		t.Fatalf("helper said %q, %v", line, err)
	}
	info, err := s.Entry(0)
	if err != nil || !info.Alive || info.PID != uint32(cmd.Process.Pid) || info.State != layout.EntryAttached {
		t.Fatalf("entry while helper lives: %+v, %v", info, err)
	}
	if _, err := s.Attach(0, layout.RoleProducer); !errors.Is(err, ErrRoleTaken) ||
		!strings.Contains(err.Error(), strconv.Itoa(cmd.Process.Pid)) {
		t.Fatalf("attach over live helper: %v", err)
	}
	if reaped, err := s.ReapDead(); err != nil || len(reaped) != 0 {
		t.Fatalf("ReapDead with a live holder: %+v, %v", reaped, err)
	}
	cmd.Process.Signal(unix.SIGKILL)
	cmd.Wait()
	info, _ = s.Entry(0)
	if !info.Dead() {
		t.Fatalf("entry after SIGKILL: %+v, want dead", info)
	}
	reaped, err := s.ReapDead()
	if err != nil || len(reaped) != 1 || reaped[0].Index != 0 || reaped[0].PID != uint32(cmd.Process.Pid) {
		t.Fatalf("ReapDead: %+v, %v; want entry 0 of pid %d", reaped, err, cmd.Process.Pid)
	}
	if info, _ := s.Entry(0); info.Dead() || info.State != layout.EntryFree {
		t.Fatalf("entry after reaping: %+v", info)
	}
	if again, err := s.ReapDead(); err != nil || len(again) != 0 {
		t.Fatalf("second ReapDead: %+v, %v", again, err)
	}
	e, err := s.Attach(0, layout.RoleProducer)
	if err != nil {
		t.Fatalf("taking over a dead holder's entry: %v", err)
	}
	if info, _ := s.Entry(0); !info.Alive || info.Gen != 2 {
		t.Fatalf("after takeover: %+v", info)
	}
	if err := e.Detach(); err != nil {
		t.Fatal(err)
	}
	if info, _ := s.Entry(0); info.Alive || info.State != layout.EntryDetached || info.Dead() {
		t.Fatalf("after detach: %+v", info)
	}
	if e, err := s.AttachAny(0, layout.RoleConsumer); err != nil || e.Index() != 0 {
		t.Fatalf("AttachAny: %v", err)
	}
	if e, err := s.AttachAny(0, layout.RoleConsumer); err != nil || e.Index() != 1 {
		t.Fatalf("AttachAny second: %v", err)
	}
	if _, err := s.AttachAny(0, layout.RoleConsumer); !errors.Is(err, ErrRegistryFull) {
		t.Fatalf("AttachAny on a full registry: %v", err)
	}
	s.Close()
	if _, err := s.Attach(0, layout.RoleProducer); !errors.Is(err, ErrClosed) {
		t.Fatalf("attach after close: %v", err)
	}
}

// TestCreateModeBits: only permission bits are accepted.
func TestCreateModeBits(t *testing.T) {
	for _, m := range []os.FileMode{os.ModeSetuid | 0o600, os.ModeSetgid | 0o660, os.ModeSticky | 0o600, os.ModeDir | 0o700} {
		if _, err := Create(tempShm(t), plan(t), &Options{Mode: m}, nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("mode %v: %v, want ErrInvalid", m, err)
		}
	}
}

// TestCreateInvisibleUntilReady: no opener can find a segment at its name
// before its creator published it, so nothing half-made is ever there.
func TestCreateInvisibleUntilReady(t *testing.T) {
	for _, loc := range []Location{tempShm(t), File(filepath.Join(t.TempDir(), "q"))} {
		p, _ := loc.path()
		s, err := Create(loc, plan(t), nil, func(*Segment) error {
			if _, err := os.Lstat(p); !os.IsNotExist(err) {
				t.Errorf("%v: visible during init: %v", loc, err)
			}
			if _, err := Open(context.Background(), loc, 0, nil); !errors.Is(err, ErrNotFound) {
				t.Errorf("%v: open during init: %v, want ErrNotFound", loc, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		entries, _ := os.ReadDir(filepath.Dir(p))
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".shmq-") {
				t.Errorf("temporary file %s left in %s", e.Name(), filepath.Dir(p))
			}
		}
	}
	// A failed init leaves nothing behind.
	loc := tempShm(t)
	if _, err := Create(loc, plan(t), nil, func(*Segment) error { return errors.New("no") }); err == nil {
		t.Fatal("init error ignored")
	}
	if _, err := Open(context.Background(), loc, 0, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after failed init: %v, want ErrNotFound", err)
	}
}

// TestLivenessNotInheritedThroughFile: a process that attached and handed
// the segment's descriptor to a child that outlives it is seen dead once it
// dies. The descriptor a caller can hand on never holds a lock.
func TestLivenessNotInheritedThroughFile(t *testing.T) {
	s := create(t, Memfd("inherit"))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SHMQ_RING_HELPER=fd:3", "SHMQ_RING_HELPER_CHILD=1")
	cmd.ExtraFiles = []*os.File{s.File()}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 18)
	if _, err := io.ReadFull(out, line); err != nil || !strings.HasPrefix(string(line), "attached ") {
		cmd.Process.Kill()
		t.Fatalf("helper said %q, %v", line, err)
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(string(line[9:]))); err == nil {
		t.Cleanup(func() { unix.Kill(pid, unix.SIGKILL) })
	}
	if info, err := s.Entry(0); err != nil || !info.Alive {
		t.Fatalf("entry while the helper lives: %+v, %v", info, err)
	}
	cmd.Process.Signal(unix.SIGKILL)
	cmd.Wait()
	if info, err := s.Entry(0); err != nil || !info.Dead() {
		t.Fatalf("entry after the helper died, its child alive with the descriptor: %+v, %v; want dead", info, err)
	}
	if _, err := s.Attach(0, layout.RoleProducer); err != nil {
		t.Fatalf("taking over the dead helper's entry: %v", err)
	}
}

// TestAttachResetsCounters: a reused entry starts its counters at zero.
func TestAttachResetsCounters(t *testing.T) {
	s := create(t, tempShm(t))
	e, err := s.Attach(0, layout.RoleProducer)
	if err != nil {
		t.Fatal(err)
	}
	e.Messages.Store(1024)
	e.Bytes.Store(4096)
	e.Detach()
	e, err = s.Attach(0, layout.RoleProducer)
	if err != nil {
		t.Fatal(err)
	}
	if m, b := e.Messages.Load(), e.Bytes.Load(); m != 0 || b != 0 {
		t.Fatalf("counters of a reused entry: messages %d bytes %d, want 0", m, b)
	}
}
