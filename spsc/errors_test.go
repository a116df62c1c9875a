package spsc

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
)

func TestMessageSizeLimits(t *testing.T) {
	q, p, c := newPair(t, ring.Memfd("sizes"), Config{Capacity: 64})
	if q.MaxMessage() != 24 {
		t.Fatalf("MaxMessage = %d, want 24", q.MaxMessage())
	}
	for _, n := range []int{0, 25, 1 << 20} {
		if err := p.TrySend(make([]byte, n)); !errors.Is(err, ErrMessageSize) {
			t.Errorf("TrySend(%d bytes): %v, want ErrMessageSize", n, err)
		}
		if err := p.Send(context.Background(), make([]byte, n)); !errors.Is(err, ErrMessageSize) {
			t.Errorf("Send(%d bytes): %v, want ErrMessageSize", n, err)
		}
	}
	if err := p.TrySend(make([]byte, 24)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TryRecv(make([]byte, 23)); !errors.Is(err, ErrShortBuffer) {
		t.Fatalf("short buffer: %v", err)
	}
	if n, err := c.TryRecv(make([]byte, 24)); n != 24 || err != nil {
		t.Fatalf("after a short buffer the message is still there: %d, %v", n, err)
	}
	if _, err := Create(ring.Memfd("x"), Config{Capacity: 64, MaxMessage: 25}); !errors.Is(err, layout.ErrInvalidConfig) {
		t.Fatalf("MaxMessage above the limit: %v", err)
	}
	if _, err := Create(ring.Memfd("x"), Config{Capacity: 100}); !errors.Is(err, layout.ErrInvalidConfig) {
		t.Fatalf("capacity not a power of two: %v", err)
	}
	if _, err := Create(ring.Memfd("x"), Config{StartPosition: 3}); !errors.Is(err, layout.ErrInvalidConfig) {
		t.Fatalf("unaligned start: %v", err)
	}
}

func TestPendingAndClosed(t *testing.T) {
	q, p, c := newPair(t, ring.Memfd("pending"), Config{Capacity: 256})
	if _, err := p.Reserve(8); err != nil {
		t.Fatal(err)
	}
	if err := p.TrySend([]byte("x")); !errors.Is(err, ErrPending) {
		t.Fatalf("TrySend with a reservation outstanding: %v", err)
	}
	if _, err := c.Peek(); err != ErrEmpty {
		t.Fatalf("uncommitted reservation visible: %v", err)
	}
	p.Commit()
	if m, err := c.Peek(); err != nil || len(m) != 8 {
		t.Fatalf("after commit: %v", err)
	}
	p.Close()
	c.Close()
	if err := p.TrySend([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("TrySend after Close: %v", err)
	}
	if _, err := c.Peek(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Peek after Close: %v", err)
	}
	q.Close()
	if _, err := q.Producer(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Producer after Close: %v", err)
	}
}

func TestRolesAreExclusive(t *testing.T) {
	loc := tempShm(t)
	q, p, _ := newPair(t, loc, Config{Capacity: 256})
	if _, err := q.Producer(); !errors.Is(err, ErrRoleTaken) {
		t.Fatalf("second producer on one handle: %v", err)
	}
	q2, err := Open(context.Background(), loc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Close()
	if _, err := q2.Producer(); !errors.Is(err, ErrRoleTaken) {
		t.Fatalf("second producer on another handle: %v", err)
	}
	if _, err := q2.Consumer(); !errors.Is(err, ErrRoleTaken) {
		t.Fatalf("second consumer on another handle: %v", err)
	}
	p.Close()
	if _, err := q2.Producer(); err != nil {
		t.Fatalf("producer after the first closed: %v", err)
	}
}

func TestRecvHonoursContext(t *testing.T) {
	_, _, c := newPair(t, ring.Memfd("ctx"), Config{Capacity: 256})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Recv(ctx, make([]byte, 8))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Recv on an empty queue: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Recv returned %v after its deadline", d)
	}
}

func TestWrongKind(t *testing.T) {
	loc := tempShm(t)
	q, _, _ := newPair(t, loc, Config{Capacity: 256})
	b := q.Segment().Bytes()
	binary.LittleEndian.PutUint32(b[layout.OffKind:], uint32(layout.KindMPMC))
	defer binary.LittleEndian.PutUint32(b[layout.OffKind:], uint32(layout.KindSPSC))
	if _, err := Open(context.Background(), loc, nil); !errors.Is(err, ErrKind) && !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open of an MPMC segment: %v", err)
	}
}

// TestCorruptCursorsAndRecords writes what no correct peer writes into the
// cursors and records and checks that both sides report ErrCorrupt.
func TestCorruptCursorsAndRecords(t *testing.T) {
	const capacity = 256
	setup := func(t *testing.T) (*Queue, *Producer, *Consumer) {
		q, p, c := newPair(t, ring.Memfd("corrupt"), Config{Capacity: capacity})
		if err := p.TrySend([]byte("hello, world")); err != nil {
			t.Fatal(err)
		}
		return q, p, c
	}
	data := func(q *Queue) []byte { return q.Segment().Data() }
	cases := []struct {
		name    string
		corrupt func(q *Queue)
		side    string
	}{
		{"tail beyond a ring ahead", func(q *Queue) { q.tail.Store(q.head.Load() + capacity + 8) }, "consumer"},
		{"tail behind head", func(q *Queue) { q.tail.Store(q.head.Load() - 8) }, "consumer"},
		{"tail misaligned", func(q *Queue) { q.tail.Add(3) }, "consumer"},
		{"head far ahead of tail", func(q *Queue) { q.head.Store(q.tail.Load() + 1<<20) }, "producer"},
		{"head moved back", func(q *Queue) { q.head.Store(q.head.Load() - 8) }, "producer"},
		{"record length zero", func(q *Queue) { binary.LittleEndian.PutUint32(data(q), 0) }, "consumer"},
		{"record length past tail", func(q *Queue) { binary.LittleEndian.PutUint32(data(q), 200) }, "consumer"},
		{"record length huge", func(q *Queue) { binary.LittleEndian.PutUint32(data(q), 0xfffffff0) }, "consumer"},
		{"record type unknown", func(q *Queue) { binary.LittleEndian.PutUint32(data(q)[4:], 99) }, "consumer"},
		{"padding not at the end", func(q *Queue) { binary.LittleEndian.PutUint32(data(q)[4:], layout.TypePadding) }, "consumer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q, p, c := setup(t)
			tc.corrupt(q)
			var err error
			if tc.side == "consumer" {
				_, err = c.TryRecv(make([]byte, 128))
			} else {
				for i := 0; i < 64 && err == nil; i++ { // fill until the producer must look at the head
					err = p.TrySend(make([]byte, 16))
				}
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s side: %v, want ErrCorrupt", tc.side, err)
			}
		})
	}
}

// TestGarbageNeverPanics sprays random bytes over the cursors and the ring
// between operations; every call must return, with data or an error.
func TestGarbageNeverPanics(t *testing.T) {
	q, p, c := newPair(t, ring.Memfd("garbage"), Config{Capacity: 128})
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, q.MaxMessage())
	d := q.Segment().Data()
	for i := 0; i < 20000; i++ {
		switch rng.IntN(4) {
		case 0:
			d[rng.IntN(len(d))] = byte(rng.Uint32())
		case 1:
			q.tail.Store(q.tail.Load() + uint64(rng.IntN(64)) - 32)
		case 2:
			q.head.Store(q.head.Load() + uint64(rng.IntN(64)) - 32)
		}
		p.TrySend(buf[:1+rng.IntN(len(buf))])
		if n, err := c.TryRecv(buf); err == nil && n > len(buf) {
			t.Fatal("impossible length")
		}
		c.Rewind()
	}
}

// TestOpenOrCreateReplacesAbandoned: a segment whose creator died before
// publishing it is detected and created anew.
func TestOpenOrCreateReplacesAbandoned(t *testing.T) {
	loc := tempShm(t)
	path := "/dev/shm/" + queueName(loc)
	b := make([]byte, 3*layout.PageSize) // shmq's magic, never published, no creator
	binary.LittleEndian.PutUint64(b, layout.Magic)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), loc, nil); !errors.Is(err, ring.ErrAbandoned) {
		t.Fatalf("Open of an abandoned segment: %v", err)
	}
	q, err := OpenOrCreate(context.Background(), loc, Config{Capacity: 256})
	if err != nil {
		t.Fatalf("OpenOrCreate over an abandoned segment: %v", err)
	}
	defer q.Close()
	if q.Capacity() != 256 {
		t.Fatalf("capacity %d", q.Capacity())
	}
}

// TestOpenOrCreateLeavesForeignFiles: shmq never deletes what it did not
// create. A file at the name without shmq's magic (empty, zeros, text, a
// directory) is ErrNotSegment, and stays.
func TestOpenOrCreateLeavesForeignFiles(t *testing.T) {
	for _, content := range [][]byte{nil, make([]byte, 8192), []byte("hello")} {
		loc := tempShm(t)
		path := "/dev/shm/" + queueName(loc)
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenOrCreate(context.Background(), loc, Config{Capacity: 256}); !errors.Is(err, ErrNotSegment) {
			t.Fatalf("%d bytes: %v, want ErrNotSegment", len(content), err)
		}
		if got, err := os.ReadFile(path); err != nil || len(got) != len(content) {
			t.Fatalf("the foreign file was touched: %d bytes, %v", len(got), err)
		}
	}
	loc := tempShm(t)
	path := "/dev/shm/" + queueName(loc)
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(path)
	if _, err := OpenOrCreate(context.Background(), loc, Config{Capacity: 256}); !errors.Is(err, ErrNotSegment) {
		t.Fatalf("directory: %v, want ErrNotSegment", err)
	}
}

// TestOpenOrCreateMismatch: an existing queue with another configuration
// is refused, naming the difference, unless the caller accepts it.
func TestOpenOrCreateMismatch(t *testing.T) {
	loc := tempShm(t)
	q, err := Create(loc, Config{Capacity: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	_, err = OpenOrCreate(context.Background(), loc, Config{Capacity: 1 << 20})
	if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "capacity 4096, asked for 1048576") {
		t.Fatalf("asked for 1 MiB, found 4 KiB: %v, want ErrMismatch naming both", err)
	}
	q2, err := OpenOrCreate(context.Background(), loc, Config{Capacity: 1 << 20, AcceptExisting: true})
	if err != nil {
		t.Fatalf("with AcceptExisting: %v", err)
	}
	defer q2.Close()
	if q2.Capacity() != 4096 {
		t.Fatalf("capacity %d", q2.Capacity())
	}
	q3, err := OpenOrCreate(context.Background(), loc, Config{})
	if err != nil {
		t.Fatalf("zero config accepts any queue: %v", err)
	}
	q3.Close()
}
