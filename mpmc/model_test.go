package mpmc

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// The model is the queue's sequential specification, position by position:
// a producer takes the position at the enqueue cursor if the slot's
// previous lap has been released; a consumer takes the position at the
// dequeue cursor if it is committed, skipping tombstones.
type modelSlot struct {
	msg   []byte
	state int // mReserved, mCommitted, mTomb, mHeld, mReleased
}

const (
	mReserved = iota + 1
	mCommitted
	mTomb
	mHeld
	mReleased
)

type model struct {
	cap      uint64
	start    uint64
	enq, deq uint64
	slots    map[uint64]*modelSlot
}

// canClaim: the previous lap of the slot was released, or is a tombstone,
// which the producer claims over (moving the dequeue cursor past it if no
// consumer has yet).
func (m *model) canClaim() bool {
	if m.enq-m.start < m.cap {
		return true
	}
	st := m.slots[m.enq-m.cap].state
	return st == mReleased || st == mTomb
}

func (m *model) claim(msg []byte, st int) uint64 {
	if m.enq-m.start >= m.cap {
		if prev := m.slots[m.enq-m.cap]; prev.state == mTomb {
			prev.state = mReleased
			if m.deq == m.enq-m.cap {
				m.deq++
			}
		}
	}
	m.slots[m.enq] = &modelSlot{msg: msg, state: st}
	delete(m.slots, m.enq-2*m.cap)
	m.enq++
	return m.enq - 1
}

// take returns the position of the next message, skipping tombstones, or
// false.
func (m *model) take() (uint64, bool) {
	for m.deq != m.enq {
		s := m.slots[m.deq]
		switch s.state {
		case mTomb:
			s.state = mReleased
			m.deq++
			continue
		case mCommitted:
			s.state = mHeld
			m.deq++
			return m.deq - 1, true
		}
		return 0, false
	}
	return 0, false
}

type modelProducer struct {
	p       *Producer
	pending []uint64
	bufs    [][]byte
}

type modelConsumer struct {
	c     *Consumer
	held  []uint64
	views [][]byte
}

func TestModel(t *testing.T) {
	iters := 300
	if testing.Short() {
		iters = 60
	}
	for _, slots := range []uint64{1, 2, 4} {
		for it := 0; it < iters; it++ {
			seed := uint64(it)*1000 + slots
			t.Run(fmt.Sprintf("slots=%d/seed=%d", slots, seed), func(t *testing.T) {
				runModel(t, slots, seed)
			})
			if t.Failed() {
				return
			}
		}
	}
}

func runModel(t *testing.T, slots, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	start := ^uint64(0) - uint64(rng.IntN(12))
	q := newTestQueue(t, Config{Slots: slots, SlotSize: 64, StartPosition: start, Registry: 8})
	m := &model{cap: slots, start: start, enq: start, deq: start, slots: map[uint64]*modelSlot{}}
	var ps []*modelProducer
	var cs []*modelConsumer
	for i := 0; i < 3; i++ {
		ps = append(ps, &modelProducer{p: mustProducer(t, q)})
		cs = append(cs, &modelConsumer{c: mustConsumer(t, q)})
	}
	buf := make([]byte, 64)
	counter := 0
	nextMsg := func() []byte {
		counter++
		return []byte(fmt.Sprintf("%d-%s", counter, bytes.Repeat([]byte{'x'}, rng.IntN(30))))
	}
	for step := 0; step < 200; step++ {
		op := rng.IntN(10)
		pp := ps[rng.IntN(len(ps))]
		cc := cs[rng.IntN(len(cs))]
		switch op {
		case 0, 1, 2: // TrySend
			msg := nextMsg()
			err := pp.p.TrySend(msg)
			switch {
			case len(pp.pending) > 0:
				if !errors.Is(err, ErrPending) {
					t.Fatalf("step %d: TrySend with pending: %v", step, err)
				}
			case m.canClaim():
				if err != nil {
					t.Fatalf("step %d: TrySend: %v", step, err)
				}
				m.claim(msg, mCommitted)
			default:
				if err != ErrFull {
					t.Fatalf("step %d: TrySend on full: %v", step, err)
				}
			}
		case 3: // Reserve
			msg := nextMsg()
			b, err := pp.p.Reserve(len(msg))
			if m.canClaim() {
				if err != nil {
					t.Fatalf("step %d: Reserve: %v", step, err)
				}
				copy(b, msg)
				pp.pending = append(pp.pending, m.claim(msg, mReserved))
				pp.bufs = append(pp.bufs, b)
			} else if err != ErrFull {
				t.Fatalf("step %d: Reserve on full: %v", step, err)
			}
		case 4: // Commit
			if err := pp.p.Commit(); err != nil {
				t.Fatalf("step %d: Commit: %v", step, err)
			}
			for _, pos := range pp.pending {
				m.slots[pos].state = mCommitted
			}
			pp.pending, pp.bufs = nil, nil
		case 5, 6: // TryRecv, which releases what this consumer peeked first
			n, err := cc.c.TryRecv(buf)
			for _, pos := range cc.held {
				m.slots[pos].state = mReleased
			}
			cc.held, cc.views = nil, nil
			pos, ok := m.take()
			if !ok {
				if err != ErrEmpty {
					t.Fatalf("step %d: TryRecv on empty: %d %v", step, n, err)
				}
				break
			}
			m.slots[pos].state = mReleased
			if err != nil || !bytes.Equal(buf[:n], m.slots[pos].msg) {
				t.Fatalf("step %d: TryRecv got %q %v, want %q", step, buf[:n], err, m.slots[pos].msg)
			}
		case 7: // Peek
			v, err := cc.c.Peek()
			pos, ok := m.take()
			if !ok {
				if err != ErrEmpty {
					t.Fatalf("step %d: Peek on empty: %v", step, err)
				}
				break
			}
			if err != nil || !bytes.Equal(v, m.slots[pos].msg) {
				t.Fatalf("step %d: Peek got %q %v, want %q", step, v, err, m.slots[pos].msg)
			}
			cc.held = append(cc.held, pos)
			cc.views = append(cc.views, v)
		case 8: // Release, after checking held views are intact
			for i, pos := range cc.held {
				if !bytes.Equal(cc.views[i], m.slots[pos].msg) {
					t.Fatalf("step %d: held view changed to %q, want %q", step, cc.views[i], m.slots[pos].msg)
				}
				m.slots[pos].state = mReleased
			}
			if err := cc.c.Release(); err != nil {
				t.Fatal(err)
			}
			cc.held, cc.views = nil, nil
		case 9: // close a producer (pending reservations become tombstones) and replace it
			if rng.IntN(4) != 0 {
				break
			}
			for _, pos := range pp.pending {
				m.slots[pos].state = mTomb
			}
			if err := pp.p.Close(); err != nil {
				t.Fatal(err)
			}
			*pp = modelProducer{p: mustProducer(t, q)}
		}
		st, err := q.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.Tail != m.enq || st.Head != m.deq {
			t.Fatalf("step %d: cursors %d/%d, model %d/%d", step, st.Head, st.Tail, m.deq, m.enq)
		}
	}
}
