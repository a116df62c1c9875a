package mpmc

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/shmq/shmq/layout"
)

// isExpected reports whether err is one a call on a queue with garbage in
// it may return: success, a retryable condition, or corruption.
func isExpected(err error) bool {
	return err == nil || err == ErrFull || err == ErrEmpty || errors.Is(err, ErrCorrupt) ||
		errors.Is(err, ErrShortBuffer) || errors.Is(err, ErrPending)
}

func TestCorruptCursors(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(q *Queue)
		send bool // the send (rather than the receive) must fail
	}{
		{"enqueue ahead by more than a lap", func(q *Queue) { q.enq.Add(q.Slots() + 1) }, true},
		{"enqueue behind released slots", func(q *Queue) { q.enq.Store(q.deq.Load() - 1) }, true},
		{"dequeue ahead by more than a lap", func(q *Queue) { q.deq.Add(q.Slots() + 1) }, false},
		{"dequeue behind", func(q *Queue) { q.deq.Add(^uint64(0) - 1) }, false},
		{"dequeue garbage", func(q *Queue) { q.deq.Store(0x123456789) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newTestQueue(t, Config{Slots: 4, SlotSize: 64})
			p, c := mustProducer(t, q), mustConsumer(t, q)
			for i := 0; i < 3; i++ {
				if err := p.TrySend([]byte{byte(i)}); err != nil {
					t.Fatal(err)
				}
			}
			buf := make([]byte, 64)
			if _, err := c.TryRecv(buf); err != nil {
				t.Fatal(err)
			}
			tc.set(q)
			var err error
			if tc.send {
				err = p.TrySend([]byte("x"))
			} else {
				_, err = c.TryRecv(buf)
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestCorruptSlots(t *testing.T) {
	q := newTestQueue(t, Config{Slots: 4, SlotSize: 64, Registry: 4})
	p, c := mustProducer(t, q), mustConsumer(t, q)
	buf := make([]byte, 64)
	// A full slot whose length exceeds the maximum.
	if err := p.TrySend([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	le32put(q.data[q.slot(0)+layout.SlotLength:], 49)
	if _, err := c.TryRecv(buf); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("oversized length: %v", err)
	}
	// A slot claimed by an owner outside the registry.
	q.seqs[1].Store(layout.SeqWord(1, layout.SlotWriting, 9))
	if _, err := c.TryRecv(buf); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("owner outside registry: %v", err)
	}
	// A word naming a position of another slot.
	q.seqs[1].Store(layout.SeqWord(2, layout.SlotFull, 0))
	if _, err := c.TryRecv(buf); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("misplaced position: %v", err)
	}
	// A producer's claimed slot overwritten before Commit.
	q.seqs[1].Store(layout.SeqWord(1, layout.SlotEmpty, 0))
	if _, err := p.Reserve(3); err != nil {
		t.Fatal(err)
	}
	q.seqs[1].Store(layout.SeqWord(1, layout.SlotFull, 3))
	if err := p.Commit(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("commit of a stolen slot: %v", err)
	}
}

// TestGarbage fills cursors and slot headers with random values and runs
// every operation: each call must return promptly with success, ErrFull,
// ErrEmpty or an error wrapping ErrCorrupt, and never panic.
func TestGarbage(t *testing.T) {
	iters := 300
	if testing.Short() {
		iters = 60
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for it := 0; it < iters; it++ {
		slots := uint64(1) << rng.IntN(4)
		q := newTestQueue(t, Config{Slots: slots, SlotSize: 64, Registry: 4})
		p, c := mustProducer(t, q), mustConsumer(t, q)
		for i := 0; i < rng.IntN(6); i++ {
			p.TrySend([]byte{1, 2, 3})
		}
		// Plausible garbage: small perturbations of real values, so that
		// some operations get deep into the protocol before failing.
		word := func(real uint64) uint64 {
			switch rng.IntN(4) {
			case 0:
				return rng.Uint64()
			case 1:
				return real + uint64(rng.IntN(9)) - 4
			case 2:
				return real + uint64(rng.IntN(9)-4)<<layout.SeqRankShift + uint64(rng.IntN(6))
			}
			return real
		}
		q.enq.Store(word(q.enq.Load()))
		q.deq.Store(word(q.deq.Load()))
		for i := range q.seqs {
			q.seqs[i].Store(word(q.seqs[i].Load()))
			if rng.IntN(3) == 0 {
				le32put(q.data[uint64(i)*q.slotSize+layout.SlotLength:], uint32(rng.IntN(80)))
			}
		}
		buf := make([]byte, 64)
		begin := time.Now()
		for k := 0; k < 20; k++ {
			var err error
			switch rng.IntN(6) {
			case 0:
				err = p.TrySend([]byte("hello"))
			case 1:
				_, err = c.TryRecv(buf)
			case 2:
				if _, err = p.Reserve(5); err == nil {
					err = p.Commit()
				}
			case 3:
				if _, err = c.Peek(); err == nil {
					err = c.Release()
				}
			case 4:
				_, err = c.TryRecvBatch(3, func([]byte) error { return nil })
			case 5:
				_, err = q.Stats()
			}
			if !isExpected(err) {
				t.Fatalf("iteration %d: unexpected error %v", it, err)
			}
		}
		if d := time.Since(begin); d > 5*time.Second {
			t.Fatalf("iteration %d: 20 calls took %v", it, d)
		}
		// Attaching scans the slots for stale claims.
		if p2, err := q.Producer(); err == nil {
			p2.Close()
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("attach: %v", err)
		}
		q.Close()
	}
}
