package spsc

import "github.com/shmq/shmq/layout"

// LastPosition returns the position of the message that Peek or PeekWait
// returned last, and true, as long as messages are peeked and not
// released. After Release or Rewind, after a TryRecv, Recv or
// TryRecvBatch (which release what was peeked), after Close, and before
// any Peek, it returns 0 and false.
//
// A position is the byte offset in the queue's stream at which the
// message's record starts: its ring index is the position modulo the
// capacity. The cursors only grow, so no two messages of a queue share a
// position; and a consumer that dies before Release leaves its messages
// where they are, so its successor sees each at the same position. With
// the creation time of the segment (Segment().Header().CreatedNano), it
// identifies a message across consumer restarts, for deduplication
// downstream.
//
// LastPosition reads no shared memory and synchronizes with nothing: it
// returns what Peek derived from its own read cursor when it validated the
// record, which it read after the acquire load of the tail that published
// it. The producer does not reuse the record's bytes while it is peeked
// (they lie between the head, which only Release moves, and the tail), so
// the position names that message until Release. Like Peek, it is for the
// goroutine that uses the consumer.
func (c *Consumer) LastPosition() (uint64, bool) {
	if c == nil || c.g == nil || c.g.Closed() || c.peeked == 0 {
		return 0, false
	}
	return c.lastPeek, true
}

// notePeek records the position of m, the message peek just returned:
// peek has moved the read cursor to the end of its record.
func (c *Consumer) notePeek(m []byte) {
	c.lastPeek = c.pos - layout.RecordSize(len(m))
}
