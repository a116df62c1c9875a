package fuzz

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/pubsub"
	"github.com/shmq/shmq/ring"
)

// psWatchdog crashes the fuzz process (so that the fuzzer records the
// input) when one operation runs longer than a limit: a hang is a failure,
// and a hung call cannot be interrupted any other way.
type psWatchdog struct {
	begun atomic.Int64 // UnixNano when the current operation started; 0 when none
	name  atomic.Pointer[string]
	stop  chan struct{}
}

func startPSWatchdog(limit time.Duration) *psWatchdog {
	w := &psWatchdog{stop: make(chan struct{})}
	go func() {
		tick := time.NewTicker(limit / 10)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case now := <-tick.C:
				if b := w.begun.Load(); b != 0 && now.UnixNano()-b > int64(limit) {
					panic(fmt.Sprintf("pubsub fuzz: %s did not return within %v", *w.name.Load(), limit))
				}
			}
		}
	}()
	return w
}

func (w *psWatchdog) op(name string) {
	w.name.Store(&name)
	w.begun.Store(time.Now().UnixNano())
}

func (w *psWatchdog) done() {
	w.begun.Store(0)
	close(w.stop)
}

// psSub is the model of one subscriber: the sequence number of the next
// message it releases, and how many it has peeked since.
type psSub struct {
	s            *pubsub.Subscriber
	head, peeked uint64
}

// psModel is a plain fan-out: the committed messages by sequence number.
type psModel struct {
	t         *testing.T
	q         *pubsub.Queue
	p         *pubsub.Publisher
	lossy     bool
	msgs      map[uint64][]byte
	committed uint64 // sequence number of the next message to commit
	pending   [][]byte
	subs      []*psSub
	fill      byte
}

// got checks what subscriber k received (msg, err) against the model and
// reports whether it was a message.
func (m *psModel) got(k int, msg []byte, err error) bool {
	s := m.subs[k]
	want := s.head + s.peeked
	var le *pubsub.LostError
	switch {
	case errors.As(err, &le):
		if !m.lossy || le.Count == 0 {
			m.t.Fatalf("subscriber %d: %v (lossy %v)", k, err, m.lossy)
		}
		s.head += le.Count
		s.peeked = 0
		if s.s.Seq() != s.head || int64(m.committed-s.head) < 0 {
			m.t.Fatalf("subscriber %d lost %d and expects %d; model %d, committed %d", k, le.Count, s.s.Seq(), s.head, m.committed)
		}
		return false
	case err == pubsub.ErrEmpty:
		if want != m.committed {
			m.t.Fatalf("subscriber %d empty at %d, committed up to %d", k, want, m.committed)
		}
		return false
	case err != nil:
		m.t.Fatalf("subscriber %d: %v", k, err)
	}
	if want == m.committed || !bytes.Equal(msg, m.msgs[want]) {
		m.t.Fatalf("subscriber %d: message %d is %x, want %x (committed up to %d)", k, want, msg, m.msgs[want], m.committed)
	}
	return true
}

func (m *psModel) behind() bool {
	for _, s := range m.subs {
		if s.head != m.committed {
			return true
		}
	}
	return false
}

func (m *psModel) newMsg(arg byte) []byte {
	m.fill++
	b := bytes.Repeat([]byte{m.fill}, 1+int(arg)*5%m.q.MaxMessage())
	b[0] = byte(len(b))
	return b
}

func (m *psModel) commit() {
	for _, b := range m.pending {
		m.msgs[m.committed] = b
		m.committed++
	}
	m.pending = nil
}

// FuzzPubSubOps interprets the input as operations on a small pub/sub
// queue with up to three subscribers and checks every message against a
// plain fan-out: under back-pressure nothing committed is lost,
// duplicated, reordered or altered for any subscriber; in a lossy queue
// every message is received whole or counted in a loss, and the counts
// are exact (the next message received is the one after the loss).
func FuzzPubSubOps(f *testing.F) {
	f.Add(uint8(0), []byte{0, 5, 9, 0, 0, 9, 4, 0, 4, 1, 5, 0, 2, 3, 3, 0, 6, 1, 7, 0})
	f.Add(uint8(1), []byte{9, 1, 0, 200, 0, 200, 0, 200, 0, 200, 0, 200, 4, 0, 5, 0, 6, 0})
	f.Add(uint8(0x13), []byte{9, 2, 1, 50, 1, 60, 2, 0, 8, 3, 4, 0, 4, 0})
	f.Fuzz(func(t *testing.T, cfg uint8, ops []byte) {
		lossy := cfg&1 != 0
		capacity := uint64(64) << (cfg >> 1 % 6)
		start, seq := uint64(0), uint64(0)
		if cfg&0x10 != 0 {
			start, seq = ^uint64(16*capacity-1), ^uint64(9)
		}
		q, err := pubsub.Create(ring.Memfd("fuzz"), pubsub.Config{Capacity: capacity, Lossy: lossy, Subscribers: 3,
			StartPosition: start, StartSeq: seq})
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		p, err := q.Publisher()
		if err != nil {
			t.Fatal(err)
		}
		m := &psModel{t: t, q: q, p: p, lossy: lossy, msgs: map[uint64][]byte{}, committed: seq}
		buf := make([]byte, q.MaxMessage())
		for i := 0; i+1 < len(ops) && i < 2000; i += 2 {
			op, arg := ops[i]%10, ops[i+1]
			var s *psSub
			k := 0
			if len(m.subs) > 0 {
				k = int(arg) % len(m.subs)
				s = m.subs[k]
			}
			switch {
			case op == 0 && m.p != nil: // TrySend
				b := m.newMsg(arg)
				err := m.p.TrySend(b)
				switch {
				case len(m.pending) > 0:
					if !errors.Is(err, pubsub.ErrPending) {
						t.Fatalf("TrySend with reservations: %v", err)
					}
				case err == nil:
					m.pending = [][]byte{b}
					m.commit()
				case err != pubsub.ErrFull || lossy || !m.behind():
					t.Fatalf("TrySend (lossy %v, a subscriber behind %v): %v", lossy, m.behind(), err)
				}
			case op == 1 && m.p != nil: // Reserve
				b := m.newMsg(arg)
				r, err := m.p.Reserve(len(b))
				if err == nil {
					copy(r, b)
					m.pending = append(m.pending, b)
				} else if err != pubsub.ErrFull || len(m.pending) == 0 && (lossy || !m.behind()) {
					t.Fatalf("Reserve: %v", err)
				}
			case op == 2 && m.p != nil: // Commit
				m.p.Commit()
				m.commit()
			case op == 3 && s != nil: // TryRecv
				n, err := s.s.TryRecv(buf)
				if m.got(k, buf[:n], err) {
					s.head += s.peeked + 1
					s.peeked = 0
				}
			case op == 4 && s != nil: // Peek
				v, err := s.s.Peek()
				if m.got(k, v, err) {
					s.peeked++
				}
			case op == 5 && s != nil: // Release
				if err := s.s.Release(); err != nil {
					m.got(k, nil, err)
				} else {
					s.head += s.peeked
					s.peeked = 0
				}
			case op == 6 && s != nil: // Rewind
				s.s.Rewind()
				s.peeked = 0
			case op == 7 && s != nil: // TryRecvBatch
				got := uint64(0)
				_, err := s.s.TryRecvBatch(1+int(arg)%4, func(msg []byte) error {
					if !m.got(k, msg, nil) {
						return errors.New("unexpected")
					}
					s.peeked++
					got++
					return nil
				})
				if got > 0 || !errors.Is(err, pubsub.ErrLost) {
					s.head += s.peeked
				}
				s.peeked = 0
				if err != nil && err != pubsub.ErrEmpty {
					m.got(k, nil, err)
				}
			case op == 8: // attach (FromNext: the model knows where) or close a subscriber
				if len(m.subs) < 3 && arg%2 == 0 {
					ns, err := q.Subscriber(pubsub.FromNext)
					if err != nil {
						t.Fatal(err)
					}
					if ns.Seq() != m.committed {
						t.Fatalf("FromNext subscriber starts at %d, want %d", ns.Seq(), m.committed)
					}
					m.subs = append(m.subs, &psSub{s: ns, head: m.committed})
				} else if s != nil {
					s.s.Close()
					m.subs = append(m.subs[:k], m.subs[k+1:]...)
				}
			case op == 9: // publisher close or takeover
				if m.p != nil {
					m.p.Close()
					m.p, m.pending = nil, nil
				} else if m.p, err = q.Publisher(); err != nil {
					t.Fatalf("new publisher: %v", err)
				} else if m.p.Seq() != m.committed {
					t.Fatalf("new publisher continues at %d, want %d", m.p.Seq(), m.committed)
				}
			}
		}
		if m.p != nil {
			m.p.Commit()
			m.commit()
		}
		for k, s := range m.subs {
			s.s.Rewind()
			s.peeked = 0
			for range 1 << 16 {
				n, err := s.s.TryRecv(buf)
				if err == pubsub.ErrEmpty {
					break
				}
				if m.got(k, buf[:n], err) {
					s.head++
				}
			}
			if s.head != m.committed {
				t.Fatalf("subscriber %d drained to %d, committed %d", k, s.head, m.committed)
			}
		}
	})
}

// FuzzPubSubCorruption writes attacker-chosen bytes into a live pub/sub
// segment between operations: the publisher's cursors, the subscribers'
// registry entries, the waiter sets, the ring, anywhere. Every call must
// return (a message or an expected error): no panic, no access outside the
// mapping, no hang.
func FuzzPubSubCorruption(f *testing.F) {
	f.Add([]byte{0, 0x00, 0x03, 0xff, 0x01, 0x05, 0x11, 0x02, 0x10, 0x40})
	f.Add([]byte{1, 0x01, 0x08, 0x80, 0x00, 0x10, 0x07, 0x03, 0x20, 0x00})
	f.Add([]byte{1, 0x00, 0x08, 0x01, 0x00, 0x10, 0x01, 0x00, 0x00, 0xf0})
	f.Fuzz(func(t *testing.T, input []byte) {
		if len(input) == 0 {
			return
		}
		lossy := input[0]&1 != 0
		q, err := pubsub.Create(ring.Memfd("fuzz"), pubsub.Config{Capacity: 512, Lossy: lossy, Subscribers: 3})
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		wd := startPSWatchdog(5 * time.Second)
		defer wd.done()
		p, _ := q.Publisher()
		s1, _ := q.Subscriber(pubsub.FromNext)
		s2, _ := q.Subscriber(pubsub.FromOldest)
		mem := q.Segment().Bytes()
		h := q.Segment().Header()
		buf := make([]byte, q.MaxMessage())
		expect := func(op string, err error) {
			wd.begun.Store(0)
			if err == nil || err == pubsub.ErrFull || err == pubsub.ErrEmpty {
				return
			}
			for _, ok := range []error{pubsub.ErrCorrupt, pubsub.ErrLost, pubsub.ErrShortBuffer, pubsub.ErrPending,
				pubsub.ErrRegistryFull, pubsub.ErrClosed, pubsub.ErrRoleTaken} {
				if errors.Is(err, ok) {
					return
				}
			}
			t.Fatalf("%s: %v", op, err)
		}
		for i := 1; i+2 < len(input); i += 3 {
			// Aim most writes at the words that matter.
			var off uint64
			switch input[i] % 6 {
			case 0:
				off = h.Producer + uint64(input[i+1]%32)
			case 1:
				off = h.Entry(1+int(input[i+1])%3) + layout.EntrySubPosition + uint64(input[i+1]/3%24)
			case 2:
				off = h.Data + uint64(input[i+1])*2
			case 3:
				off = h.Registry + uint64(input[i+1])*2
			case 4:
				off = h.Waiters + uint64(input[i+1])%(2*layout.LineSize)
			default:
				off = uint64(input[i+1]) * 16 % uint64(len(mem))
			}
			mem[off] = input[i+2]
			v := input[i+2]
			if p != nil {
				wd.op("TrySend")
				expect("TrySend", p.TrySend(buf[:1+int(v)%len(buf)]))
			}
			for _, s := range []*pubsub.Subscriber{s1, s2} {
				if s == nil {
					continue
				}
				wd.op("TryRecv")
				_, err := s.TryRecv(buf[:int(v)%len(buf)])
				expect("TryRecv", err)
				wd.op("Peek")
				_, err = s.Peek()
				expect("Peek", err)
				wd.op("Release")
				expect("Release", s.Release())
				wd.op("TryRecvBatch")
				_, err = s.TryRecvBatch(3, func([]byte) error { return nil })
				expect("TryRecvBatch", err)
			}
			switch v % 8 {
			case 0:
				wd.op("Subscriber")
				ns, err := q.Subscriber(pubsub.Start(v / 8 % 3))
				expect("Subscriber", err)
				if err == nil {
					wd.op("TryRecv new")
					_, err = ns.TryRecv(buf)
					expect("TryRecv new", err)
					ns.Close()
				}
			case 1:
				if p != nil {
					p.Close()
				}
				wd.op("Publisher")
				p, err = q.Publisher()
				expect("Publisher", err)
			case 2:
				wd.op("Stats")
				_, err := q.Stats()
				expect("Stats", err)
			}
		}
	})
}
