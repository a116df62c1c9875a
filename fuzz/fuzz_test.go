package fuzz

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/spsc"
)

func validHeader(f *testing.F) []byte {
	h, err := layout.PlanSPSC(4096, 0)
	if err != nil {
		f.Fatal(err)
	}
	b := make([]byte, 2*layout.LineSize)
	layout.Encode(b, &h)
	binary.LittleEndian.PutUint32(b[layout.OffState:], layout.StateReady)
	return b
}

// FuzzDecode: whatever the bytes, Decode returns without panicking, and a
// header it accepts places every region inside the segment, disjoint from
// the header.
func FuzzDecode(f *testing.F) {
	h := validHeader(f)
	f.Add(h, uint64(3*layout.PageSize))
	f.Add(make([]byte, 2*layout.LineSize), uint64(layout.PageSize))
	f.Fuzz(func(t *testing.T, b []byte, size uint64) {
		h, err := layout.Decode(b, size)
		if err != nil {
			return
		}
		for _, r := range [][2]uint64{{h.Producer, layout.LineSize}, {h.Consumer, layout.LineSize},
			{h.ProducerWake, layout.LineSize}, {h.ConsumerWake, layout.LineSize},
			{h.Registry, uint64(h.RegistryCount) * layout.LineSize}, {h.Data, h.DataSize}} {
			if r[0] < uint64(h.HeaderSize) || r[0] > size || r[1] > size-r[0] || r[0]%layout.LineSize != 0 {
				t.Fatalf("accepted header places a region at %d+%d in a %d-byte segment: %+v", r[0], r[1], size, h)
			}
		}
	})
}

// FuzzCheckRecord: a record CheckRecord accepts lies wholly inside the
// committed bytes and the ring, and carries no more than the maximum.
func FuzzCheckRecord(f *testing.F) {
	f.Add(uint32(13), uint32(layout.TypeMessage), uint64(0), uint64(256), uint8(8), uint32(120))
	f.Add(uint32(16), layout.TypePadding, uint64(240), uint64(16), uint8(8), uint32(120))
	f.Fuzz(func(t *testing.T, length, typ uint32, idx, avail uint64, capLog uint8, max uint32) {
		capacity := uint64(1) << (5 + capLog%36)
		idx = idx % capacity &^ 7
		avail = min(avail, capacity)
		size, pad, err := layout.CheckRecord(length, typ, idx, avail, capacity, max)
		if err != nil {
			if !errors.Is(err, layout.ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		if size < layout.RecordHeaderSize || size > avail || idx+size > capacity || size%layout.RecordAlign != 0 {
			t.Fatalf("accepted record of %d bytes at %d (avail %d, capacity %d)", size, idx, avail, capacity)
		}
		if pad && idx+size != capacity {
			t.Fatalf("accepted padding that stops short of the end")
		}
		if !pad && length-layout.RecordHeaderSize > max {
			t.Fatalf("accepted %d-byte payload above the maximum %d", length-layout.RecordHeaderSize, max)
		}
	})
}

// FuzzSPSCOps interprets the input as a sequence of operations on a small
// queue and checks every message against a plain FIFO: nothing committed is
// lost, duplicated, reordered or altered, and draining at the end yields
// exactly what the FIFO holds.
func FuzzSPSCOps(f *testing.F) {
	f.Add(uint8(0), []byte{0, 5, 0, 9, 2, 3, 1, 1, 4, 2})
	f.Add(uint8(2), []byte{3, 20, 3, 20, 3, 20, 1, 1, 1, 5, 5, 6})
	f.Fuzz(func(t *testing.T, capLog uint8, ops []byte) {
		capacity := uint64(32) << (capLog % 8)
		q, err := spsc.Create(ring.Memfd("fuzz"), spsc.Config{Capacity: capacity, StartPosition: ^uint64(0) - 127})
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		wd := startWatchdog(spscState(q))
		defer wd.done()
		p, _ := q.Producer()
		c, _ := q.Consumer()
		var fifo [][]byte // committed, not released
		var pending [][]byte
		peeked := 0
		seq := byte(0)
		buf := make([]byte, q.MaxMessage())
		newMsg := func(n int) []byte {
			m := bytes.Repeat([]byte{seq}, 1+n%q.MaxMessage())
			seq++
			return m
		}
		for i := 0; i+1 < len(ops); i += 2 {
			op, arg := ops[i]%9, int(ops[i+1])
			wd.at(i / 2)
			wd.op(spscOpNames[op])
			switch op {
			case 0: // TrySend
				if len(pending) > 0 {
					break
				}
				m := newMsg(arg)
				if err := p.TrySend(m); err == nil {
					fifo = append(fifo, m)
				} else if err != spsc.ErrFull {
					t.Fatalf("TrySend: %v", err)
				}
			case 1: // TryRecv
				if peeked > 0 {
					break
				}
				n, err := c.TryRecv(buf)
				if len(fifo) == 0 {
					if err != spsc.ErrEmpty {
						t.Fatalf("TryRecv on empty: %v", err)
					}
					break
				}
				if err != nil || !bytes.Equal(buf[:n], fifo[0]) {
					t.Fatalf("TryRecv: %x, %v; want %x", buf[:n], err, fifo[0])
				}
				fifo = fifo[1:]
			case 2: // Peek
				m, err := c.Peek()
				if peeked == len(fifo) {
					if err != spsc.ErrEmpty {
						t.Fatalf("Peek past the end: %v", err)
					}
					break
				}
				if err != nil || !bytes.Equal(m, fifo[peeked]) {
					t.Fatalf("Peek: %x, %v; want %x", m, err, fifo[peeked])
				}
				peeked++
			case 3: // Reserve
				m := newMsg(arg)
				if b, err := p.Reserve(len(m)); err == nil {
					copy(b, m)
					pending = append(pending, m)
				}
			case 4: // Commit
				p.Commit()
				fifo = append(fifo, pending...)
				pending = nil
			case 5: // Release
				c.Release()
				fifo = fifo[peeked:]
				peeked = 0
			case 6: // Rewind
				c.Rewind()
				peeked = 0
			case 7: // TrySendBatch of 1 to 4 messages: the leading ones that fit
				if len(pending) > 0 {
					break
				}
				msgs := make([][]byte, 1+arg%4)
				for k := range msgs {
					msgs[k] = newMsg(arg*(k+3) + k)
				}
				n, err := p.TrySendBatch(msgs)
				if n < len(msgs) && err != spsc.ErrFull || n == len(msgs) && err != nil {
					t.Fatalf("TrySendBatch of %d: %d, %v", len(msgs), n, err)
				}
				fifo = append(fifo, msgs[:n]...)
			case 8: // TryRecvBatch of up to 1+arg%4, refusing message arg/4%8
				if peeked > 0 {
					break
				}
				max, refuse := 1+arg%4, arg/4%8
				errRefused := errors.New("refused")
				k := 0
				n, err := c.TryRecvBatch(max, func(m []byte) error {
					if k == refuse {
						return errRefused
					}
					if k >= len(fifo) || !bytes.Equal(m, fifo[k]) {
						t.Fatalf("TryRecvBatch message %d: %x", k, m)
					}
					k++
					return nil
				})
				want, wantErr := min(max, len(fifo)), error(nil)
				switch {
				case want == 0:
					wantErr = spsc.ErrEmpty
				case refuse < want:
					want, wantErr = refuse, errRefused
				}
				if n != want || err != wantErr {
					t.Fatalf("TryRecvBatch(%d) refusing #%d: %d, %v; want %d, %v", max, refuse, n, err, want, wantErr)
				}
				fifo = fifo[n:]
			}
			wd.end()
		}
		wd.op("final Commit and drain")
		p.Commit()
		fifo = append(fifo, pending...)
		c.Rewind()
		for _, want := range fifo {
			n, err := c.TryRecv(buf)
			if err != nil || !bytes.Equal(buf[:n], want) {
				t.Fatalf("drain: %x, %v; want %x", buf[:n], err, want)
			}
		}
		if _, err := c.TryRecv(buf); err != spsc.ErrEmpty {
			t.Fatalf("drain left extra messages: %v", err)
		}
		wd.end()
	})
}

// spscOpNames names FuzzSPSCOps's operations for the watchdog's report.
var spscOpNames = [9]string{"TrySend", "TryRecv", "Peek", "Reserve", "Commit", "Release", "Rewind", "TrySendBatch", "TryRecvBatch"}

// FuzzSPSCCorruption writes attacker-chosen bytes anywhere in a live
// segment between operations. Every call must return (data or an error
// wrapping ErrCorrupt): no panic, no access outside the mapping, no hang.
func FuzzSPSCCorruption(f *testing.F) {
	f.Add([]byte{0x02, 0x10, 0xff, 0x03, 0x00, 0x01})
	f.Add([]byte{0x10, 0x00, 0x00, 0x10, 0x04, 0x80})
	f.Fuzz(func(t *testing.T, input []byte) {
		q, err := spsc.Create(ring.Memfd("fuzz"), spsc.Config{Capacity: 256})
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		wd := startWatchdog(spscState(q))
		defer wd.done()
		p, _ := q.Producer()
		c, _ := q.Consumer()
		mem := q.Segment().Bytes()
		hdr := q.Segment().Header()
		buf := make([]byte, q.MaxMessage())
		for i := 0; i+2 < len(input); i += 3 {
			// Aim most writes at the cursors and the ring, where they matter.
			var off uint64
			switch input[i] % 4 {
			case 0:
				off = hdr.Producer + uint64(input[i+1]%8)
			case 1:
				off = hdr.Consumer + uint64(input[i+1]%8)
			case 2:
				off = hdr.Data + uint64(input[i+1])
			default:
				off = uint64(input[i+1]) * 16 % uint64(len(mem))
			}
			mem[off] = input[i+2]
			wd.at(i / 3)
			wd.op("TrySend")
			if err := p.TrySend(buf[:1+int(input[i+2])%len(buf)]); err != nil && !expected(err) {
				t.Fatalf("TrySend: %v", err)
			}
			wd.op("TryRecv")
			if _, err := c.TryRecv(buf); err != nil && !expected(err) {
				t.Fatalf("TryRecv: %v", err)
			}
			wd.op("Peek")
			if _, err := c.Peek(); err != nil && !expected(err) {
				t.Fatalf("Peek: %v", err)
			}
			wd.op("Rewind")
			c.Rewind()
			wd.op("TrySendBatch")
			two := [][]byte{buf[:1+int(input[i+1])%len(buf)], buf[:1+int(input[i])%len(buf)]}
			if _, err := p.TrySendBatch(two); err != nil && !expected(err) {
				t.Fatalf("TrySendBatch: %v", err)
			}
			wd.op("TryRecvBatch")
			if _, err := c.TryRecvBatch(3, func(m []byte) error {
				if len(m) > q.MaxMessage() {
					t.Fatalf("TryRecvBatch handed out %d bytes, more than the maximum %d", len(m), q.MaxMessage())
				}
				return nil
			}); err != nil && !expected(err) {
				t.Fatalf("TryRecvBatch: %v", err)
			}
			wd.end()
		}
	})
}

// spscState describes q for the watchdog's report: both cursors and the
// record header at the consumer's position.
func spscState(q *spsc.Queue) func() string {
	seg, hdr, capacity := q.Segment(), q.Segment().Header(), q.Capacity()
	return func() string {
		var head, tail uint64
		if w, err := seg.Uint64(hdr.Consumer + layout.CursorPosition); err == nil {
			head = w.Load()
		}
		if w, err := seg.Uint64(hdr.Producer + layout.CursorPosition); err == nil {
			tail = w.Load()
		}
		idx := head % capacity
		rec := "unreadable"
		l, lerr := seg.Uint32(hdr.Data + idx + layout.RecordLength)
		typ, terr := seg.Uint32(hdr.Data + idx + layout.RecordType)
		if lerr == nil && terr == nil {
			rec = fmt.Sprintf("length %d, type %#x", l.Load(), typ.Load())
		}
		return fmt.Sprintf("spsc queue of %d bytes: head %d, tail %d (tail-head %d); record at head (ring offset %d): %s\n",
			capacity, head, tail, int64(tail-head), idx, rec)
	}
}

func expected(err error) bool {
	return err == spsc.ErrFull || err == spsc.ErrEmpty || errors.Is(err, spsc.ErrCorrupt) || errors.Is(err, spsc.ErrShortBuffer)
}
