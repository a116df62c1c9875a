package mpmc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/shmq/shmq/layout"
)

func init() {
	helpers["locked-hang"] = lockedHang
}

// TestLockedSendRecv: the calls of a queue in locked mode, through two
// handles: FIFO order, full and empty, batches, a short buffer and a
// refusing batch callback that leave the message at the head, and the
// calls locked mode does not support.
func TestLockedSendRecv(t *testing.T) {
	q := newTestQueue(t, Config{Slots: 4, SlotSize: 64, Locked: true})
	q2 := reopen(t, q)
	if !q.Locked() || !q2.Locked() {
		t.Fatal("not in locked mode")
	}
	p, c := mustProducer(t, q), mustConsumer(t, q2)
	if _, err := p.Reserve(8); !errors.Is(err, ErrLockedMode) {
		t.Fatalf("Reserve: %v", err)
	}
	if _, err := c.Peek(); !errors.Is(err, ErrLockedMode) {
		t.Fatalf("Peek: %v", err)
	}
	if err := p.TrySend(nil); !errors.Is(err, ErrMessageSize) {
		t.Fatalf("empty message: %v", err)
	}
	if err := p.TrySend(make([]byte, 49)); !errors.Is(err, ErrMessageSize) {
		t.Fatalf("large message: %v", err)
	}
	buf := make([]byte, 64)
	if _, err := c.TryRecv(buf); err != ErrEmpty {
		t.Fatalf("TryRecv on empty: %v", err)
	}
	for i := 0; i < 3; i++ {
		if err := p.TrySend([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := p.TrySendBatch([][]byte{{3}, {4}, {5}})
	if n != 1 || err != ErrFull {
		t.Fatalf("TrySendBatch into one free slot: %d, %v", n, err)
	}
	if err := p.TrySend([]byte{9}); err != ErrFull {
		t.Fatalf("TrySend on full: %v", err)
	}
	if _, err := c.TryRecv(buf[:0]); !errors.Is(err, ErrShortBuffer) {
		t.Fatalf("short buffer: %v", err)
	}
	refuse := errors.New("refused")
	got := []byte{}
	n, err = c.TryRecvBatch(10, func(m []byte) error {
		if m[0] == 2 {
			return refuse
		}
		got = append(got, m[0])
		return nil
	})
	if n != 2 || err != refuse || !bytes.Equal(got, []byte{0, 1}) {
		t.Fatalf("TryRecvBatch: %d, %v, %v", n, err, got)
	}
	n, err = p.TrySendBatch([][]byte{{4}, {5}, make([]byte, 100), {6}})
	if n != 2 || !errors.Is(err, ErrMessageSize) {
		t.Fatalf("TrySendBatch with a bad message: %d, %v", n, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for want := byte(2); want <= 5; want++ {
		n, err := c.Recv(ctx, buf)
		if err != nil || n != 1 || buf[0] != want {
			t.Fatalf("Recv: %d, %v, %d; want %d", n, err, buf[0], want)
		}
	}
	short, scancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer scancel()
	if _, err := c.Recv(short, buf); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Recv on empty: %v", err)
	}
	checkLockedConsistent(t, q, p, c)
	st, err := q.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Used != 0 || st.Tail-st.Head != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// checkLockedConsistent fills the queue to exactly its slot count and
// drains it again, checking order: the cursors and semaphores agree (units
// not owed, released by a recovery, are dropped along the way).
func checkLockedConsistent(t *testing.T, q *Queue, p *Producer, c *Consumer) {
	t.Helper()
	for i := uint64(0); i < q.Slots(); i++ {
		if err := p.TrySend([]byte(fmt.Sprint("fill", i))); err != nil {
			t.Fatalf("fill %d of %d: %v", i, q.Slots(), err)
		}
	}
	if err := p.TrySend([]byte("over")); err != ErrFull {
		t.Fatalf("send into a full queue: %v", err)
	}
	buf := make([]byte, q.MaxMessage())
	for i := uint64(0); i < q.Slots(); i++ {
		n, err := c.TryRecv(buf)
		if err != nil || string(buf[:n]) != fmt.Sprint("fill", i) {
			t.Fatalf("drain %d: %q, %v", i, buf[:n], err)
		}
	}
	if _, err := c.TryRecv(buf); err != ErrEmpty {
		t.Fatalf("recv from an empty queue: %v", err)
	}
}

// TestLockedModeFollowsFlag: the mode is the creator's choice, recorded in
// the header: every opener runs it, whatever its own Config says, and the
// locked mode leaves the slot sequence words alone.
func TestLockedModeFollowsFlag(t *testing.T) {
	for _, locked := range []bool{false, true} {
		q := newTestQueue(t, Config{Slots: 8, Locked: locked})
		if got := q.Segment().Header().Flags &^ layout.FlagSleeperBit; got != map[bool]uint32{false: 0, true: layout.FlagLocked}[locked] {
			t.Fatalf("locked=%v: flags %#x", locked, got)
		}
		q2 := reopen(t, q)
		if q2.Locked() != locked {
			t.Fatalf("created locked=%v, opened as locked=%v", locked, q2.Locked())
		}
		p, c := mustProducer(t, q2), mustConsumer(t, q)
		seqs := make([]uint64, len(q.seqs))
		for i, s := range q.seqs {
			seqs[i] = s.Load()
		}
		if err := p.TrySend([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		if n, err := c.TryRecv(buf); err != nil || string(buf[:n]) != "hello" {
			t.Fatalf("locked=%v: %q, %v", locked, buf[:n], err)
		}
		changed := false
		for i, s := range q.seqs {
			changed = changed || s.Load() != seqs[i]
		}
		if changed == locked {
			t.Fatalf("locked=%v: slot sequence words changed: %v", locked, changed)
		}
	}
}

// TestLockedNoLostWakeups is TestNoLostWakeups in locked mode: the
// semaphores' and mutexes' parking (package sem spins adaptively first, so
// parks are likely but not required).
func TestLockedNoLostWakeups(t *testing.T) {
	testNoLostWakeups(t, true)
}

// TestLockedStressProcesses is TestStressProcesses in locked mode: 3
// producer and 3 consumer processes, cursors wrapping 2^64, exactly-once
// delivery and per-producer order (Reserve and Peek are left out).
func TestLockedStressProcesses(t *testing.T) {
	small := 1
	if testing.Short() {
		small = 5
	}
	for _, tc := range []struct {
		slots uint64
		per   int
	}{
		{1, 5000 / small},
		{2, 10000 / small},
		{1024, 40000 / small},
	} {
		t.Run(fmt.Sprintf("slots=%d", tc.slots), func(t *testing.T) {
			stressMode(t, tc.slots, true, 3, 3, tc.per)
		})
	}
}

// TestLockedOwnerKilled: a process SIGKILLed while it holds the producers'
// or the consumers' mutex, at each step of its critical section, wedges no
// one. Afterwards: a message the dead producer had not published is lost; a
// published one is delivered (found by a consumer blocked in Recv, with no
// producer around to repair); a message the dead consumer had read but not
// taken is delivered again; one it had taken is lost; and the queue fills
// to exactly its slot count and drains again.
func TestLockedOwnerKilled(t *testing.T) {
	for _, tc := range []struct {
		stage   string
		prefill []string
		want    []string // what Recv then gets, before "after"
	}{
		{"p-write", nil, nil},
		{"p-published", nil, []string{"dead"}},
		{"c-read", []string{"m0", "m1"}, []string{"m0", "m1"}},
		{"c-taken", []string{"m0", "m1"}, []string{"m1"}},
	} {
		t.Run(tc.stage, func(t *testing.T) {
			q := newTestQueue(t, Config{Slots: 4, SlotSize: 64, Locked: true})
			q2 := reopen(t, q)
			p, c := mustProducer(t, q), mustConsumer(t, q2)
			for _, m := range tc.prefill {
				if err := p.TrySend([]byte(m)); err != nil {
					t.Fatal(err)
				}
			}
			cmd := helper(t, q, "locked-hang", "MPMC_STAGE="+tc.stage)
			startAndWaitReady(t, cmd)
			cmd.Process.Kill()
			cmd.Wait()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			buf := make([]byte, 64)
			for _, w := range tc.want {
				n, err := c.Recv(ctx, buf)
				if err != nil || string(buf[:n]) != w {
					t.Fatalf("got %q, %v; want %q", buf[:n], err, w)
				}
			}
			if err := p.Send(ctx, []byte("after")); err != nil {
				t.Fatal(err)
			}
			n, err := c.Recv(ctx, buf)
			if err != nil || string(buf[:n]) != "after" {
				t.Fatalf("got %q, %v; want after", buf[:n], err)
			}
			checkLockedConsistent(t, q, p, c)
		})
	}
}

// lockedHang stops, as MPMC_STAGE says, inside the producers' or the
// consumers' critical section, says so and waits to be killed.
func lockedHang() error {
	q, err := openInherited()
	if err != nil {
		return err
	}
	l := q.lk
	if l == nil {
		return errors.New("not in locked mode")
	}
	ctx := context.Background()
	switch stage := os.Getenv("MPMC_STAGE"); stage {
	case "p-write", "p-published":
		p, err := q.Producer()
		if err != nil {
			return err
		}
		p.units.Store(1)
		if err := l.free.Acquire(ctx, p.Index()); err != nil {
			return err
		}
		if err := q.lock(ctx, l.pmu, p.Index()); err != nil {
			return err
		}
		if stage == "p-write" {
			copy(q.payload(q.enq.Load(), 4), "dead") // no cursor store
		} else if _, err := p.lockedWrite([][]byte{[]byte("dead")}); err != nil {
			return err // published, no filled unit released
		}
	case "c-read", "c-taken":
		c, err := q.Consumer()
		if err != nil {
			return err
		}
		c.units.Store(1)
		if err := l.filled.Acquire(ctx, c.Index()); err != nil {
			return err
		}
		if err := q.lock(ctx, l.cmu, c.Index()); err != nil {
			return err
		}
		n := 0
		if stage == "c-taken" {
			n = 1
		}
		if _, _, _, err := c.lockedRead(n, func([]byte) error { return nil }); err != nil {
			return err // c-taken: head advanced, no free unit released
		}
	default:
		return fmt.Errorf("stage %q", stage)
	}
	fmt.Println("ready")
	time.Sleep(time.Minute)
	return errors.New("not killed")
}

// TestLockedBatchCallbackPanics: a TryRecvBatch callback that panics in
// locked mode leaves the queue usable: the panic reaches the caller, the
// consumer mutex is unlocked, the messages read before it are delivered
// once, and the one it panicked on stays at the head for the next call.
func TestLockedBatchCallbackPanics(t *testing.T) {
	q := newTestQueue(t, Config{Slots: 4, SlotSize: 64, Locked: true})
	p, c := mustProducer(t, q), mustConsumer(t, q)
	for i := range 3 {
		if err := p.TrySend([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	var got []byte
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want the callback's panic", r)
			}
		}()
		c.TryRecvBatch(3, func(m []byte) error {
			if m[0] == 1 {
				panic("boom")
			}
			got = append(got, m[0])
			return nil
		})
	}()
	c2 := mustConsumer(t, reopen(t, q))
	buf := make([]byte, 64)
	for want := byte(1); want < 3; want++ {
		n, err := c2.TryRecv(buf)
		if err != nil || n != 1 {
			t.Fatalf("after the panic, TryRecv = %d, %v (want message %d)", n, err, want)
		}
		got = append(got, buf[0])
	}
	if !bytes.Equal(got, []byte{0, 1, 2}) {
		t.Fatalf("delivered %v, want [0 1 2] once each", got)
	}
	if _, err := c.TryRecv(buf); err != ErrEmpty {
		t.Fatalf("the panicking consumer then reads %v, want ErrEmpty", err)
	}
}
