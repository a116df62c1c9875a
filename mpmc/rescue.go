package mpmc

import (
	"fmt"

	"github.com/shmq/shmq/layout"
)

// A message that a consumer took and never released, because it died (or
// closed with it stashed), is requeued in place by the producer that
// reaches its slot a lap later. When producers are gone, no producer ever
// reaches it: a consumer about to report the end of the stream would leave
// it behind. rescue moves such messages to the tail instead, so that the
// stream ends only after they were delivered again (at-least-once, like a
// requeue).

// rescue finds messages held in the name of a consumer that is gone (an R
// word whose owner is SeqOwnerOrphan or a registry entry no live process
// holds), and requeues each at the enqueue cursor: it adopts the old slot
// (so no one else moves the message too), copies the message into a newly
// claimed position, publishes it as requeued (F(p, SeqOwnerOrphan)), and
// then frees the old slot. It returns how many it moved. A consumer that
// dies half way leaves the old slot adopted in its own name, which is
// recovered in turn: the message may then be delivered twice, never lost.
func (c *Consumer) rescue() (int, error) {
	q := c.q
	moved := 0
	var buf []byte
	for i, seq := range q.seqs {
		w := seq.Load()
		if layout.SeqState(w) != layout.SlotReading {
			continue
		}
		o := layout.SeqOwner(w)
		switch {
		case o == c.me:
			continue // ours: peeked and not released
		case o == layout.SeqOwnerOrphan:
		case o < q.hdr.RegistryCount:
			info, err := q.seg.Entry(int(o))
			if err != nil {
				return moved, err
			}
			if info.Alive {
				continue
			}
		default:
			return moved, q.corrupt("claimant outside the registry", w, uint64(i))
		}
		cur := q.deq.Load()
		pos := fullPosition(w, cur)
		if pos&q.mask != uint64(i) || cur-pos > q.hdr.Capacity {
			continue // moved on since the load, or not a lap-old message: not ours to judge
		}
		mine := layout.SeqWord(pos, layout.SlotReading, c.me)
		if !seq.CompareAndSwap(w, mine) {
			continue
		}
		off := q.slot(pos)
		n := le32(q.data[off+layout.SlotLength:])
		if n > c.maxMsg {
			c.free(pos)
			return moved, fmt.Errorf("%w: slot %d held a %d-byte message, more than the maximum %d, when its consumer died",
				ErrCorrupt, i, n, c.maxMsg)
		}
		if n == 0 {
			if err := c.free(pos); err != nil {
				return moved, err
			}
			continue
		}
		buf = append(buf[:0], q.payload(pos, n)...)
		from := le32(q.data[off+layout.SlotProducer:])
		// Claim the tail as a producer would, in this consumer's name.
		p := &Producer{q: q, e: c.e, me: c.me, maxMsg: c.maxMsg}
		np, err := p.claim()
		if err != nil {
			// Full (or worse): leave the message orphaned where it is, for
			// a producer to requeue.
			seq.CompareAndSwap(mine, layout.SeqWord(pos, layout.SlotReading, layout.SeqOwnerOrphan))
			if err == ErrFull {
				return moved, nil
			}
			return moved, err
		}
		noff := q.slot(np)
		le32put(q.data[noff+layout.SlotLength:], n)
		le32put(q.data[noff+layout.SlotProducer:], from)
		copy(q.payload(np, n), buf)
		if !q.seqs[np&q.mask].CompareAndSwap(layout.SeqWord(np, layout.SlotWriting, c.me), layout.SeqWord(np, layout.SlotFull, layout.SeqOwnerOrphan)) {
			return moved, q.corrupt("rescue slot taken from its consumer", q.seqs[np&q.mask].Load(), np)
		}
		if err := c.free(pos); err != nil {
			return moved, err
		}
		moved++
	}
	if moved > 0 {
		q.wake(q.consumerWake)
		c.wakeProducers()
	}
	return moved, nil
}
