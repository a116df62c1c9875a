package notify

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmq/shmq/internal/shmtest"
)

func init() {
	helpers["socket-emfile"] = helperSocketEMFILE
	helpers["socket-flood"] = helperSocketFlood
	helpers["socket-stranger-listen"] = helperSocketStrangerListen
}

// Shared words of the socket helpers.
const (
	wSockCPU   = 0 // socket-emfile: listener CPU in µs over emfilePeriod
	wSockStep  = 1 // socket-emfile: last step reached, for the failure message
	wSockReady = 2 // the helper is listening or flooding
	wSockStop  = 3 // set by the parent: the helper should finish
	wSockConns = 4 // socket-flood: connections the stranger made
	wSockWoken = 5 // socket-stranger-listen: a byte reached the stranger
)

// emfilePeriod is how long the EMFILE helper measures the listener's CPU
// time while a connection waits in the backlog that it cannot accept.
const emfilePeriod = 500 * time.Millisecond

// socketNames is the path of the socket the helpers use, next to the shared
// file.
func socketName(shm, name string) string { return filepath.Join(filepath.Dir(shm), name) }

// wakeThrough wakes l through waker, with the word unchanged so that only
// the byte can end the Wait, and reports whether l's Wait returned within d.
func wakeThrough(l, waker *Socket, d time.Duration) error {
	var w atomic.Uint32
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	parked := l.Stats().Waits
	done := make(chan error, 1)
	go func() { done <- l.Wait(ctx, &w, 0) }()
	// Waits counts a parked Wait after it has taken its wake channel, so a
	// byte sent from now on ends it.
	for l.Stats().Waits == parked {
		select {
		case err := <-done:
			return err
		default:
			time.Sleep(100 * time.Microsecond)
		}
	}
	if err := waker.Wake(&w, 1); err != nil {
		cancel()
		<-done
		return err
	}
	return <-done
}

// helperSocketEMFILE listens, connects a waker, then exhausts its file
// descriptors with one more connection waiting in the backlog, so that every
// accept fails with EMFILE. It records the CPU time the process uses over
// emfilePeriod, checks that the established connection still delivers wakes,
// and that the listener accepts again once descriptors are free.
func helperSocketEMFILE(shm string, mem []byte) int {
	step := shmtest.Word(mem, wSockStep)
	sock := socketName(shm, "emfile.sock")
	l, err := NewSocket(SocketConfig{Listen: sock})
	if err != nil {
		return 10
	}
	waker, err := NewSocket(SocketConfig{Peer: sock})
	if err != nil {
		return 11
	}
	if err := wakeThrough(l, waker, 2*time.Second); err != nil {
		return 12
	}
	step.Store(1)

	lim := unix.Rlimit{Cur: 64, Max: 64}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 13
	}
	var fill []int
	for {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		fill = append(fill, fd)
	}
	if len(fill) == 0 {
		return 14
	}
	unix.Close(fill[len(fill)-1])
	fill = fill[:len(fill)-1]
	pending, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 15
	}
	if err := unix.Connect(pending, &unix.SockaddrUnix{Name: sock}); err != nil {
		return 16
	}
	step.Store(2)

	time.Sleep(50 * time.Millisecond) // let the accept loop meet EMFILE
	before := processCPU()
	time.Sleep(emfilePeriod)
	shmtest.Word(mem, wSockCPU).Store(uint32((processCPU() - before) / time.Microsecond))
	step.Store(3)

	if err := wakeThrough(l, waker, 2*time.Second); err != nil {
		return 17
	}
	step.Store(4)

	for _, fd := range fill {
		unix.Close(fd)
	}
	waker2, err := NewSocket(SocketConfig{Peer: sock})
	if err != nil {
		return 18
	}
	if err := wakeThrough(l, waker2, 5*time.Second); err != nil {
		return 19
	}
	step.Store(5)
	return 0
}

func processCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestSocketAcceptEMFILE: with the descriptor limit reached the accept loop
// must back off rather than spin, keep serving the established connection,
// and accept again once descriptors are free.
func TestSocketAcceptEMFILE(t *testing.T) {
	path, mem := shmtest.MapNew(t)
	cmd := helperEnv.Start(t, "socket-emfile", path)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("helper did not exit (step %d)", shmtest.Word(mem, wSockStep).Load())
	}
	cpu := time.Duration(shmtest.Word(mem, wSockCPU).Load()) * time.Microsecond
	t.Logf("CPU over %v with accept failing with EMFILE: %v", emfilePeriod, cpu)
	if err != nil {
		t.Fatalf("helper: %v (step %d)", err, shmtest.Word(mem, wSockStep).Load())
	}
	if cpu > emfilePeriod/20 {
		t.Fatalf("listener used %v of CPU in %v while accept failed with EMFILE", cpu, emfilePeriod)
	}
}

// Strangers: another uid, simulated by a helper process started with
// setuid credentials, which needs root.

const strangerUID = 65534 // nobody

// strangerDir returns a directory every user may enter and write (the
// stranger creates or connects to sockets there) holding a shared file the
// stranger can map.
func strangerDir(t *testing.T) (dir, shm string, mem []byte) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("simulating another uid needs root (setuid helper process)")
	}
	dir = t.TempDir()
	// t.TempDir's parent is private to this user; open both.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	shm = filepath.Join(dir, "shm")
	if err := os.WriteFile(shm, make([]byte, shmtest.Size), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shm, 0o666); err != nil {
		t.Fatal(err)
	}
	mem, err := shmtest.Map(shm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	return dir, shm, mem
}

// startStranger runs helper mode as uid strangerUID from a copy of the test
// binary the stranger can execute.
func startStranger(t *testing.T, dir, shm, mode string) *exec.Cmd {
	t.Helper()
	bin := filepath.Join(dir, "notify.test")
	if err := copyFile(bin, os.Args[0]); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv.Mode+"="+mode, helperEnv.Path+"="+shm)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: strangerUID, Gid: strangerUID}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func waitWord(t *testing.T, w *atomic.Uint32, d time.Duration, what string) {
	t.Helper()
	for deadline := time.Now().Add(d); w.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("helper never %s", what)
		}
	}
}

// helperSocketFlood, run as a stranger, connects to flood.sock as fast as
// it can from several goroutines, closing each connection at once, until the
// parent says stop (or 10 s pass).
func helperSocketFlood(shm string, mem []byte) int {
	sock := socketName(shm, "flood.sock")
	stop, conns := shmtest.Word(mem, wSockStop), shmtest.Word(mem, wSockConns)
	deadline := time.Now().Add(10 * time.Second)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for stop.Load() == 0 && time.Now().Before(deadline) {
				fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
				if err != nil {
					continue
				}
				if unix.Connect(fd, &unix.SockaddrUnix{Name: sock}) == nil {
					conns.Add(1)
				}
				unix.Close(fd)
			}
		})
	}
	shmtest.Word(mem, wSockReady).Store(1)
	wg.Wait()
	return 0
}

// TestSocketStrangerFlood: while a stranger who can reach the socket floods
// it with connections (all rejected), every legitimate waker still connects
// and its wake arrives.
func TestSocketStrangerFlood(t *testing.T) {
	dir, shm, mem := strangerDir(t)
	sock := socketName(shm, "flood.sock")
	l, err := NewSocket(SocketConfig{Listen: sock})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// A permissive socket: the credential check is all that stands between
	// the stranger and the listener.
	if err := os.Chmod(sock, 0o777); err != nil {
		t.Fatal(err)
	}
	cmd := startStranger(t, dir, shm, "socket-flood")
	conns := shmtest.Word(mem, wSockConns)
	waitWord(t, conns, 5*time.Second, "connected")

	var tries, failures int
	var first error
	var slowest time.Duration
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); tries++ {
		waker, err := NewSocket(SocketConfig{Peer: sock})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err = wakeThrough(l, waker, 2*time.Second)
		slowest = max(slowest, time.Since(start))
		if err != nil {
			failures++
			if first == nil {
				first = err
			}
		}
		waker.Close()
	}
	// Close ends the accept loop even while the flood goes on.
	if err := within(t, 2*time.Second, l.Close); err != nil {
		t.Errorf("Close: %v", err)
	}
	shmtest.Word(mem, wSockStop).Store(1)
	shmtest.WaitExit(t, cmd, 5*time.Second)
	t.Logf("%d legitimate connect+wake (slowest %v), %d failed; stranger made %d connections, %d rejected",
		tries, slowest.Round(time.Millisecond), failures, conns.Load(), l.Rejected())
	if l.Rejected() == 0 {
		t.Fatal("no stranger connection reached the listener: the flood tested nothing")
	}
	if failures > 0 {
		t.Fatalf("%d of %d legitimate wakes failed during the flood; first: %v", failures, tries, first)
	}
}

// helperSocketStrangerListen, run as a stranger, listens on peer.sock
// (accepting anyone) and records whether a byte ever reaches it.
func helperSocketStrangerListen(shm string, mem []byte) int {
	l, err := NewSocket(SocketConfig{Listen: socketName(shm, "peer.sock"), Authorize: func(uint32) bool { return true }})
	if err != nil {
		return 10
	}
	defer l.Close()
	stop := shmtest.Word(mem, wSockStop)
	shmtest.Word(mem, wSockReady).Store(1)
	var w atomic.Uint32
	for deadline := time.Now().Add(10 * time.Second); stop.Load() == 0 && time.Now().Before(deadline); {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		if l.Wait(ctx, &w, 0) == nil {
			shmtest.Word(mem, wSockWoken).Store(1)
		}
		cancel()
	}
	return 0
}

// TestSocketWakerRejectsStrangerListener: a waker checks who listens at the
// peer path and writes nothing to a listener of an unauthorized uid.
func TestSocketWakerRejectsStrangerListener(t *testing.T) {
	dir, shm, mem := strangerDir(t)
	cmd := startStranger(t, dir, shm, "socket-stranger-listen")
	waitWord(t, shmtest.Word(mem, wSockReady), 5*time.Second, "listened")

	waker, err := NewSocket(SocketConfig{Peer: socketName(shm, "peer.sock")})
	if err != nil {
		t.Fatal(err)
	}
	defer waker.Close()
	var w atomic.Uint32
	err = waker.Wake(&w, 1)
	if !errors.Is(err, ErrPeerRejected) {
		t.Errorf("Wake to a stranger's socket: %v, want ErrPeerRejected", err)
	}
	time.Sleep(100 * time.Millisecond)
	if shmtest.Word(mem, wSockWoken).Load() != 0 {
		t.Error("a wake byte reached the stranger's listener")
	}

	// A waker that authorizes the stranger's uid does reach it.
	trusting, err := NewSocket(SocketConfig{Peer: socketName(shm, "peer.sock"),
		Authorize: func(uid uint32) bool { return uid == strangerUID }})
	if err != nil {
		t.Fatal(err)
	}
	defer trusting.Close()
	if err := trusting.Wake(&w, 1); err != nil {
		t.Fatalf("Wake to an authorized listener: %v", err)
	}
	waitWord(t, shmtest.Word(mem, wSockWoken), 2*time.Second, "received the authorized wake")
	shmtest.Word(mem, wSockStop).Store(1)
	shmtest.WaitExit(t, cmd, 5*time.Second)
}
