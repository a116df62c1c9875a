package spsc

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
)

// model is a plain queue that mirrors the ring's space accounting, so that
// every ErrFull and ErrEmpty the real queue returns can be predicted.
type model struct {
	cap, mask  uint64
	head, tail uint64 // released and published positions
	resv       uint64 // tail including reservations
	queue      []rec  // committed, not released
	pending    []rec
	peeked     int // records of queue handed out by Peek since the last release
}

type rec struct {
	payload []byte
	end     uint64 // position after the record (and any padding before it)
}

func (m *model) reserve(n int) bool {
	size := layout.RecordSize(n)
	room := m.cap - m.resv&m.mask
	need := size
	if size > room {
		need += room
	}
	if need > m.cap-(m.resv-m.head) {
		return false
	}
	m.resv += need
	return true
}

func newPair(t testing.TB, loc ring.Location, cfg Config) (*Queue, *Producer, *Consumer) {
	t.Helper()
	q, err := Create(loc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close(); ring.Unlink(loc) })
	p, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	c, err := q.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	return q, p, c
}

// TestModel drives a queue with random operations, tiny to large rings and
// cursors that start just below 2^64, checking every result against model.
func TestModel(t *testing.T) {
	caps := []uint64{32, 64, 128, 256, 4096, 1 << 16}
	starts := []uint64{0, ^uint64(0) - 63, ^uint64(0) - 4095}
	steps := 20000
	if testing.Short() {
		steps = 3000
	}
	for _, capacity := range caps {
		for _, start := range starts {
			start := start &^ 7
			t.Run(fmt.Sprintf("cap%d/start%#x", capacity, start), func(t *testing.T) {
				runModel(t, capacity, start, steps, uint64(capacity)*31+start)
			})
		}
	}
}

func runModel(t *testing.T, capacity, start uint64, steps int, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	loc := ring.Memfd("model")
	q, p, c := newPair(t, loc, Config{Capacity: capacity, StartPosition: start})
	m := &model{cap: capacity, mask: capacity - 1, head: start, tail: start, resv: start}
	max := q.MaxMessage()
	var sent uint64
	msg := func() []byte {
		n := 1 + rng.IntN(max)
		if rng.IntN(4) == 0 {
			n = 1 + rng.IntN(min(max, 16))
		}
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(sent) + byte(i)*31
		}
		sent++
		return b
	}
	check := func(step int, what string, got []byte, want rec) {
		t.Helper()
		if !bytes.Equal(got, want.payload) {
			t.Fatalf("step %d %s: got %d bytes %x, want %d bytes %x", step, what, len(got), got, len(want.payload), want.payload)
		}
	}
	buf := make([]byte, max)
	for step := 0; step < steps; step++ {
		switch op := rng.IntN(11); op {
		case 0, 1: // TrySend
			b := msg()
			ok := m.reserve(len(b))
			err := p.TrySend(b)
			if ok != (err == nil) || (!ok && err != ErrFull) {
				t.Fatalf("step %d TrySend(%d bytes): err=%v, model fits=%v (head %d tail %d)", step, len(b), err, ok, m.head, m.tail)
			}
			if ok {
				m.tail = m.resv
				m.queue = append(m.queue, rec{b, m.tail})
			}
		case 2: // Reserve several, then Commit
			k := 1 + rng.IntN(4)
			for i := 0; i < k; i++ {
				b := msg()
				ok := m.reserve(len(b))
				dst, err := p.Reserve(len(b))
				if ok != (err == nil) {
					t.Fatalf("step %d Reserve: err=%v, model fits=%v", step, err, ok)
				}
				if !ok {
					break
				}
				copy(dst, b)
				m.pending = append(m.pending, rec{b, m.resv})
			}
			if rng.IntN(8) == 0 {
				// A producer that closes with reservations loses them; its
				// successor continues at the committed tail.
				p.Close()
				var err error
				if p, err = q.Producer(); err != nil {
					t.Fatal(err)
				}
				m.pending, m.resv = nil, m.tail
				break
			}
			p.Commit()
			m.queue = append(m.queue, m.pending...)
			m.pending = nil
			m.tail = m.resv
		case 3, 4: // TryRecv, sometimes into a short buffer
			if m.peeked > 0 {
				break // TryRecv would release the peeked records too; covered by case 5
			}
			dst := buf
			short := len(m.queue) > 0 && rng.IntN(6) == 0 && len(m.queue[0].payload) > 1
			if short {
				dst = buf[:len(m.queue[0].payload)-1]
			}
			n, err := c.TryRecv(dst)
			switch {
			case len(m.queue) == 0:
				if err != ErrEmpty {
					t.Fatalf("step %d TryRecv on empty: %d, %v", step, n, err)
				}
			case short:
				if !errors.Is(err, ErrShortBuffer) {
					t.Fatalf("step %d TryRecv short buffer: %v", step, err)
				}
			default:
				if err != nil {
					t.Fatalf("step %d TryRecv: %v", step, err)
				}
				check(step, "TryRecv", dst[:n], m.queue[0])
				m.head = m.queue[0].end
				m.queue = m.queue[1:]
			}
		case 5, 6: // Peek some, then Release or Rewind
			k := 1 + rng.IntN(4)
			for i := 0; i < k; i++ {
				got, err := c.Peek()
				if m.peeked == len(m.queue) {
					if err != ErrEmpty {
						t.Fatalf("step %d Peek past the end: %v", step, err)
					}
					break
				}
				if err != nil {
					t.Fatalf("step %d Peek: %v", step, err)
				}
				check(step, "Peek", got, m.queue[m.peeked])
				m.peeked++
			}
			switch rng.IntN(3) {
			case 0:
				c.Rewind()
			case 1:
				if m.peeked > 0 {
					m.head = m.queue[m.peeked-1].end
					m.queue = m.queue[m.peeked:]
				}
				c.Release()
			default:
				continue // keep them peeked
			}
			m.peeked = 0
		case 7: // TryRecvBatch
			if m.peeked > 0 {
				c.Rewind()
				m.peeked = 0
			}
			k := 1 + rng.IntN(5)
			i := 0
			n, err := c.TryRecvBatch(k, func(b []byte) error {
				check(step, "TryRecvBatch", b, m.queue[i])
				i++
				return nil
			})
			want := min(k, len(m.queue))
			if n != want || (want == 0) != (err == ErrEmpty) {
				t.Fatalf("step %d TryRecvBatch(%d): %d, %v; model has %d", step, k, n, err, len(m.queue))
			}
			if n > 0 {
				m.head = m.queue[n-1].end
				m.queue = m.queue[n:]
			}
		case 9: // TrySendBatch: the leading messages that fit, one commit
			msgs := make([][]byte, 1+rng.IntN(6))
			var ends []uint64
			for i := range msgs {
				msgs[i] = msg()
				if len(ends) == i && m.reserve(len(msgs[i])) {
					ends = append(ends, m.resv)
				}
			}
			n, err := p.TrySendBatch(msgs)
			if n != len(ends) || (n < len(msgs)) != (err == ErrFull) || (n == len(msgs) && err != nil) {
				t.Fatalf("step %d TrySendBatch of %d: %d, %v; model fits %d", step, len(msgs), n, err, len(ends))
			}
			for i, end := range ends {
				m.queue = append(m.queue, rec{msgs[i], end})
			}
			m.tail = m.resv
		case 10: // TryRecvBatch whose callback refuses one message
			if m.peeked > 0 {
				c.Rewind()
				m.peeked = 0
			}
			k := 1 + rng.IntN(5)
			refuse := rng.IntN(k)
			errRefused := errors.New("refused")
			i := 0
			n, err := c.TryRecvBatch(k, func(b []byte) error {
				if i == refuse {
					return errRefused
				}
				check(step, "TryRecvBatch", b, m.queue[i])
				i++
				return nil
			})
			want, wantErr := min(k, len(m.queue)), error(nil)
			switch {
			case want == 0:
				wantErr = ErrEmpty
			case refuse < want:
				want, wantErr = refuse, errRefused
			}
			if n != want || err != wantErr {
				t.Fatalf("step %d TryRecvBatch(%d) refusing #%d: %d, %v; want %d, %v (model has %d)", step, k, refuse, n, err, want, wantErr, len(m.queue))
			}
			if err == errRefused {
				// The head stops at the refused message, past any padding
				// before it.
				r := m.queue[n]
				m.head = r.end - layout.RecordSize(len(r.payload))
				m.queue = m.queue[n:]
			} else if n > 0 {
				m.head = m.queue[n-1].end
				m.queue = m.queue[n:]
			}
		case 8: // the consumer restarts: what it peeked and did not release comes again
			c.Close()
			var err error
			if c, err = q.Consumer(); err != nil {
				t.Fatal(err)
			}
			m.peeked = 0
		}
		st, err := q.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.Head != m.head || st.Tail != m.tail {
			t.Fatalf("step %d: cursors head=%d tail=%d, model head=%d tail=%d", step, st.Head, st.Tail, m.head, m.tail)
		}
	}
	if m.tail-start < 4*capacity {
		t.Fatalf("the run moved the tail only %d bytes in a %d-byte ring: it did not wrap", m.tail-start, capacity)
	}
}
