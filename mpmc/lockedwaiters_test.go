//go:build unix

package mpmc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/shmq/shmq/notify"
	"github.com/shmq/shmq/ring"
)

func init() {
	helpers["lk-lockwait"] = lkLockWait
}

// TestLockedKilledWaiters (issue 16 item 3): waiters SIGKILLed while
// registered in each of locked mode's waiter sets (parked on the free or
// the filled semaphore, waiting for the producers' or the consumers'
// mutex) leave registrations behind, which would make every later release
// and unlock a wake system call. The survivors' operations sweep them out:
// afterwards the set is empty, a stream of TrySend/TryRecv makes no wake
// system call at all (counted by the handle's own backend), and once
// everyone detached no set has a member, as `shmq-demo inspect` would show
// ("0 waiting"). An attach, before anyone operates, clears them as well.
func TestLockedKilledWaiters(t *testing.T) {
	for _, tc := range []struct {
		name, role string
		set        int // index in q.lk.sets
		env        []string
		attach     bool // check that a fresh attach clears them, instead of the sweeps
	}{
		{"free", "send-park", 0, nil, false},
		{"filled", "recv-park", 1, nil, false},
		{"mutexP", "lk-lockwait", 2, []string{"MPMC_MUTEX=p"}, false},
		{"mutexC", "lk-lockwait", 3, []string{"MPMC_MUTEX=c"}, false},
		{"attach", "recv-park", 1, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 3
			q := newTestQueue(t, Config{Slots: 8, SlotSize: 64, Locked: true})
			// The survivors attach first, so that the dead waiters' entries
			// are not reused (an attach clears its own entry's bits): only
			// sweeps can clear them.
			be := notify.Default()
			qb, err := Open(context.Background(), ring.FD(q.Segment().Fd()), &Options{Wait: Wait{Backend: be}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { qb.Close() })
			p, c := mustProducer(t, qb), mustConsumer(t, qb)
			holder := mustProducer(t, q)
			l := q.lk
			switch tc.name {
			case "mutexP":
				if err := q.lock(context.Background(), l.pmu, holder.Index()); err != nil {
					t.Fatal(err)
				}
			case "mutexC":
				for i := 0; i < n; i++ {
					if err := holder.TrySend([]byte("m")); err != nil {
						t.Fatal(err)
					}
				}
				if err := q.lock(context.Background(), l.cmu, holder.Index()); err != nil {
					t.Fatal(err)
				}
			}
			var cmds []*exec.Cmd
			for range n {
				cmd := helper(t, q, tc.role, tc.env...)
				startAndWaitReady(t, cmd)
				cmds = append(cmds, cmd)
			}
			set := l.sets[tc.set]
			// A parked helper leaves the set for a moment when its bounded
			// park ends: freeze them all while every one is registered,
			// then kill them.
			waitFor(t, "the helpers registered", func() bool {
				for _, cmd := range cmds {
					cmd.Process.Signal(syscall.SIGSTOP)
				}
				if set.Count() == n {
					return true
				}
				for _, cmd := range cmds {
					cmd.Process.Signal(syscall.SIGCONT)
				}
				return false
			})
			for _, cmd := range cmds {
				cmd.Process.Kill()
				cmd.Wait()
			}
			switch tc.name {
			case "mutexP":
				l.pmu.Unlock()
			case "mutexC":
				l.cmu.Unlock()
			}
			if set.Count() != n {
				t.Fatalf("%d registrations left by %d killed waiters: nothing to test", set.Count(), n)
			}
			if tc.attach {
				// An attach, before anyone operates, clears them too.
				mustProducer(t, reopen(t, q))
				if set.Any() {
					t.Fatalf("after an attach: %d left registered", set.Count())
				}
				return
			}
			wakes := func() uint64 {
				return be.Stats().WakeSyscalls + qb.lk.free.WakeErrors.Load() + qb.lk.filled.WakeErrors.Load() +
					qb.lk.pmu.WakeErrors.Load() + qb.lk.cmu.WakeErrors.Load()
			}
			buf := make([]byte, 64)
			stream := func(k int) {
				for i := 0; i < k; i++ {
					if _, err := c.TryRecv(buf); err != nil && err != ErrEmpty {
						t.Fatal(err)
					}
					if err := p.TrySend([]byte("x")); err != nil && err != ErrFull {
						t.Fatal(err)
					}
				}
			}
			stream(1)
			first := wakes()
			for k, s := range qb.lk.sets {
				if s.Any() {
					t.Fatalf("after one operation: %d left registered in set %s", s.Count(), lkSetNames[k])
				}
			}
			stream(2000)
			if w := wakes() - first; w != 0 || first > 4 {
				t.Fatalf("wake system calls: %d in the first operation, %d in the 2000 after the sweep", first, w)
			}
			p.Close()
			c.Close()
			holder.Close()
			for k, s := range l.sets {
				if s.Any() {
					t.Fatalf("nobody attached: %d registered in set %s", s.Count(), lkSetNames[k])
				}
			}
			// What the dead waiters recorded is recovered by the next
			// attach, and the queue has its capacity.
			p, c = mustProducer(t, q), mustConsumer(t, q)
			for q.enq.Load() != q.deq.Load() {
				if _, err := c.TryRecv(buf); err != nil {
					t.Fatalf("drain: %v; %s", err, lkDump(q))
				}
			}
			checkLockedConsistent(t, q, p, c)
			t.Logf("%d killed waiters of set %s: %d wake system calls in the first operation (which swept them), 0 in 2000 after",
				n, tc.name, first)
		})
	}
}

// TestLockedTryOnlyRecovers: processes killed while they wait for a mutex,
// holding semaphore units they took, leave those units recorded. Callers
// that never block (TrySend, TryRecv, TryRecvBatch) and that attached
// before the deaths must still get them back: a try that finds no unit
// while the cursors say there is room (or a message) recovers the units of
// dead processes, so the queue keeps its capacity and no message is
// stranded.
func TestLockedTryOnlyRecovers(t *testing.T) {
	for _, side := range []string{"p", "c"} {
		t.Run("mutex"+side, func(t *testing.T) {
			const slots, n = 4, 3
			q := newTestQueue(t, Config{Slots: slots, SlotSize: 64, Locked: true})
			q2 := reopen(t, q)
			p, c := mustProducer(t, q2), mustConsumer(t, q2)
			holder := mustProducer(t, q)
			l := q.lk
			m := l.pmu
			if side == "c" {
				m = l.cmu
				for i := 0; i < n; i++ {
					if err := p.TrySend([]byte(fmt.Sprint("m", i))); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := q.lock(context.Background(), m, holder.Index()); err != nil {
				t.Fatal(err)
			}
			var cmds []*exec.Cmd
			for range n {
				cmd := helper(t, q, "lk-lockwait", "MPMC_MUTEX="+side)
				startAndWaitReady(t, cmd)
				cmds = append(cmds, cmd)
			}
			set := l.sets[2]
			if side == "c" {
				set = l.sets[3]
			}
			waitFor(t, "the helpers wait for the mutex", func() bool { return set.Count() == n })
			for _, cmd := range cmds {
				cmd.Process.Kill()
				cmd.Wait()
			}
			m.Unlock()
			holder.Close()
			buf := make([]byte, 64)
			if side == "c" {
				// The dead consumers took the filled units of all three
				// messages: TryRecv must still get them.
				for i := 0; i < n; i++ {
					k, err := c.TryRecv(buf)
					if err != nil || string(buf[:k]) != fmt.Sprint("m", i) {
						t.Fatalf("TryRecv %d: %q, %v; %s", i, buf[:k], err, lkDump(q))
					}
				}
			}
			// The dead producers took three of the four free units.
			for i := 0; i < slots; i++ {
				if err := p.TrySend([]byte(fmt.Sprint("fill", i))); err != nil {
					t.Fatalf("TrySend %d of %d: %v; %s", i, slots, err, lkDump(q))
				}
			}
			for i := 0; i < slots; i++ {
				k, err := c.TryRecv(buf)
				if err != nil || string(buf[:k]) != fmt.Sprint("fill", i) {
					t.Fatalf("TryRecv %d: %q, %v", i, buf[:k], err)
				}
			}
			checkLockedConsistent(t, q2, p, c)
		})
	}
}

// lkLockWait attaches a producer (MPMC_MUTEX=p) or a consumer (c), says
// so, and calls TrySendBatch (of MPMC_BATCH messages, default 1) or
// TryRecv, which takes semaphore units and then waits for the mutex (held
// by the parent) until it is killed.
func lkLockWait() error {
	q, err := openInherited()
	if err != nil {
		return err
	}
	switch os.Getenv("MPMC_MUTEX") {
	case "p":
		p, err := q.Producer()
		if err != nil {
			return err
		}
		fmt.Println("ready")
		msgs := [][]byte{[]byte("never")}
		if os.Getenv("MPMC_BATCH") != "" {
			msgs = make([][]byte, envInt("MPMC_BATCH"))
			for i := range msgs {
				msgs[i] = []byte("never")
			}
		}
		// A try waits at most tryLockWait for a held mutex and reports
		// ErrFull; trying again at once keeps this process waiting for the
		// mutex, holding the units it took, nearly all the time.
		for {
			if _, err = p.TrySendBatch(msgs); err != ErrFull {
				return fmt.Errorf("TrySendBatch returned: %v", err)
			}
		}
	case "c":
		c, err := q.Consumer()
		if err != nil {
			return err
		}
		fmt.Println("ready")
		for {
			if _, err = c.TryRecv(make([]byte, 64)); err != ErrEmpty {
				return fmt.Errorf("TryRecv returned: %v", err)
			}
		}
	}
	return errors.New("MPMC_MUTEX must be p or c")
}
