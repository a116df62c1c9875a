//go:build unix

package ring

// Adversarial review of the core redesign (branch review).

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/shmq/shmq/layout"
)

// TestReviewReapWaiterSparesOtherHandle: a sweep through one Segment never
// clears the registration of an entry held through another Segment of the
// same process (their lock descriptions differ, so the OFD locks conflict),
// and the entry shows as alive through both. A check of soundness: it
// passes.
func TestReviewReapWaiterSparesOtherHandle(t *testing.T) {
	loc := tempShm(t)
	a := create(t, loc)
	b, err := Open(context.Background(), loc, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	e, err := a.Attach(1, layout.RoleConsumer)
	if err != nil {
		t.Fatal(err)
	}
	words, err := a.WaiterSet(layout.WaiterSetConsumers)
	if err != nil {
		t.Fatal(err)
	}
	words[0].Or(1 << 1) // entry 1 registers, as Line.Park does
	if ok, err := b.ReapWaiter(1); ok || err != nil {
		t.Fatalf("ReapWaiter through the other handle: %v, %v; want false", ok, err)
	}
	if words[0].Load()&(1<<1) == 0 {
		t.Fatal("the live entry's registration was cleared")
	}
	if info, err := b.Entry(1); err != nil || !info.Alive {
		t.Fatalf("Entry through the other handle: %+v, %v; want alive", info, err)
	}
	if _, err := b.Attach(1, layout.RoleConsumer); !errors.Is(err, ErrRoleTaken) {
		t.Fatalf("Attach through the other handle: %v, want ErrRoleTaken", err)
	}
	if err := e.Detach(); err != nil {
		t.Fatal(err)
	}
	if words[0].Load()&(1<<1) != 0 {
		t.Fatal("Detach left the registration")
	}
}

// TestReviewAttachBesideASweeper: a publisher's sweep (ReapWaiter) and
// locked mode's recovery (WithDeadEntry) hold a dead entry's lock while
// they repair it; Attach retries a lock found taken for about 600us only
// (lockEntry: sleeps of 100, 200 and 300us). A sweeper descheduled for
// longer while it holds the lock, as happens on a loaded machine, makes the
// attach of a new holder fail with ErrRoleTaken for an entry no live
// process holds: for SPSC, whose roles have fixed entries, a restarted
// consumer is refused. Here the sweeper is held up for 20ms.
func TestReviewAttachBesideASweeper(t *testing.T) {
	loc := tempShm(t)
	s := create(t, loc)
	// A process attaches entry 0 and is killed: the lock goes, the entry
	// stays Attached with the dead process's pid.
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
	if _, err := io.ReadFull(out, line); err != nil || string(line) != "attached\n" {
		cmd.Process.Kill()
		t.Fatalf("helper said %q, %v", line, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	sweeper, err := Open(context.Background(), loc, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sweeper.Close()
	inside := make(chan struct{})
	swept := make(chan error, 1)
	go func() {
		_, err := sweeper.WithDeadEntry(0, func() {
			close(inside)
			time.Sleep(20 * time.Millisecond) // preempted while holding the lock
		})
		swept <- err
	}()
	<-inside
	_, err = s.Attach(0, layout.RoleProducer)
	if err := <-swept; err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatalf("Attach of a dead holder's entry while a sweeper repairs it: %v", err)
	}
}

// BenchmarkReviewAttachAnyBehindHeldEntries: AttachAny tries each entry in
// order with Attach, which retries a taken lock for about 600us (sleeps)
// before it counts the holder as live. Every entry held by another
// description (another process, or another handle of this one) before the
// first free one so costs 600us: attaching the 65th producer of a queue
// whose first 64 entries are held by live processes takes about 40ms.
func BenchmarkReviewAttachAnyBehindHeldEntries(b *testing.B) {
	for _, held := range []int{0, 4, 16} {
		b.Run(itoa(held), func(b *testing.B) {
			h, err := layout.PlanMPMC(4, 64, 0, 64)
			if err != nil {
				b.Fatal(err)
			}
			s, err := Create(Memfd("review"), h, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			other, err := Open(context.Background(), FD(s.Fd()), 0, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer other.Close()
			for i := 0; i < held; i++ {
				if _, err := other.Attach(i, layout.RoleProducer); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for range b.N {
				e, err := s.AttachAny(0, layout.RoleProducer)
				if err != nil || e.Index() != held {
					b.Fatalf("AttachAny: %v", err)
				}
				e.Detach()
			}
		})
	}
}

func itoa(n int) string {
	if n == 0 {
		return "held=0"
	}
	s := ""
	for ; n > 0; n /= 10 {
		s = string(rune('0'+n%10)) + s
	}
	return "held=" + s
}
