package mpmc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
)

var memfdSeq atomic.Int64

func newTestQueue(t testing.TB, cfg Config) *Queue {
	t.Helper()
	q, err := Create(ring.Memfd(fmt.Sprintf("mpmc-test-%d", memfdSeq.Add(1))), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// reopen maps q's segment a second time, as another process would.
func reopen(t testing.TB, q *Queue) *Queue {
	t.Helper()
	q2, err := Open(context.Background(), ring.FD(q.Segment().Fd()), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q2.Close() })
	return q2
}

func mustProducer(t testing.TB, q *Queue) *Producer {
	t.Helper()
	p, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustConsumer(t testing.TB, q *Queue) *Consumer {
	t.Helper()
	c, err := q.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg              Config
		slotSize, maxMsg int
		slots            uint64
		wantErr          bool
	}{
		{Config{}, DefaultSlotSize, DefaultSlotSize - 16, DefaultSlots, false},
		{Config{Slots: 1, MaxMessage: 64}, 128, 64, 1, false},
		{Config{Slots: 2, SlotSize: 64}, 64, 48, 2, false},
		{Config{Slots: 4, SlotSize: 128, MaxMessage: 100}, 128, 100, 4, false},
		{Config{Slots: 3}, 0, 0, 0, true},
		{Config{Slots: 4, SlotSize: 100}, 0, 0, 0, true},
		{Config{Slots: 4, SlotSize: 64, MaxMessage: 49}, 0, 0, 0, true},
		{Config{Slots: 1 << 30}, 0, 0, 0, true},
	} {
		q, err := Create(ring.Memfd("cfg"), tc.cfg)
		if tc.wantErr {
			if !errors.Is(err, layout.ErrInvalidConfig) {
				t.Errorf("%+v: err = %v, want ErrInvalidConfig", tc.cfg, err)
			}
			if q != nil {
				q.Close()
			}
			continue
		}
		if err != nil {
			t.Fatalf("%+v: %v", tc.cfg, err)
		}
		if q.SlotSize() != tc.slotSize || q.MaxMessage() != tc.maxMsg || q.Slots() != tc.slots {
			t.Errorf("%+v: slots %d of %d bytes, max %d", tc.cfg, q.Slots(), q.SlotSize(), q.MaxMessage())
		}
		q.Close()
	}
}

func TestSendRecv(t *testing.T) {
	q := newTestQueue(t, Config{Slots: 4, SlotSize: 64, StartPosition: ^uint64(0) - 5})
	p, c := mustProducer(t, q), mustConsumer(t, q)
	buf := make([]byte, 64)
	if _, err := c.TryRecv(buf); err != ErrEmpty {
		t.Fatalf("empty queue: %v", err)
	}
	for round := 0; round < 10; round++ {
		for i := 0; i < 4; i++ {
			if err := p.TrySend([]byte(fmt.Sprintf("m%d-%d", round, i))); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.TrySend([]byte("x")); err != ErrFull {
			t.Fatalf("full queue: %v", err)
		}
		for i := 0; i < 4; i++ {
			n, err := c.TryRecv(buf)
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("m%d-%d", round, i); string(buf[:n]) != want {
				t.Fatalf("got %q, want %q", buf[:n], want)
			}
		}
		if _, err := c.TryRecv(buf); err != ErrEmpty {
			t.Fatalf("drained queue: %v", err)
		}
	}
	if err := p.TrySend(nil); !errors.Is(err, ErrMessageSize) {
		t.Fatalf("empty message: %v", err)
	}
	if err := p.TrySend(make([]byte, 49)); !errors.Is(err, ErrMessageSize) {
		t.Fatalf("oversized message: %v", err)
	}
	st, err := q.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Used != 0 || st.Head != st.Tail || st.Tail != 34 || len(st.Entries) != 2 {
		t.Fatalf("stats %+v", st)
	}
	if st.Entries[0].Messages != 40 || st.Entries[1].Messages != 40 || st.Entries[0].Stalls != 10 {
		t.Fatalf("counters %+v", st.Entries)
	}
}

func TestReserveCommitPeekRelease(t *testing.T) {
	q := newTestQueue(t, Config{Slots: 4, SlotSize: 64})
	p1, p2 := mustProducer(t, q), mustProducer(t, q)
	c1, c2 := mustConsumer(t, q), mustConsumer(t, q)
	b, err := p1.Reserve(3)
	if err != nil {
		t.Fatal(err)
	}
	copy(b, "one")
	if err := p1.TrySend([]byte("x")); !errors.Is(err, ErrPending) {
		t.Fatalf("TrySend with reservations: %v", err)
	}
	if err := p2.TrySend([]byte("two")); err != nil {
		t.Fatal(err)
	}
	// "one" holds back "two": consumers take slots in order.
	if _, err := c1.Peek(); err != ErrEmpty {
		t.Fatalf("peek behind a reservation: %v", err)
	}
	if err := p1.Commit(); err != nil {
		t.Fatal(err)
	}
	m1, err := c1.Peek()
	if err != nil || string(m1) != "one" {
		t.Fatalf("peek: %q %v", m1, err)
	}
	m2, err := c2.Peek()
	if err != nil || string(m2) != "two" {
		t.Fatalf("peek: %q %v", m2, err)
	}
	// Four slots, two held by consumers: two more fit, then the held ones
	// block the next lap.
	for i := 0; i < 2; i++ {
		if err := p2.TrySend([]byte{byte(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p2.TrySend([]byte("z")); err != ErrFull {
		t.Fatalf("send over held slots: %v", err)
	}
	if string(m1) != "one" || string(m2) != "two" {
		t.Fatal("held slots overwritten")
	}
	if err := c1.Release(); err != nil {
		t.Fatal(err)
	}
	if err := p2.TrySend([]byte("z")); err != nil {
		t.Fatalf("send after release: %v", err)
	}
	if err := c2.Release(); err != nil {
		t.Fatal(err)
	}
	// Short buffer: the message is kept for the next call.
	if _, err := c1.TryRecv(make([]byte, 0)); !errors.Is(err, ErrShortBuffer) {
		t.Fatalf("short buffer: %v", err)
	}
	var got [][]byte
	n, err := c1.TryRecvBatch(10, func(m []byte) error {
		got = append(got, bytes.Clone(m))
		return nil
	})
	if err != nil || n != 3 || !bytes.Equal(bytes.Join(got, nil), []byte("\x01\x02z")) {
		t.Fatalf("batch: %d %v %q", n, err, got)
	}
	// A reservation discarded by Close becomes a tombstone.
	if _, err := p1.Reserve(5); err != nil {
		t.Fatal(err)
	}
	p1.Close()
	if err := p2.TrySend([]byte("after")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n, err := c2.TryRecv(buf); err != nil || string(buf[:n]) != "after" || c2.Skipped() != 1 {
		t.Fatalf("after tombstone: %q %v skipped %d", buf[:n], err, c2.Skipped())
	}
	// Batches.
	sent, err := p2.TrySendBatch([][]byte{[]byte("a"), []byte("b"), []byte("c"), []byte("d"), []byte("e")})
	if sent != 4 || err != ErrFull {
		t.Fatalf("send batch: %d %v", sent, err)
	}
	stop := errors.New("stop")
	n, err = c2.TryRecvBatch(10, func(m []byte) error {
		if m[0] == 'c' {
			return stop
		}
		return nil
	})
	if n != 2 || err != stop {
		t.Fatalf("batch with error: %d %v", n, err)
	}
	if n, err := c1.TryRecv(buf); err != nil || string(buf[:n]) != "d" {
		t.Fatalf("other consumer: %q %v", buf[:n], err)
	}
	if n, err := c2.TryRecv(buf); err != nil || string(buf[:n]) != "c" {
		t.Fatalf("kept message: %q %v", buf[:n], err)
	}
}

func TestBlocking(t *testing.T) {
	q := newTestQueue(t, Config{Slots: 1, SlotSize: 64})
	p, c := mustProducer(t, q), mustConsumer(t, q)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Recv(ctx, make([]byte, 64)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("recv on empty: %v", err)
	}
	q2 := reopen(t, q)
	c2 := mustConsumer(t, q2)
	done := make(chan error)
	go func() {
		buf := make([]byte, 64)
		for i := 0; i < 100; i++ {
			n, err := c2.Recv(context.Background(), buf)
			if err != nil {
				done <- err
				return
			}
			if int(buf[0]) != i || n != 1 {
				done <- fmt.Errorf("got %v, want %d", buf[:n], i)
				return
			}
		}
		done <- nil
	}()
	for i := 0; i < 100; i++ {
		if err := p.Send(context.Background(), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := p.Send(context.Background(), []byte{1}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := p.Send(ctx, []byte{2}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("send on full: %v", err)
	}
	if err := p.SendBatch(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	_ = c
}

func TestRegistryFull(t *testing.T) {
	q := newTestQueue(t, Config{Slots: 2, SlotSize: 64, Registry: 2})
	p := mustProducer(t, q)
	mustConsumer(t, q)
	if _, err := q.Producer(); !errors.Is(err, ErrRegistryFull) {
		t.Fatalf("third attach: %v", err)
	}
	p.Close()
	if _, err := q.Consumer(); err != nil {
		t.Fatalf("attach after detach: %v", err)
	}
}

func TestOpenOrCreate(t *testing.T) {
	name := fmt.Sprintf("mpmc-ooc-%d", os.Getpid())
	loc := ring.Shm(name)
	defer ring.Unlink(loc)
	q1, err := OpenOrCreate(context.Background(), loc, Config{Slots: 8, SlotSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer q1.Close()
	if _, err := OpenOrCreate(context.Background(), loc, Config{Slots: 16}); !errors.Is(err, ErrMismatch) {
		t.Fatalf("asked for 16 slots, found 8: %v, want ErrMismatch", err)
	}
	q2, err := OpenOrCreate(context.Background(), loc, Config{Slots: 16, AcceptExisting: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Close()
	if q2.Slots() != 8 {
		t.Fatalf("second handle sees %d slots", q2.Slots())
	}
	p, c := mustProducer(t, q1), mustConsumer(t, q2)
	if err := p.TrySend([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if n, err := c.TryRecv(buf); err != nil || string(buf[:n]) != "hi" {
		t.Fatalf("%q %v", buf[:n], err)
	}
	if _, err := Open(context.Background(), ring.Shm("mpmc-none-such"), nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open missing: %v", err)
	}
}

func TestClosed(t *testing.T) {
	q, err := Create(ring.Memfd("closed"), Config{Slots: 2, SlotSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	p, c := mustProducer(t, q), mustConsumer(t, q)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.TrySend([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
	if _, err := c.TryRecv(make([]byte, 8)); !errors.Is(err, ErrClosed) {
		t.Fatalf("recv after close: %v", err)
	}
	if _, err := q.Producer(); !errors.Is(err, ErrClosed) {
		t.Fatalf("attach after close: %v", err)
	}
}
