package pubsub

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/spsc"
)

// fill writes message seq of len(b) >= 8 bytes: the sequence number, then
// bytes derived from it, so that a receiver can check every byte.
func fill(b []byte, seq uint64) {
	binary.LittleEndian.PutUint64(b, seq)
	for i := 8; i < len(b); i++ {
		b[i] = byte(seq) ^ byte(i*7)
	}
}

// verify checks that b is message seq as fill wrote it.
func verify(b []byte, seq uint64) error {
	if len(b) < 8 {
		return fmt.Errorf("message of %d bytes", len(b))
	}
	if got := binary.LittleEndian.Uint64(b); got != seq {
		return fmt.Errorf("got message %d, want %d", got, seq)
	}
	for i := 8; i < len(b); i++ {
		if b[i] != byte(seq)^byte(i*7) {
			return fmt.Errorf("message %d: byte %d is %#x", seq, i, b[i])
		}
	}
	return nil
}

// sizeOf is the size of message seq in streams of varying sizes, 8 to max.
func sizeOf(seq uint64, max int) int { return 8 + int(seq*2654435761%uint64(max-7)) }

func testQueue(t testing.TB, cfg Config) *Queue {
	t.Helper()
	q, err := Create(ring.Memfd("pubsub-test"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func mustPublisher(t testing.TB, q *Queue) *Publisher {
	t.Helper()
	p, err := q.Publisher()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustSubscriber(t testing.TB, q *Queue, from Start) *Subscriber {
	t.Helper()
	s, err := q.Subscriber(from)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// send sends message seq of sizeOf(seq, max) bytes.
func send(t testing.TB, p *Publisher, seq uint64, max int) {
	t.Helper()
	b := make([]byte, sizeOf(seq, max))
	fill(b, seq)
	if err := p.Send(context.Background(), b); err != nil {
		t.Fatalf("send %d: %v", seq, err)
	}
}

// recvOK receives the next message and checks that it is message seq.
func recvOK(t testing.TB, s *Subscriber, seq uint64, max int) {
	t.Helper()
	buf := make([]byte, 1<<16)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := s.Recv(ctx, buf)
	if err != nil {
		t.Fatalf("recv %d: %v", seq, err)
	}
	if n != sizeOf(seq, max) {
		t.Fatalf("message %d has %d bytes, want %d", seq, n, sizeOf(seq, max))
	}
	if err := verify(buf[:n], seq); err != nil {
		t.Fatal(err)
	}
}

// TestFanOut: every subscriber receives every message, in order, across
// many wraps of a small ring, in both policies (the lossy subscribers keep
// up because the test reads after each send).
func TestFanOut(t *testing.T) {
	for _, lossy := range []bool{false, true} {
		t.Run(policyName(lossy), func(t *testing.T) {
			q := testQueue(t, Config{Capacity: 512, Lossy: lossy, Subscribers: 3})
			p := mustPublisher(t, q)
			subs := []*Subscriber{mustSubscriber(t, q, FromNext), mustSubscriber(t, q, FromLatest), mustSubscriber(t, q, FromOldest)}
			max := q.MaxMessage()
			for seq := uint64(0); seq < 2000; seq++ {
				send(t, p, seq, max)
				for _, s := range subs {
					if s.Seq() != seq {
						t.Fatalf("subscriber expects %d, message %d is next", s.Seq(), seq)
					}
					recvOK(t, s, seq, max)
				}
			}
			st, err := q.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if st.NextSeq != 2000 || len(st.Subscribers) != 3 || st.Publisher.Messages != 2000 {
				t.Fatalf("stats %+v", st)
			}
			for _, ss := range st.Subscribers {
				if ss.LagBytes != 0 || ss.LagMessages != 0 || ss.Messages != 2000 || ss.Lost != 0 {
					t.Fatalf("subscriber stats %+v", ss)
				}
			}
		})
	}
}

// TestStarts: where each Start begins on a queue that already holds
// messages, and on one that never held any.
func TestStarts(t *testing.T) {
	for _, lossy := range []bool{false, true} {
		t.Run(policyName(lossy), func(t *testing.T) {
			q := testQueue(t, Config{Capacity: 4096, Lossy: lossy, StartSeq: 1000})
			empty := mustSubscriber(t, q, FromLatest)
			if empty.Seq() != 1000 {
				t.Fatalf("first message of an empty queue expected as %d, want 1000", empty.Seq())
			}
			p := mustPublisher(t, q)
			max := 100
			for seq := uint64(1000); seq < 1010; seq++ {
				send(t, p, seq, max)
			}
			latest := mustSubscriber(t, q, FromLatest)
			oldest := mustSubscriber(t, q, FromOldest)
			next := mustSubscriber(t, q, FromNext)
			send(t, p, 1010, max)
			recvOK(t, latest, 1009, max)
			recvOK(t, latest, 1010, max)
			for seq := uint64(1000); seq <= 1010; seq++ {
				recvOK(t, oldest, seq, max)
				recvOK(t, empty, seq, max)
			}
			recvOK(t, next, 1010, max)
			for _, s := range []*Subscriber{latest, oldest, next, empty} {
				if _, err := s.TryRecv(make([]byte, 200)); err != ErrEmpty {
					t.Fatalf("after the last message: %v", err)
				}
			}
		})
	}
}

// TestBackPressure: the publisher cannot overwrite what the slowest live
// subscriber has not released; Send waits for it and goes on once it
// releases, a subscriber that closes stops holding it back, and the
// subscriber then still receives every message.
func TestBackPressure(t *testing.T) {
	q := testQueue(t, Config{Capacity: 1024})
	p := mustPublisher(t, q)
	fast := mustSubscriber(t, q, FromNext)
	slow := mustSubscriber(t, q, FromNext)
	msg := make([]byte, 100)
	sent := uint64(0)
	for ; ; sent++ {
		fill(msg, sent)
		err := p.TrySend(msg)
		if err == ErrFull {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		recvOK2(t, fast, sent, msg)
	}
	if sent < 5 || sent > 1024/112 {
		t.Fatalf("%d messages of 100 bytes fit a 1024-byte ring", sent)
	}
	done := make(chan error, 1)
	go func() {
		fill(msg, sent)
		done <- p.Send(context.Background(), msg)
	}()
	select {
	case err := <-done:
		t.Fatalf("Send returned %v while the slow subscriber holds the ring", err)
	case <-time.After(100 * time.Millisecond):
	}
	recvOK2(t, slow, 0, msg)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= sent; seq++ {
		recvOK2(t, slow, seq, msg)
	}
	recvOK2(t, fast, sent, msg)
	// A closed subscriber holds nothing back.
	slow.Close()
	for seq := sent + 1; seq < sent+100; seq++ {
		fill(msg, seq)
		if err := p.TrySend(msg); err != nil {
			t.Fatalf("send %d with the slow subscriber gone: %v", seq, err)
		}
		recvOK2(t, fast, seq, msg)
	}
}

func recvOK2(t testing.TB, s *Subscriber, seq uint64, like []byte) {
	t.Helper()
	buf := make([]byte, 2*len(like))
	n, err := s.TryRecv(buf)
	if err != nil {
		t.Fatalf("recv %d: %v", seq, err)
	}
	if n != len(like) {
		t.Fatalf("message %d has %d bytes, want %d", seq, n, len(like))
	}
	if err := verify(buf[:n], seq); err != nil {
		t.Fatal(err)
	}
}

// TestLossyLapped: a subscriber that falls behind gets one *LostError with
// the exact number of messages it missed, then the oldest message still
// whole, and later ones in order: every message is either received whole
// or counted lost.
func TestLossyLapped(t *testing.T) {
	q := testQueue(t, Config{Capacity: 1024, Lossy: true})
	p := mustPublisher(t, q)
	s := mustSubscriber(t, q, FromNext)
	msg := make([]byte, 40) // 64-byte records
	for seq := uint64(0); seq < 100; seq++ {
		fill(msg, seq)
		if err := p.TrySend(msg); err != nil {
			t.Fatalf("lossy TrySend %d: %v", seq, err)
		}
	}
	buf := make([]byte, 64)
	_, err := s.TryRecv(buf)
	var le *LostError
	if !errors.As(err, &le) || !errors.Is(err, ErrLost) {
		t.Fatalf("first TryRecv after being lapped: %v, want a *LostError", err)
	}
	first := le.Count
	// The ring holds 16 records; the oldest 1024/8 bytes (slack) are given
	// up early, so between 12 and 15 messages remain.
	if first < 100-15 || first > 100-12 {
		t.Fatalf("lost %d of 100 messages in a ring of 16 records", first)
	}
	for seq := first; seq < 100; seq++ {
		n, err := s.TryRecv(buf)
		if err != nil || verify(buf[:n], seq) != nil {
			t.Fatalf("message %d after the loss: %v %v", seq, err, verify(buf[:n], seq))
		}
	}
	if s.Lost() != first {
		t.Fatalf("Lost() = %d, want %d", s.Lost(), first)
	}
	st, _ := q.Stats()
	if st.Subscribers[0].Lost != first || st.Subscribers[0].LagMessages != 0 {
		t.Fatalf("stats %+v", st.Subscribers[0])
	}
}

// TestLossyPeekOverwritten: views handed out by Peek that the publisher
// overwrites before Release are reported by Release as lost.
func TestLossyPeekOverwritten(t *testing.T) {
	q := testQueue(t, Config{Capacity: 1024, Lossy: true})
	p := mustPublisher(t, q)
	s := mustSubscriber(t, q, FromNext)
	msg := make([]byte, 40)
	for seq := uint64(0); seq < 3; seq++ {
		fill(msg, seq)
		p.TrySend(msg)
	}
	for seq := uint64(0); seq < 2; seq++ {
		m, err := s.Peek()
		if err != nil || verify(m, seq) != nil {
			t.Fatalf("peek %d: %v", seq, err)
		}
	}
	// A ring later, the views hold other messages.
	for seq := uint64(3); seq < 40; seq++ {
		fill(msg, seq)
		p.TrySend(msg)
	}
	err := s.Release()
	var le *LostError
	if !errors.As(err, &le) {
		t.Fatalf("Release of overwritten views: %v", err)
	}
	buf := make([]byte, 64)
	n, err := s.TryRecv(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := binary.LittleEndian.Uint64(buf[:n]); got != le.Count || verify(buf[:n], got) != nil {
		t.Fatalf("after losing %d (the two peeked included), received message %d", le.Count, got)
	}
	// Views that are not overwritten release cleanly.
	if _, err := s.Peek(); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(); err != nil {
		t.Fatalf("Release of whole views: %v", err)
	}
}

// TestLossyTornCopy: a message that the publisher overwrites while the
// subscriber holds it between peek and copy is never delivered: TryRecv
// reports it lost. The overwrite is made, deterministically, between
// Peek's header check and TryRecv's copy by a publisher handle that runs
// inside the test's Peek/TryRecv pair.
func TestLossyTornCopy(t *testing.T) {
	q := testQueue(t, Config{Capacity: 256, Lossy: true})
	p := mustPublisher(t, q)
	s := mustSubscriber(t, q, FromNext)
	msg := make([]byte, 40)
	fill(msg, 0)
	p.TrySend(msg)
	view, err := s.Peek()
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq < 10; seq++ {
		fill(msg, seq)
		p.TrySend(msg)
	}
	if verify(view, 0) == nil {
		t.Fatal("the view still holds message 0; the test did not overwrite it")
	}
	s.Rewind()
	buf := make([]byte, 64)
	_, err = s.TryRecv(buf)
	if !errors.Is(err, ErrLost) {
		t.Fatalf("TryRecv of an overwritten message: %v", err)
	}
}

// TestEndOfStream: after the publisher closes and the subscriber has read
// everything, Recv and PeekWait return io.EOF; a new publisher continues
// the stream with the next sequence number.
func TestEndOfStream(t *testing.T) {
	for _, lossy := range []bool{false, true} {
		t.Run(policyName(lossy), func(t *testing.T) {
			q := testQueue(t, Config{Capacity: 1024, Lossy: lossy})
			p := mustPublisher(t, q)
			s := mustSubscriber(t, q, FromNext)
			send(t, p, 0, 50)
			send(t, p, 1, 50)
			if _, err := p.Reserve(10); err != nil { // discarded by Close
				t.Fatal(err)
			}
			p.Close()
			recvOK(t, s, 0, 50)
			recvOK(t, s, 1, 50)
			ctx := context.Background()
			if _, err := s.Recv(ctx, make([]byte, 64)); err != io.EOF {
				t.Fatalf("Recv at the end: %v", err)
			}
			if _, err := s.PeekWait(ctx); err != io.EOF {
				t.Fatalf("PeekWait at the end: %v", err)
			}
			p2 := mustPublisher(t, q)
			if p2.Seq() != 2 {
				t.Fatalf("new publisher continues at %d, want 2", p2.Seq())
			}
			send(t, p2, 2, 50)
			recvOK(t, s, 2, 50)
		})
	}
}

// TestTakeover: a publisher that dies (its segment closed without
// detaching) with reservations pending is replaced by one that continues
// after the last committed message; subscribers see no gap.
func TestTakeover(t *testing.T) {
	for _, lossy := range []bool{false, true} {
		t.Run(policyName(lossy), func(t *testing.T) {
			name := fmt.Sprintf("shmq-ps-take-%d", os.Getpid())
			q, err := Create(ring.Shm(name), Config{Capacity: 1024, Lossy: lossy})
			if err != nil {
				t.Fatal(err)
			}
			defer ring.Unlink(ring.Shm(name))
			defer q.Close()
			s := mustSubscriber(t, q, FromNext)
			q2, err := Open(context.Background(), ring.Shm(name), nil)
			if err != nil {
				t.Fatal(err)
			}
			p2 := mustPublisher(t, q2)
			for seq := uint64(0); seq < 30; seq++ {
				send(t, p2, seq, 60)
				recvOK(t, s, seq, 60)
			}
			b, _ := p2.Reserve(20)
			fill(b, 999)
			q2.Segment().Close() // dies: the lock goes, the entry stays attached
			if _, err := q.Publisher(); err != nil {
				// The entry is dead, not taken: attach must succeed.
				t.Fatalf("takeover: %v", err)
			}
			q.mu.Lock()
			p := q.publisher
			q.mu.Unlock()
			if p.Seq() != 30 {
				t.Fatalf("successor continues at %d, want 30", p.Seq())
			}
			for seq := uint64(30); seq < 60; seq++ {
				send(t, p, seq, 60)
				recvOK(t, s, seq, 60)
			}
		})
	}
}

// TestDeadSubscriberDropped: a back-pressure subscriber that died without
// detaching holds the publisher back only until liveness drops it.
func TestDeadSubscriberDropped(t *testing.T) {
	name := fmt.Sprintf("shmq-ps-dead-%d", os.Getpid())
	q, err := Create(ring.Shm(name), Config{Capacity: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer ring.Unlink(ring.Shm(name))
	defer q.Close()
	p := mustPublisher(t, q)
	live := mustSubscriber(t, q, FromNext)
	q2, err := Open(context.Background(), ring.Shm(name), nil)
	if err != nil {
		t.Fatal(err)
	}
	mustSubscriber(t, q2, FromNext)
	q2.Segment().Close() // the subscriber dies without detaching
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msg := make([]byte, 100)
	for seq := uint64(0); seq < 50; seq++ {
		fill(msg, seq)
		if err := p.Send(ctx, msg); err != nil {
			t.Fatalf("send %d: %v", seq, err)
		}
		recvOK2(t, live, seq, msg)
	}
	d := time.Since(start)
	t.Logf("50 sends past a dead subscriber took %v", d)
	if d > 2*time.Second {
		t.Fatalf("a dead subscriber held the publisher for %v", d)
	}
	st, _ := q.Stats()
	for _, ss := range st.Subscribers {
		if ss.Dead() {
			t.Fatalf("dead subscriber still registered: %+v", ss)
		}
	}
}

// TestWrap: positions and sequence numbers that wrap around 2^64.
func TestWrap(t *testing.T) {
	for _, lossy := range []bool{false, true} {
		t.Run(policyName(lossy), func(t *testing.T) {
			q := testQueue(t, Config{Capacity: 256, Lossy: lossy, StartPosition: ^uint64(0) - 255, StartSeq: ^uint64(0) - 20})
			p := mustPublisher(t, q)
			s := mustSubscriber(t, q, FromLatest)
			for seq := ^uint64(0) - 20; seq != 200; seq++ {
				send(t, p, seq, 40)
				recvOK(t, s, seq, 40)
			}
			st, _ := q.Stats()
			if st.Tail > 1<<20 || st.NextSeq != 200 {
				t.Fatalf("after the wrap: tail %d, next seq %d", st.Tail, st.NextSeq)
			}
		})
	}
}

// TestBatchesAndReserve: batches and zero-copy reservations, committed
// together; a pending reservation refuses a copying send.
func TestBatchesAndReserve(t *testing.T) {
	for _, lossy := range []bool{false, true} {
		t.Run(policyName(lossy), func(t *testing.T) {
			q := testQueue(t, Config{Capacity: 4096, Lossy: lossy})
			p := mustPublisher(t, q)
			s := mustSubscriber(t, q, FromNext)
			for seq := uint64(0); seq < 5; seq++ {
				b, err := p.Reserve(sizeOf(seq, 60))
				if err != nil {
					t.Fatal(err)
				}
				fill(b, seq)
			}
			if err := p.TrySend(make([]byte, 8)); !errors.Is(err, ErrPending) {
				t.Fatalf("TrySend with reservations pending: %v", err)
			}
			if _, err := s.TryRecv(make([]byte, 64)); err != ErrEmpty {
				t.Fatalf("reserved messages visible before Commit: %v", err)
			}
			p.Commit()
			var msgs [][]byte
			for seq := uint64(5); seq < 20; seq++ {
				b := make([]byte, sizeOf(seq, 60))
				fill(b, seq)
				msgs = append(msgs, b)
			}
			if err := p.SendBatch(context.Background(), msgs); err != nil {
				t.Fatal(err)
			}
			next := uint64(0)
			for next < 20 {
				n, err := s.TryRecvBatch(7, func(m []byte) error {
					if err := verify(m, next); err != nil {
						return err
					}
					next++
					return nil
				})
				if err != nil || n == 0 || n > 7 {
					t.Fatalf("batch: %d, %v", n, err)
				}
			}
			// Peek is zero-copy; Rewind gives the same messages again.
			send(t, p, 20, 60)
			m1, _ := s.Peek()
			s.Rewind()
			m2, _ := s.Peek()
			if verify(m1, 20) != nil || verify(m2, 20) != nil || (!lossy && &m1[0] != &m2[0]) {
				t.Fatal("peek after rewind")
			}
			if err := s.Release(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestErrors: the error vocabulary.
func TestErrors(t *testing.T) {
	q := testQueue(t, Config{Capacity: 1024, Subscribers: 2})
	p := mustPublisher(t, q)
	if _, err := q.Publisher(); !errors.Is(err, ErrRoleTaken) {
		t.Errorf("second publisher: %v", err)
	}
	mustSubscriber(t, q, FromNext)
	s := mustSubscriber(t, q, FromNext)
	if _, err := q.Subscriber(FromNext); !errors.Is(err, ErrRegistryFull) {
		t.Errorf("third subscriber of two: %v", err)
	}
	if _, err := q.Subscriber(Start(9)); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad start: %v", err)
	}
	for _, n := range []int{0, q.MaxMessage() + 1} {
		if err := p.TrySend(make([]byte, n)); !errors.Is(err, ErrMessageSize) {
			t.Errorf("message of %d bytes: %v", n, err)
		}
	}
	p.TrySend(make([]byte, 100))
	if _, err := s.TryRecv(make([]byte, 10)); !errors.Is(err, ErrShortBuffer) {
		t.Errorf("short buffer: %v", err)
	}
	if n, err := s.TryRecv(make([]byte, 100)); err != nil || n != 100 {
		t.Errorf("the message after a short buffer: %d, %v", n, err)
	}
	if _, err := s.TryRecvBatch(0, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("batch of 0: %v", err)
	}
	var nilSub *Subscriber
	if _, err := nilSub.TryRecv(nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("nil subscriber: %v", err)
	}
	s.Close()
	if _, err := s.TryRecv(nil); !errors.Is(err, ErrClosed) || !errors.Is(err, net.ErrClosed) {
		t.Errorf("closed subscriber: %v", err)
	}
	if _, err := OpenOrCreate(context.Background(), ring.Memfd("x"), Config{Lossy: true}); err != nil {
		t.Errorf("OpenOrCreate of a memfd creates: %v", err)
	}
	name := fmt.Sprintf("shmq-ps-err-%d", os.Getpid())
	sq, err := spsc.Create(ring.Shm(name), spsc.Config{Capacity: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer ring.Unlink(ring.Shm(name))
	defer sq.Close()
	if _, err := Open(context.Background(), ring.Shm(name), nil); !errors.Is(err, ErrKind) {
		t.Errorf("opening an SPSC queue: %v", err)
	}
	name2 := name + "b"
	q2, err := Create(ring.Shm(name2), Config{Capacity: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer ring.Unlink(ring.Shm(name2))
	defer q2.Close()
	if _, err := OpenOrCreate(context.Background(), ring.Shm(name2), Config{Lossy: true}); !errors.Is(err, ErrMismatch) {
		t.Errorf("lossy asked of a back-pressure queue: %v", err)
	}
	q3, err := OpenOrCreate(context.Background(), ring.Shm(name2), Config{Lossy: true, AcceptExisting: true})
	if err != nil || q3.Lossy() {
		t.Errorf("AcceptExisting: %v", err)
	} else {
		q3.Close()
	}
	if _, err := Create(ring.Memfd("x"), Config{StartPosition: 8}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("misaligned start position: %v", err)
	}
}

// TestCloseUnblocks: Close from another goroutine ends a blocked Recv and
// a blocked (back-pressured) Send with ErrClosed.
func TestCloseUnblocks(t *testing.T) {
	q := testQueue(t, Config{Capacity: 256})
	p := mustPublisher(t, q)
	s := mustSubscriber(t, q, FromNext)
	errc := make(chan error, 1)
	go func() {
		_, err := s.Recv(context.Background(), make([]byte, 128))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	s.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Recv after Close: %v", err)
	}
	slow := mustSubscriber(t, q, FromNext)
	_ = slow
	msg := make([]byte, 100)
	for p.TrySend(msg) == nil {
	}
	go func() { errc <- p.Send(context.Background(), msg) }()
	time.Sleep(20 * time.Millisecond)
	p.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
}

// TestManySubscribersOneWake: a commit wakes every parked subscriber with
// one wake system call.
func TestManySubscribersOneWake(t *testing.T) {
	q := testQueue(t, Config{Capacity: 4096, Subscribers: 8})
	p := mustPublisher(t, q)
	const n = 8
	var woke atomic.Int32
	done := make(chan error, n)
	for range n {
		s := mustSubscriber(t, q, FromNext)
		go func() {
			_, err := s.Recv(context.Background(), make([]byte, 64))
			woke.Add(1)
			done <- err
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for q.subscriberWake.Waiters.Count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d subscribers parked", q.subscriberWake.Waiters.Count(), n)
		}
		time.Sleep(time.Millisecond)
	}
	before := q.wait.Backend.Stats().WakeSyscalls
	if err := p.TrySend(make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if calls := q.wait.Backend.Stats().WakeSyscalls - before; calls != 1 {
		t.Fatalf("%d wake system calls for %d parked subscribers, want 1", calls, n)
	}
	if woke.Load() != n {
		t.Fatalf("%d woke", woke.Load())
	}
	st, _ := q.Stats()
	if st.Publisher.Wakes != 1 {
		t.Fatalf("publisher wake counter %d", st.Publisher.Wakes)
	}
	_ = layout.KindPubSub
}
