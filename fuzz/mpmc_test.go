package fuzz

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/mpmc"
	"github.com/shmq/shmq/ring"
)

// expired returns a context that has already ended: a blocking call given
// it either succeeds at once or fails with its error.
func expired() context.Context {
	ctx, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
	cancel()
	return ctx
}

func isCtxErr(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// MPMC model: the state of every position handed out so far.
const (
	mReserved = iota
	mCommitted
	mTomb  // reserved, then its producer closed: consumers skip it
	mTaken // taken by a consumer (peeked, stashed), not yet released
	mReleased
	mOrphan // stashed by a consumer that closed: a producer requeues it a lap later
)

type mpmcPos struct {
	state int
	msg   []byte
}

type mpmcModel struct {
	slots, start, enq, deq uint64
	pos                    map[uint64]*mpmcPos
}

// canClaim: the slot of the next position is free once the message of the
// previous lap in it was released, or is a tombstone (or on the first lap).
// A producer that finds an orphaned message there (see Consumer.Close)
// first requeues it at the next position, as committed, and looks again.
func (m *mpmcModel) canClaim() bool {
	for {
		if m.enq-m.start < m.slots {
			return true
		}
		prev := m.pos[m.enq-m.slots]
		if prev.state != mOrphan {
			return prev.state == mReleased || prev.state == mTomb
		}
		prev.state = mReleased
		m.pos[m.enq] = &mpmcPos{state: mCommitted, msg: prev.msg}
		m.enq++
	}
}

// claim takes the next position; a producer claims straight over the
// previous lap's tombstone, moving the dequeue cursor past it first.
func (m *mpmcModel) claim(msg []byte, st int) uint64 {
	if m.enq-m.start >= m.slots {
		if prev := m.pos[m.enq-m.slots]; prev.state == mTomb {
			prev.state = mReleased
			if m.deq == m.enq-m.slots {
				m.deq++
			}
		}
	}
	p := m.enq
	m.pos[p] = &mpmcPos{state: st, msg: msg}
	m.enq++
	return p
}

// take returns the next committed position, skipping tombstones; a
// reservation at the head holds back everything after it.
func (m *mpmcModel) take() (uint64, bool) {
	for m.deq != m.enq {
		s := m.pos[m.deq]
		switch s.state {
		case mCommitted:
			s.state = mTaken
			m.deq++
			return m.deq - 1, true
		case mTomb:
			s.state = mReleased
			m.deq++
		default:
			return 0, false
		}
	}
	return 0, false
}

type fuzzProducer struct {
	p       *mpmc.Producer
	q       *mpmc.Queue
	pending []uint64
}

type fuzzConsumer struct {
	c        *mpmc.Consumer
	q        *mpmc.Queue
	held     []uint64
	views    [][]byte
	stashed  bool
	stashPos uint64
}

// next is the model of the consumer's next message: the stashed one, or
// the next one taken.
// releaseHeld marks the messages fc peeked released, as TryRecv and Recv
// release them before taking the next one.
func (fc *fuzzConsumer) releaseHeld(m *mpmcModel) {
	for _, pos := range fc.held {
		m.pos[pos].state = mReleased
	}
	fc.held, fc.views = nil, nil
}

func (fc *fuzzConsumer) next(m *mpmcModel) (uint64, bool) {
	if fc.stashed {
		fc.stashed = false
		return fc.stashPos, true
	}
	return m.take()
}

// FuzzMPMCOps interprets the input as a sequence of operations on a tiny
// queue (1 to 8 slots, cursors started just below 2^64 so they wrap), with
// three producers and three consumers on two mappings, all in one
// goroutine, and checks every result, every delivered message and both
// cursors against a position-by-position model of a FIFO: messages come
// out exactly once, in commit order; reservations hold back later
// messages; a closed producer's reservations are skipped. At the end every
// reservation is committed and the queue is drained.
func FuzzMPMCOps(f *testing.F) {
	f.Add(uint8(0), uint8(0), []byte{0, 5, 1, 0, 0, 9, 1, 0, 1, 0})
	f.Add(uint8(2), uint8(3), []byte{2, 10, 15, 11, 3, 0, 4, 0, 4, 0, 5, 0, 1, 0, 1, 0})
	f.Add(uint8(3), uint8(7), []byte{6, 3, 6, 3, 6, 3, 7, 3, 7, 0x43, 1, 0x85, 1, 0, 8, 0, 9, 0, 10, 9, 11, 0, 12, 2})
	f.Add(uint8(1), uint8(1), []byte{2, 1, 2, 2, 8, 0, 1, 0, 0, 254, 0, 255, 10, 1, 11, 1})
	f.Fuzz(func(t *testing.T, slotsLog, back uint8, ops []byte) {
		if len(ops) > 2000 {
			ops = ops[:2000]
		}
		slots := uint64(1) << (slotsLog % 4)
		start := ^uint64(0) - uint64(back%32)
		q, err := mpmc.Create(ring.Memfd("fuzz-mpmc"), mpmc.Config{Slots: slots, SlotSize: 64, Registry: 8, StartPosition: start})
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		q2, err := mpmc.Open(context.Background(), ring.FD(q.Segment().Fd()), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer q2.Close()
		wd := startWatchdog(mpmcState(q))
		defer wd.done()

		maxMsg := q.MaxMessage()
		m := &mpmcModel{slots: slots, start: start, enq: start, deq: start, pos: map[uint64]*mpmcPos{}}
		var ps []*fuzzProducer
		var cs []*fuzzConsumer
		newProducer := func(qq *mpmc.Queue) *fuzzProducer {
			p, err := qq.Producer()
			if err != nil {
				t.Fatal(err)
			}
			return &fuzzProducer{p: p, q: qq}
		}
		newConsumer := func(qq *mpmc.Queue) *fuzzConsumer {
			c, err := qq.Consumer()
			if err != nil {
				t.Fatal(err)
			}
			return &fuzzConsumer{c: c, q: qq}
		}
		for i := 0; i < 3; i++ {
			qq := []*mpmc.Queue{q, q2}[i%2]
			ps = append(ps, newProducer(qq))
			cs = append(cs, newConsumer(qq))
		}
		counter := 0
		// newMsg returns a message of a size chosen by arg: 1 to maxMsg
		// bytes, or (254, 255) an empty or oversized one.
		newMsg := func(arg byte) []byte {
			n := 1 + int(arg)%maxMsg
			switch arg {
			case 254:
				n = 0
			case 255:
				n = maxMsg + 1
			}
			counter++
			msg := make([]byte, n)
			for i := range msg {
				msg[i] = byte(counter*7 + i)
			}
			if n >= 2 {
				binary.LittleEndian.PutUint16(msg, uint16(counter))
			}
			return msg
		}
		validSize := func(msg []byte) bool { return len(msg) > 0 && len(msg) <= maxMsg }
		buf := make([]byte, maxMsg)
		errReject := errors.New("rejected")

		checkViews := func(step int, fc *fuzzConsumer) {
			for i, pos := range fc.held {
				if !bytes.Equal(fc.views[i], m.pos[pos].msg) {
					t.Fatalf("step %d: peeked view changed to %x, want %x", step, fc.views[i], m.pos[pos].msg)
				}
			}
		}
		// trySend is the model of one message sent by a producer with no
		// reservations: it reports the error the queue must return.
		trySend := func(msg []byte) error {
			if !validSize(msg) {
				return mpmc.ErrMessageSize
			}
			if !m.canClaim() {
				return mpmc.ErrFull
			}
			m.claim(msg, mCommitted)
			return nil
		}
		sameErr := func(got, want error) bool {
			if want == nil || got == nil {
				return got == want
			}
			return errors.Is(got, want)
		}

		for i := 0; i+1 < len(ops); i += 2 {
			step := i / 2
			wd.at(step)
			op, arg := ops[i]%13, ops[i+1]
			fp := ps[int(ops[i]/13)%len(ps)]
			fc := cs[int(ops[i]/13)%len(cs)]
			switch op {
			case 0: // TrySend
				msg := newMsg(arg)
				wd.op("TrySend")
				err := fp.p.TrySend(msg)
				want := mpmc.ErrPending
				if len(fp.pending) == 0 {
					want = trySend(msg)
				}
				if !sameErr(err, want) {
					t.Fatalf("step %d: TrySend: %v, want %v", step, err, want)
				}
			case 1: // TryRecv, into a short buffer when arg says so
				b := buf
				if arg&0x80 != 0 {
					b = buf[:int(arg)%8]
				}
				wd.op("TryRecv")
				n, err := fc.c.TryRecv(b)
				fc.releaseHeld(m) // TryRecv releases what was peeked first
				pos, ok := fc.next(m)
				switch {
				case !ok:
					if err != mpmc.ErrEmpty {
						t.Fatalf("step %d: TryRecv on empty: %d %v", step, n, err)
					}
				case len(m.pos[pos].msg) > len(b):
					if !errors.Is(err, mpmc.ErrShortBuffer) {
						t.Fatalf("step %d: TryRecv of %d bytes into %d: %d %v", step, len(m.pos[pos].msg), len(b), n, err)
					}
					fc.stashed, fc.stashPos = true, pos
				default:
					if err != nil || !bytes.Equal(b[:n], m.pos[pos].msg) {
						t.Fatalf("step %d: TryRecv: %x %v, want %x", step, b[:n], err, m.pos[pos].msg)
					}
					m.pos[pos].state = mReleased
				}
			case 2: // Reserve
				msg := newMsg(arg)
				wd.op("Reserve")
				b, err := fp.p.Reserve(len(msg))
				switch {
				case !validSize(msg):
					if !errors.Is(err, mpmc.ErrMessageSize) {
						t.Fatalf("step %d: Reserve(%d): %v", step, len(msg), err)
					}
				case m.canClaim():
					if err != nil || len(b) != len(msg) {
						t.Fatalf("step %d: Reserve(%d): %d bytes, %v", step, len(msg), len(b), err)
					}
					copy(b, msg)
					fp.pending = append(fp.pending, m.claim(msg, mReserved))
				default:
					if err != mpmc.ErrFull {
						t.Fatalf("step %d: Reserve on full: %v", step, err)
					}
				}
			case 3: // Commit
				wd.op("Commit")
				if err := fp.p.Commit(); err != nil {
					t.Fatalf("step %d: Commit: %v", step, err)
				}
				for _, pos := range fp.pending {
					m.pos[pos].state = mCommitted
				}
				fp.pending = nil
			case 4: // Peek
				wd.op("Peek")
				v, err := fc.c.Peek()
				pos, ok := fc.next(m)
				if !ok {
					if err != mpmc.ErrEmpty {
						t.Fatalf("step %d: Peek on empty: %v", step, err)
					}
					break
				}
				if err != nil || !bytes.Equal(v, m.pos[pos].msg) {
					t.Fatalf("step %d: Peek: %x %v, want %x", step, v, err, m.pos[pos].msg)
				}
				fc.held = append(fc.held, pos)
				fc.views = append(fc.views, v)
			case 5: // Release
				checkViews(step, fc)
				wd.op("Release")
				if err := fc.c.Release(); err != nil {
					t.Fatalf("step %d: Release: %v", step, err)
				}
				for _, pos := range fc.held {
					m.pos[pos].state = mReleased
				}
				fc.held, fc.views = nil, nil
			case 6: // TrySendBatch of 1 to 4
				var msgs [][]byte
				for k := 0; k <= int(arg)%4; k++ {
					msgs = append(msgs, newMsg(arg/4+byte(k)))
				}
				wd.op("TrySendBatch")
				n, err := fp.p.TrySendBatch(msgs)
				wantN, want := 0, error(mpmc.ErrPending)
				if len(fp.pending) == 0 {
					for want = nil; wantN < len(msgs) && want == nil; wantN++ {
						if want = trySend(msgs[wantN]); want != nil {
							break
						}
					}
				}
				if n != wantN || !sameErr(err, want) {
					t.Fatalf("step %d: TrySendBatch of %d: %d %v, want %d %v", step, len(msgs), n, err, wantN, want)
				}
			case 7: // TryRecvBatch of up to 1+arg%4, rejecting message arg/4%8
				max, reject := 1+int(arg)%4, int(arg/4)%8
				var got [][]byte
				wd.op("TryRecvBatch")
				n, err := fc.c.TryRecvBatch(max, func(msg []byte) error {
					got = append(got, append([]byte(nil), msg...))
					if len(got)-1 == reject {
						return errReject
					}
					return nil
				})
				var want [][]byte
				wantN, wantErr := 0, error(nil)
				for len(want) < max {
					pos, ok := fc.next(m)
					if !ok {
						if len(want) == 0 {
							wantErr = mpmc.ErrEmpty
						}
						break
					}
					want = append(want, m.pos[pos].msg)
					if len(want)-1 == reject {
						fc.stashed, fc.stashPos = true, pos
						wantErr = errReject
						break
					}
					m.pos[pos].state = mReleased
					wantN++
				}
				if n != wantN || err != wantErr || len(got) != len(want) {
					t.Fatalf("step %d: TryRecvBatch(%d) rejecting #%d: %d %v, %d messages; want %d %v, %d messages",
						step, max, reject, n, err, len(got), wantN, wantErr, len(want))
				}
				for k := range got {
					if !bytes.Equal(got[k], want[k]) {
						t.Fatalf("step %d: TryRecvBatch message %d: %x, want %x", step, k, got[k], want[k])
					}
				}
			case 8: // Send, with a context that has already ended
				msg := newMsg(arg)
				wd.op("Send")
				err := fp.p.Send(expired(), msg)
				want := mpmc.ErrPending
				if len(fp.pending) == 0 {
					want = trySend(msg)
				}
				if want == mpmc.ErrFull {
					if !isCtxErr(err) {
						t.Fatalf("step %d: Send on full: %v", step, err)
					}
				} else if !sameErr(err, want) {
					t.Fatalf("step %d: Send: %v, want %v", step, err, want)
				}
			case 9: // Recv, with a context that has already ended
				wd.op("Recv")
				n, err := fc.c.Recv(expired(), buf)
				fc.releaseHeld(m) // so does Recv
				pos, ok := fc.next(m)
				if !ok {
					if !isCtxErr(err) {
						t.Fatalf("step %d: Recv on empty: %d %v", step, n, err)
					}
					break
				}
				if err != nil || !bytes.Equal(buf[:n], m.pos[pos].msg) {
					t.Fatalf("step %d: Recv: %x %v, want %x", step, buf[:n], err, m.pos[pos].msg)
				}
				m.pos[pos].state = mReleased
			case 10: // SendBatch of 1 to 4 valid messages, with an ended context
				var msgs [][]byte
				for k := 0; k <= int(arg)%4; k++ {
					msgs = append(msgs, newMsg(byte(k)))
				}
				wd.op("SendBatch")
				err := fp.p.SendBatch(expired(), msgs)
				switch {
				case len(fp.pending) > 0:
					if !errors.Is(err, mpmc.ErrPending) {
						t.Fatalf("step %d: SendBatch with reservations: %v", step, err)
					}
				default:
					var want error
					for _, msg := range msgs {
						if want = trySend(msg); want != nil {
							break
						}
					}
					if want == nil && err != nil || want != nil && !isCtxErr(err) {
						t.Fatalf("step %d: SendBatch of %d: %v, model %v", step, len(msgs), err, want)
					}
				}
			case 11: // close a producer (its reservations become tombstones) and attach another
				wd.op("Producer.Close")
				if err := fp.p.Close(); err != nil {
					t.Fatalf("step %d: Producer.Close: %v", step, err)
				}
				for _, pos := range fp.pending {
					m.pos[pos].state = mTomb
				}
				*fp = *newProducer([]*mpmc.Queue{q, q2}[arg%2])
			case 12: // close a consumer (held messages count as consumed, a stashed one is orphaned) and attach another
				checkViews(step, fc)
				wd.op("Consumer.Close")
				if err := fc.c.Close(); err != nil {
					t.Fatalf("step %d: Consumer.Close: %v", step, err)
				}
				for _, pos := range fc.held {
					m.pos[pos].state = mReleased
				}
				if fc.stashed {
					m.pos[fc.stashPos].state = mOrphan
				}
				*fc = *newConsumer([]*mpmc.Queue{q, q2}[arg%2])
			}
			wd.end()
			st, err := q.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if st.Tail != m.enq || st.Head != m.deq {
				t.Fatalf("step %d (op %d): cursors head %d tail %d, model %d %d", step, op, st.Head, st.Tail, m.deq, m.enq)
			}
		}

		// Commit every reservation, close every consumer (what they hold
		// counts as consumed; what they stashed is orphaned), and drain
		// with a new one: exactly the committed messages not yet consumed
		// come out, in order. Orphaned messages wait for a producer's next
		// lap.
		for _, fp := range ps {
			wd.op("final Commit")
			if err := fp.p.Commit(); err != nil {
				t.Fatalf("final Commit: %v", err)
			}
			for _, pos := range fp.pending {
				m.pos[pos].state = mCommitted
			}
			fp.pending = nil
		}
		for _, fc := range cs {
			checkViews(-1, fc)
			wd.op("final Consumer.Close")
			if err := fc.c.Close(); err != nil {
				t.Fatalf("final Consumer.Close: %v", err)
			}
			for _, pos := range fc.held {
				m.pos[pos].state = mReleased
			}
			if fc.stashed {
				m.pos[fc.stashPos].state = mOrphan
			}
		}
		drain := newConsumer(q2)
		for {
			wd.op("drain TryRecv")
			n, err := drain.c.TryRecv(buf)
			pos, ok := m.take()
			if !ok {
				if err != mpmc.ErrEmpty {
					t.Fatalf("drain: extra message %x, %v", buf[:n], err)
				}
				break
			}
			if err != nil || !bytes.Equal(buf[:n], m.pos[pos].msg) {
				t.Fatalf("drain: %x %v, want %x", buf[:n], err, m.pos[pos].msg)
			}
			m.pos[pos].state = mReleased
		}
		for pos, s := range m.pos {
			if s.state != mReleased && s.state != mOrphan {
				t.Fatalf("position %d left in state %d after the drain", pos, s.state)
			}
		}
		wd.end()
	})
}

// FuzzMPMCCorruption writes attacker-chosen bytes anywhere in a live MPMC
// segment (cursors, slot sequence words, lengths, payloads, wake lines,
// registry, header) between operations, with reservations and peeked
// messages outstanding. Every call must return data or an expected error
// (ErrFull, ErrEmpty, ErrCorrupt, ErrShortBuffer, ErrPending, or the
// context's error for the blocking calls): no panic, no access outside the
// mapping, and no call may hang (spin for a second of CPU time or block
// for 20 s: see watchdog).
//
// The input is a sequence of 4-byte records: where to write, an offset,
// the value, and which operation to run next.
func FuzzMPMCCorruption(f *testing.F) {
	f.Add(uint8(2), []byte{0, 3, 0xff, 0, 1, 0, 0x10, 1, 2, 8, 0x40, 2, 3, 0, 0x07, 4})
	f.Add(uint8(0), []byte{4, 0, 0x03, 2, 4, 1, 0x41, 4, 2, 9, 0xff, 1, 7, 0, 0x80, 9})
	f.Add(uint8(3), []byte{5, 2, 0, 2, 5, 3, 1, 3, 6, 12, 0x33, 6, 7, 200, 0x01, 8, 3, 16, 0x55, 10})
	f.Fuzz(func(t *testing.T, slotsLog uint8, input []byte) {
		if len(input) > 4000 {
			input = input[:4000]
		}
		slots := uint64(1) << (slotsLog % 4)
		start := ^uint64(0) - uint64(slotsLog>>2)
		q, err := mpmc.Create(ring.Memfd("fuzz-mpmc"), mpmc.Config{Slots: slots, SlotSize: 64, Registry: 8, StartPosition: start})
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		q2, err := mpmc.Open(context.Background(), ring.FD(q.Segment().Fd()), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer q2.Close()
		wd := startWatchdog(mpmcState(q))
		defer wd.done()

		qs := []*mpmc.Queue{q, q2}
		var ps []*mpmc.Producer
		var cs []*mpmc.Consumer
		for _, qq := range qs {
			p, err := qq.Producer()
			if err != nil {
				t.Fatal(err)
			}
			c, err := qq.Consumer()
			if err != nil {
				t.Fatal(err)
			}
			ps, cs = append(ps, p), append(cs, c)
		}
		// Start with some traffic, a reservation and a peeked message.
		for i := 0; i < int(slots); i++ {
			ps[i%2].TrySend([]byte{byte(i), 1, 2, 3})
		}
		cs[1].Peek()
		ps[1].Reserve(5)

		mem := q.Segment().Bytes()
		hdr := q.Segment().Header()
		slotSize := uint64(q.SlotSize())
		maxMsg := q.MaxMessage()
		buf := make([]byte, maxMsg)
		u64 := func(off uint64) uint64 { return binary.LittleEndian.Uint64(mem[off:]) }
		put64 := func(off, v uint64) { binary.LittleEndian.PutUint64(mem[off:], v) }
		check := func(what string, err error) {
			if err != nil && !expectedMPMC(err) {
				t.Fatalf("%s: unexpected error %v", what, err)
			}
		}
		for i := 0; i+3 < len(input); i += 4 {
			wd.at(i / 4)
			where, off, val, opsel := input[i], uint64(input[i+1]), input[i+2], input[i+3]
			slot := hdr.Data + off%slots*slotSize
			switch where % 8 {
			case 0: // a cursor byte
				mem[[]uint64{hdr.Producer, hdr.Consumer}[off&1]+layout.CursorPosition+off/2%8] = val
			case 1: // a byte of a slot header: sequence word, length, producer
				mem[slot+off/slots%layout.SlotHeaderSize] = val
			case 2: // a plausible sequence word: a position near a cursor, any state and owner
				cur := u64([]uint64{hdr.Producer, hdr.Consumer}[val&1] + layout.CursorPosition)
				pos := cur + uint64(int64(int8(val))>>1)
				st, owner := uint32(opsel>>6), uint32(off>>5)
				put64(hdr.Data+pos%slots*slotSize+layout.SlotSeq, layout.SeqWord(pos, st, owner))
			case 3: // a cursor moved by a small amount
				c := []uint64{hdr.Producer, hdr.Consumer}[off&1] + layout.CursorPosition
				put64(c, u64(c)+uint64(int64(int8(val))))
			case 4: // a length word: small or huge
				binary.LittleEndian.PutUint32(mem[slot+layout.SlotLength:], uint32(val)<<(off%4*8))
			case 5: // a payload byte
				mem[hdr.Data+(off*7+uint64(val))%hdr.DataSize] = val
			case 6: // wake lines and registry
				lo := min(hdr.ProducerWake, hdr.ConsumerWake, hdr.Registry)
				end := hdr.Registry + uint64(hdr.RegistryCount)*uint64(hdr.EntrySize)
				mem[lo+(off*31+uint64(val))%(end-lo)] = val
			default: // anywhere, the header included
				mem[(off<<8|uint64(val))*13%uint64(len(mem))] = val
			}

			p, c := ps[int(opsel>>4)%2], cs[int(opsel>>5)%2]
			switch opsel % 11 {
			case 0:
				wd.op("TrySend")
				check("TrySend", p.TrySend(buf[:1+int(val)%maxMsg]))
			case 1:
				b := buf
				if val&0x80 != 0 {
					b = buf[:val%8]
				}
				wd.op("TryRecv")
				n, err := c.TryRecv(b)
				check("TryRecv", err)
				if n > len(b) {
					t.Fatalf("TryRecv returned %d bytes into %d", n, len(b))
				}
			case 2:
				wd.op("Reserve")
				v, err := p.Reserve(1 + int(val)%maxMsg)
				check("Reserve", err)
				for k := range v {
					v[k] = val
				}
				if val&1 == 0 {
					check("Commit", p.Commit())
				}
			case 3:
				wd.op("Commit")
				check("Commit", p.Commit())
			case 4:
				wd.op("Peek")
				v, err := c.Peek()
				check("Peek", err)
				if len(v) > maxMsg {
					t.Fatalf("Peek returned %d bytes, more than %d", len(v), maxMsg)
				}
				for k := range v {
					buf[0] ^= v[k]
				}
			case 5:
				wd.op("Release")
				check("Release", c.Release())
			case 6:
				wd.op("TryRecvBatch")
				_, err := c.TryRecvBatch(1+int(val)%4, func(m []byte) error {
					if len(m) == 0 || len(m) > maxMsg {
						t.Fatalf("TryRecvBatch handed out %d bytes", len(m))
					}
					if val&2 != 0 {
						return mpmc.ErrShortBuffer // keep it
					}
					return nil
				})
				check("TryRecvBatch", err)
			case 7:
				wd.op("TrySendBatch")
				_, err := p.TrySendBatch([][]byte{buf[:1], buf[:1+int(val)%maxMsg], buf[:2]})
				check("TrySendBatch", err)
			case 8:
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Millisecond)
				wd.op("Send")
				check("Send", p.Send(ctx, buf[:1+int(val)%maxMsg]))
				wd.op("Recv")
				_, err := c.Recv(ctx, buf)
				check("Recv", err)
				cancel()
			case 9: // attaching scans the slots for stale claims
				qq := qs[val%2]
				wd.op("attach")
				if p2, err := qq.Producer(); err == nil {
					p2.Close()
				} else {
					check("Producer", err)
				}
				if c2, err := qq.Consumer(); err == nil {
					c2.Close()
				} else {
					check("Consumer", err)
				}
				wd.op("Stats")
				if st, err := q.Stats(); err != nil {
					check("Stats", err)
				} else if st.Used > slots {
					t.Fatalf("Stats: %d used of %d", st.Used, slots)
				}
			default: // close a handle and attach another on the same mapping
				k := int(val) % 2
				wd.op("Close")
				if val&4 != 0 {
					ps[k].Close()
					np, err := qs[k].Producer()
					if err != nil {
						check("Producer", err)
						t.Skip("no producer")
					}
					ps[k] = np
				} else {
					cs[k].Close()
					nc, err := qs[k].Consumer()
					if err != nil {
						check("Consumer", err)
						t.Skip("no consumer")
					}
					cs[k] = nc
				}
			}
			wd.end()
		}
		wd.op("Close")
		for _, p := range ps {
			p.Close()
		}
		for _, c := range cs {
			c.Close()
		}
		wd.end()
	})
}

// mpmcState describes q for the watchdog's report: both cursors and the
// sequence word and length of the slots of the positions around each.
func mpmcState(q *mpmc.Queue) func() string {
	seg, hdr := q.Segment(), q.Segment().Header()
	slots, slotSize := q.Slots(), uint64(q.SlotSize())
	load := func(off uint64) uint64 {
		if w, err := seg.Uint64(off); err == nil {
			return w.Load()
		}
		return 0
	}
	return func() string {
		var b strings.Builder
		head, tail := load(hdr.Consumer+layout.CursorPosition), load(hdr.Producer+layout.CursorPosition)
		fmt.Fprintf(&b, "mpmc queue of %d slots: head %d, tail %d (tail-head %d)\n", slots, head, tail, int64(tail-head))
		for _, c := range []struct {
			name string
			pos  uint64
		}{{"head", head}, {"tail", tail}} {
			for d := -1; d <= 1; d++ {
				pos := c.pos + uint64(d)
				slot := pos & (slots - 1)
				off := hdr.Data + slot*slotSize
				w := load(off + layout.SlotSeq)
				var length uint32
				if l, err := seg.Uint32(off + layout.SlotLength); err == nil {
					length = l.Load()
				}
				fmt.Fprintf(&b, "  %s%+d: position %d, slot %d: seq %#x = %s, length %d\n",
					c.name, d, pos, slot, w, describeSeq(w, pos), length)
			}
		}
		return b.String()
	}
}

// describeSeq decodes sequence word w relative to position pos: E(p+1) is
// position pos+1's slot state Empty.
func describeSeq(w, pos uint64) string {
	st := layout.SeqState(w)
	d := (layout.SeqDiff(w, pos) - int64(st)) / 4
	p := "p"
	if d != 0 {
		p = fmt.Sprintf("p%+d", d)
	}
	return fmt.Sprintf("%c(%s) owner %d", "EWFR"[st], p, layout.SeqOwner(w))
}

func expectedMPMC(err error) bool {
	return err == mpmc.ErrFull || err == mpmc.ErrEmpty || errors.Is(err, mpmc.ErrCorrupt) ||
		errors.Is(err, mpmc.ErrShortBuffer) || errors.Is(err, mpmc.ErrPending) || isCtxErr(err)
}
