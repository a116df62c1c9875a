package pubsub

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
)

// The model: a plain fan-out. Every committed message is kept with its
// position; each subscriber must receive, from where it starts, every
// message in order and intact (back-pressure), or every message intact
// or counted lost, the counts exact (lossy).

type modelSub struct {
	s      *Subscriber
	head   uint64 // sequence number of the next message to release
	peeked uint64 // messages peeked since
	views  [][]byte
}

type model struct {
	t     testing.TB
	q     *Queue
	p     *Publisher // nil while no publisher is attached
	lossy bool
	cap   uint64
	max   int

	msgs      map[uint64][]byte // committed messages by sequence number
	pos       map[uint64]uint64 // their positions
	committed uint64            // sequence number after the last committed message
	tail      uint64            // position after it
	pending   [][]byte          // reserved, not committed
	resTail   uint64            // position after the last reservation
	subs      []*modelSub
	fill      byte
}

func newModel(t testing.TB, lossy bool, capacity uint64, start, seq uint64) *model {
	q, err := Create(ring.Memfd("pubsub-model"), Config{Capacity: capacity, Lossy: lossy, Subscribers: 4, StartPosition: start, StartSeq: seq})
	if err != nil {
		t.Fatal(err)
	}
	m := &model{t: t, q: q, lossy: lossy, cap: capacity, max: q.MaxMessage(),
		msgs: map[uint64][]byte{}, pos: map[uint64]uint64{}, committed: seq, tail: start, resTail: start}
	m.p, err = q.Publisher()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// place returns where a record of n payload bytes goes at position p, and
// the position after it.
func (m *model) place(p uint64, n int) (at, end uint64) {
	size := layout.PubSubRecordSize(n)
	if room := m.cap - p&(m.cap-1); size > room {
		p += room
	}
	return p, p + size
}

func (m *model) newMsg(arg byte) []byte {
	n := 1 + int(arg)*7%m.max
	m.fill++
	b := bytes.Repeat([]byte{m.fill}, n)
	b[0] = byte(n)
	return b
}

// maxNeed bounds the bytes a reservation may claim past the tail, the
// slack of a lossy intent included: a lossy subscriber that lags less than
// the capacity minus this must never be overwritten.
func (m *model) maxNeed() uint64 {
	r := layout.PubSubRecordSize(m.max)
	return m.resTail - m.tail + 2*r + layout.PubSubRecordHeaderSize + layout.PubSubSlack(m.cap)
}

func (m *model) commitPending() {
	for _, b := range m.pending {
		at, end := m.place(m.tail, len(b))
		m.msgs[m.committed], m.pos[m.committed] = b, at
		m.committed++
		m.tail = end
	}
	m.pending = nil
	m.resTail = m.tail
}

// caughtUp reports whether every subscriber has released everything.
func (m *model) caughtUp() bool {
	for _, s := range m.subs {
		if s.head != m.committed {
			return false
		}
	}
	return true
}

func (m *model) send(arg byte) {
	b := m.newMsg(arg)
	err := m.p.TrySend(b)
	switch {
	case len(m.pending) > 0:
		if !errors.Is(err, ErrPending) {
			m.t.Fatalf("TrySend with reservations pending: %v", err)
		}
	case err == nil:
		m.pending = [][]byte{b}
		m.commitPending()
	case err == ErrFull && !m.lossy && !m.caughtUp():
	default:
		m.t.Fatalf("TrySend (lossy %v, subscribers caught up %v): %v", m.lossy, m.caughtUp(), err)
	}
}

func (m *model) reserve(arg byte) {
	b := m.newMsg(arg)
	r, err := m.p.Reserve(len(b))
	switch {
	case err == nil:
		copy(r, b)
		m.pending = append(m.pending, b)
		_, m.resTail = m.place(m.resTail, len(b))
	case err == ErrFull && (len(m.pending) > 0 || !m.lossy && !m.caughtUp()):
	default:
		m.t.Fatalf("Reserve: %v", err)
	}
}

// receive checks what subscriber k got for the message it expects next:
// msg and err from a receiving call.
func (m *model) receive(k int, got []byte, err error) bool {
	s := m.subs[k]
	want := s.head + s.peeked
	var le *LostError
	switch {
	case errors.As(err, &le):
		if !m.lossy {
			m.t.Fatalf("subscriber %d: loss in a back-pressure queue: %v", k, err)
		}
		lag := m.tail - m.posOf(s.head)
		if lag+m.maxNeed() <= m.cap {
			m.t.Fatalf("subscriber %d lagging %d bytes of %d reports %d lost", k, lag, m.cap, le.Count)
		}
		s.head += le.Count
		s.peeked, s.views = 0, nil
		if s.s.Seq() != s.head {
			m.t.Fatalf("subscriber %d: lost %d, expects %d, model %d", k, le.Count, s.s.Seq(), s.head)
		}
		return false
	case err == ErrEmpty:
		if want != m.committed {
			m.t.Fatalf("subscriber %d: empty, but message %d is committed", k, want)
		}
		return false
	case err != nil:
		m.t.Fatalf("subscriber %d: %v", k, err)
	}
	if want == m.committed {
		m.t.Fatalf("subscriber %d received %x past the last committed message", k, got)
	}
	if !bytes.Equal(got, m.msgs[want]) {
		m.t.Fatalf("subscriber %d: message %d is %x, want %x", k, want, got, m.msgs[want])
	}
	return true
}

// posOf returns the position of message seq, or the tail for the next one.
func (m *model) posOf(seq uint64) uint64 {
	if seq == m.committed {
		return m.tail
	}
	return m.pos[seq]
}

func (m *model) attach(arg byte) {
	from := Start(arg % 3)
	s, err := m.q.Subscriber(from)
	if errors.Is(err, ErrRegistryFull) {
		return
	}
	if err != nil {
		m.t.Fatal(err)
	}
	seq := s.Seq()
	ok := false
	switch from {
	case FromNext:
		ok = seq == m.committed
	case FromLatest:
		ok = seq == m.committed || seq == m.committed-1 && m.msgs[seq] != nil
	case FromOldest:
		ok = seq == m.committed || m.msgs[seq] != nil && m.tail-m.pos[seq] <= m.cap
	}
	if !ok {
		m.t.Fatalf("subscriber from %v starts at %d; committed up to %d", from, seq, m.committed)
	}
	m.subs = append(m.subs, &modelSub{s: s, head: seq})
}

func (m *model) step(op, arg byte) {
	k := int(arg) % max(len(m.subs), 1)
	var s *modelSub
	if len(m.subs) > 0 {
		s = m.subs[k]
	}
	buf := make([]byte, m.max)
	switch op % 12 {
	case 0, 1:
		if m.p != nil {
			m.send(arg)
		}
	case 2:
		if m.p != nil {
			m.reserve(arg)
		}
	case 3:
		if m.p != nil {
			m.p.Commit()
			m.commitPending()
		}
	case 4, 5:
		if s != nil {
			n, err := s.s.TryRecv(buf)
			if m.receive(k, buf[:n], err) {
				s.head += s.peeked + 1
				s.peeked, s.views = 0, nil
			}
		}
	case 6:
		if s != nil {
			v, err := s.s.Peek()
			if m.receive(k, v, err) {
				s.peeked++
				s.views = append(s.views, bytes.Clone(v))
			}
		}
	case 7:
		if s != nil {
			err := s.s.Release()
			if err != nil {
				m.receive(k, nil, err)
				break
			}
			s.head += s.peeked
			s.peeked, s.views = 0, nil
		}
	case 8:
		if s != nil {
			s.s.Rewind()
			s.peeked, s.views = 0, nil
		}
	case 9:
		if s != nil {
			got := 0
			n, err := s.s.TryRecvBatch(1+int(arg)%5, func(msg []byte) error {
				if !m.receive(k, msg, nil) {
					return errors.New("unexpected")
				}
				s.peeked++
				got++
				return nil
			})
			if n != got {
				m.t.Fatalf("TryRecvBatch says %d, handed out %d", n, got)
			}
			// The views peeked before go with the batch, released with its
			// first message (or at its end), or lost with it.
			if got > 0 || !errors.Is(err, ErrLost) {
				s.head += s.peeked
			}
			s.peeked, s.views = 0, nil
			if err != nil && err != ErrEmpty {
				m.receive(k, nil, err)
			}
		}
	case 10:
		if len(m.subs) < 4 {
			m.attach(arg)
		} else if s != nil {
			s.s.Close()
			m.subs = append(m.subs[:k], m.subs[k+1:]...)
		}
	case 11:
		if m.p != nil && arg%4 == 0 {
			m.p.Close()
			m.p, m.pending, m.resTail = nil, nil, m.tail
		} else if m.p == nil {
			p, err := m.q.Publisher()
			if err != nil {
				m.t.Fatal(err)
			}
			if p.Seq() != m.committed {
				m.t.Fatalf("new publisher continues at %d, want %d", p.Seq(), m.committed)
			}
			m.p = p
		}
	}
}

// drain receives everything left and checks it, then checks the totals.
func (m *model) drain() {
	if m.p != nil {
		m.p.Commit()
		m.commitPending()
	}
	buf := make([]byte, m.max)
	for k, s := range m.subs {
		s.s.Rewind()
		s.peeked, s.views = 0, nil
		for i := 0; ; i++ {
			n, err := s.s.TryRecv(buf)
			if err == ErrEmpty {
				if s.head != m.committed {
					m.t.Fatalf("subscriber %d: empty at %d, committed %d", k, s.head, m.committed)
				}
				break
			}
			if m.receive(k, buf[:n], err) {
				s.head++
			}
			if i > 1<<16 {
				m.t.Fatal("drain does not end")
			}
		}
	}
	m.q.Close()
}

// TestModel runs random programs of operations against the model, in both
// policies, with positions and sequence numbers started near 2^64 in some.
func TestModel(t *testing.T) {
	programs := 300
	if testing.Short() {
		programs = 60
	}
	if n, err := strconv.Atoi(os.Getenv("SHMQ_PUBSUB_PROGRAMS")); err == nil {
		programs = n
	}
	for i := range programs {
		r := rand.New(rand.NewPCG(uint64(i), 7))
		lossy := i%2 == 1
		capacity := uint64(64) << (i % 6)
		start, seq := uint64(0), uint64(0)
		if i%3 == 0 {
			start, seq = 0-3*capacity-16, ^uint64(0)-40
		}
		m := newModel(t, lossy, capacity, start, seq)
		for range 400 {
			m.step(byte(r.IntN(256)), byte(r.IntN(256)))
		}
		m.drain()
	}
}
