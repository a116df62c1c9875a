package mpmc

// LastPosition returns the position of the message that Peek or PeekWait
// returned last, and true, as long as it is held (peeked and not
// released). After Release, after a TryRecv or Recv (which release what
// was peeked), after Close, before any Peek, and in locked mode (which
// has no Peek), it returns 0 and false.
//
// A position is the value of the enqueue cursor at which the message was
// committed: its slot is the position modulo the slot count. The cursors
// only grow, so no two messages of a queue share a position, except that
// a message requeued after its consumer died is committed again one ring
// later, at its first position plus Slots (see LastRequeued). With the
// creation time of the segment (Segment().Header().CreatedNano), a
// position identifies a message for deduplication downstream.
//
// LastPosition reads no shared memory and synchronizes with nothing: it
// returns the position of the slot that Peek claimed, by the
// compare-and-swap of its sequence word from full (F(pos)) to read by this
// consumer (R(pos, me)), which acquires the producer's writes of the
// message. No producer reuses the slot until this consumer releases it,
// so the position names that message while it is held. Like Peek, it is
// for the goroutine that uses the consumer.
func (c *Consumer) LastPosition() (uint64, bool) {
	if c == nil || c.g == nil || c.g.Closed() || len(c.held) == 0 {
		return 0, false
	}
	return c.held[len(c.held)-1], true
}

// LastRequeued reports whether the message that Peek or PeekWait returned
// last, while it is held, had been requeued: taken before by a consumer
// that died without releasing it, and committed again one ring later by a
// producer (LAYOUT.md section 14.6). Its first position
// was then LastPosition minus Slots, unless it was requeued more than
// once. The dead consumer may have acted on it: a delivery that may repeat
// one (Redelivered counts them). It is false when LastPosition's ok is.
//
// The requeued mark is the owner field of the sequence word the claim
// replaced (F(pos, orphan) rather than F(pos, producer)), read by that
// same compare-and-swap; no other shared memory is read.
func (c *Consumer) LastRequeued() bool {
	if _, ok := c.LastPosition(); !ok {
		return false
	}
	return c.lastRequeued
}
