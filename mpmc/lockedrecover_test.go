//go:build unix

package mpmc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func init() {
	helpers["lk-recoverer"] = lkRecoverer
}

// TestLockedRecovererKilled: a process that recovers the units a dead
// process recorded, and is itself killed after it took them over and
// before it released them, loses nothing: the units stay recorded (in its
// own entry) for the next recoverer. The dead process took 3 free units
// with a TrySendBatch and died waiting for the producers' mutex; the
// recoverer is killed either in its attach, which reuses the dead entry
// ("own"), or between the bounded parks of a Send, on another entry
// ("other"). Afterwards, while a held mutex keeps any reconcile from
// repairing the counts, a fresh producer fills the queue's whole capacity.
func TestLockedRecovererKilled(t *testing.T) {
	for _, tc := range []struct{ name, point string }{
		{"own", "locked-recover-own"},
		{"other", "locked-recover"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const slots = 4
			q := newTestQueue(t, Config{Slots: slots, SlotSize: 64, Locked: true})
			l := q.lk
			holder := mustProducer(t, q) // entry 0
			if err := q.lock(context.Background(), l.pmu, holder.Index()); err != nil {
				t.Fatal(err)
			}
			var rec *klProc
			var procs []*klProc
			t.Cleanup(func() {
				for _, p := range procs {
					p.kill()
				}
			})
			start := func(role string, stdin bool, env ...string) *klProc {
				p, err := startKL(q, role, stdin, env...)
				if err != nil {
					t.Fatal(err)
				}
				procs = append(procs, p)
				if _, err := p.ready(killLoopOpTimeout); err != nil {
					t.Fatal(err)
				}
				return p
			}
			if tc.name == "other" {
				rec = start("lk-recoverer", true, "MPMC_POINT="+tc.point) // entry 1
			}
			// Dead senders: one took 3 free units, one took the last.
			var dead []*klProc
			for i, batch := range []int{3, 1} {
				dead = append(dead, start("lk-lockwait", false, "MPMC_MUTEX=p", fmt.Sprint("MPMC_BATCH=", batch)))
				waitFor(t, "the sender waits for the mutex", func() bool { return l.sets[2].Count() == i+1 })
			}
			if v := l.free.Value(); v != 0 {
				t.Fatalf("free %d after the senders took their units", v)
			}
			for _, p := range dead {
				p.kill()
			}
			if tc.name == "own" {
				rec = start("lk-recoverer", false, "MPMC_POINT="+tc.point) // reuses entry 1
			} else {
				// Send finds no free unit and parks, bounded, while the
				// mutex is held; between parks it recovers.
				fmt.Fprintln(rec.stdin, "send")
				deadline := time.Now().Add(killLoopOpTimeout)
				for !strings.Contains(strings.Join(rec.snapshot(), "\n"), "recovering") {
					if time.Now().After(deadline) || rec.exited() {
						t.Fatalf("the recoverer did not reach %s: %q", tc.point, rec.snapshot())
					}
					time.Sleep(time.Millisecond)
				}
			}
			if !strings.Contains(strings.Join(rec.snapshot(), "\n"), "recovering") {
				t.Fatalf("the recoverer said %q", rec.snapshot())
			}
			rec.kill()
			// Hold the consumers' mutex, so that no reconcile can repair the
			// counts from the cursors (as on a busy queue): the recorded
			// units alone must make up the capacity.
			if err := q.lock(context.Background(), l.cmu, holder.Index()); err != nil {
				t.Fatal(err)
			}
			l.pmu.Unlock()
			p := mustProducer(t, q) // recovers what is recorded
			for i := 0; i < slots; i++ {
				if err := p.TrySend([]byte(fmt.Sprint("fill", i))); err != nil {
					t.Fatalf("TrySend %d of %d: %v; %s", i, slots, err, lkDump(q))
				}
			}
			l.cmu.Unlock()
			holder.Close()
			c := mustConsumer(t, q)
			buf := make([]byte, 64)
			for i := 0; i < slots; i++ {
				if n, err := c.TryRecv(buf); err != nil || string(buf[:n]) != fmt.Sprint("fill", i) {
					t.Fatalf("TryRecv %d: %q, %v", i, buf[:n], err)
				}
			}
			checkLockedConsistent(t, q, p, c)
		})
	}
}

// snapshot returns the lines the helper printed so far.
func (p *klProc) snapshot() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.all...)
}

// lkRecoverer stops at test hook MPMC_POINT, prints "ready recovering"
// there and waits to be killed. It attaches a producer (where the "own"
// point is reached), prints "ready attached", and on a line from stdin
// calls Send (where the other point is reached, between parks).
func lkRecoverer() error {
	point := os.Getenv("MPMC_POINT")
	testHook = func(at string, _ uint64) {
		if at == point {
			fmt.Println("ready recovering")
			time.Sleep(time.Minute)
			os.Exit(3)
		}
	}
	q, err := openInherited()
	if err != nil {
		return err
	}
	p, err := q.Producer()
	if err != nil {
		return err
	}
	fmt.Println("ready attached")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), killLoopOpTimeout)
	defer cancel()
	err = p.Send(ctx, []byte("x"))
	return errors.Join(errors.New("Send returned without reaching "+point), err)
}

// TestLockedAttachReconciles: a recovery releases a dead process's units to
// both semaphores, since it cannot tell which side they are owed to, and
// reconciles the counts with the cursors only if no unit is in flight.
// When it cannot (here the consumers' mutex is held), one side is left
// with units not owed (a filled unit with the ring empty): harmless, as
// takers drop them, but wrong in `inspect`. Any later attach at a quiescent
// point, with nothing left to recover, makes the counts exact.
func TestLockedAttachReconciles(t *testing.T) {
	const slots = 4
	q := newTestQueue(t, Config{Slots: slots, SlotSize: 64, Locked: true})
	l := q.lk
	holder := mustProducer(t, q)
	if err := q.lock(context.Background(), l.pmu, holder.Index()); err != nil {
		t.Fatal(err)
	}
	cmd := helper(t, q, "lk-lockwait", "MPMC_MUTEX=p")
	startAndWaitReady(t, cmd)
	waitFor(t, "the sender waits for the mutex", func() bool { return l.sets[2].Count() == 1 })
	cmd.Process.Kill()
	cmd.Wait()
	if err := q.lock(context.Background(), l.cmu, holder.Index()); err != nil {
		t.Fatal(err)
	}
	l.pmu.Unlock()
	p := mustProducer(t, q) // recovers the unit, cannot reconcile
	if free, filled := l.free.Value(), l.filled.Value(); free != slots || filled != 1 {
		t.Fatalf("after the recovery: free %d, filled %d; want %d and 1 (one side not owed)", free, filled, slots)
	}
	l.cmu.Unlock()
	p.Close()
	holder.Close()
	p = mustProducer(t, q)
	if free, filled := l.free.Value(), l.filled.Value(); free != slots || filled != 0 {
		t.Fatalf("after a quiescent attach: free %d, filled %d; want %d and 0", free, filled, slots)
	}
	checkLockedConsistent(t, q, p, mustConsumer(t, q))
}
