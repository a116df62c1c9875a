package payload

import (
	"cmp"
	"fmt"
	"slices"
)

// SeqChecker follows the sequence numbers of one stream of sequenced
// payloads, as consume -kind spsc receives it. It expects a given number
// first; a consumer started after another consumer's crash may first be
// handed again what the dead one had peeked and not released, a
// consecutive run ending just below that number, which it counts as
// redelivered rather than repeated. Anything else out of order is a gap or
// a repeat.
//
// Add updates the exported counts; the caller reads them.
type SeqChecker struct {
	Gaps, Repeats uint64
	Redelivered   uint64
	Short         uint64 // payloads too short to carry a sequence number

	seen        bool
	first, last uint64
	next        uint64 // the sequence number expected next
	caughtUp    bool   // a payload at or beyond next arrived: redelivery is over
}

// NewSeqChecker returns a checker that expects sequence number first
// first.
func NewSeqChecker(first uint64) *SeqChecker { return &SeqChecker{next: first} }

// Add checks the next payload of the stream.
func (s *SeqChecker) Add(m []byte) {
	if len(m) < SeqSize {
		s.Short++
		return
	}
	seq := Seq(m)
	prev, first := s.last, !s.seen
	if first {
		s.seen, s.first = true, seq
	}
	s.last = seq
	switch {
	case seq == s.next:
		s.next++
		s.caughtUp = true
	case seq > s.next:
		s.Gaps++
		s.next = seq + 1
		s.caughtUp = true
	case !s.caughtUp && (first || seq == prev+1):
		s.Redelivered++
	default:
		s.Repeats++
	}
}

// String returns the line consume prints:
// seq_first=A seq_last=B gaps=G [redelivered=R].
func (s *SeqChecker) String() string {
	var line string
	if !s.seen {
		line = fmt.Sprintf("seq_first=- seq_last=- gaps=%d", s.Gaps)
	} else {
		line = fmt.Sprintf("seq_first=%d seq_last=%d gaps=%d", s.first, s.last, s.Gaps)
	}
	if s.Redelivered > 0 {
		line += fmt.Sprintf(" redelivered=%d", s.Redelivered)
	}
	return line
}

// ProducerChecker follows the producer payloads that one consumer of a
// shared queue receives. Every payload goes to one of the consumers, so a
// consumer sees a subsequence of each producer's stream: each producer's
// sequence numbers must only increase, gaps are expected (other consumers
// took those), a repeat or a step back is an error. Every payload's filler
// is checked.
//
// Add updates the exported counts and the streams; the caller reads them.
type ProducerChecker struct {
	Short   uint64 // payloads too short to carry a sequence number and producer id
	Corrupt uint64 // payloads whose filler (or, if bounded, id or number) is wrong

	streams map[uint64]*Stream
	cur     *Stream // the stream of the last payload: the likely next one
	scratch []byte
	// If ids > 0 the checker is bounded, as in the demo: producer ids are
	// below ids and sequence numbers below seqs, and each stream keeps a
	// bitmap of the numbers received.
	ids, seqs uint64
}

// Stream is what one consumer received of one producer's payloads.
type Stream struct {
	ID            uint64
	Messages      uint64
	First, Last   uint64 // the first number received and the highest
	Gaps, Repeats uint64
	// Seen is a bitmap of the numbers received, bit seq%64 of word
	// seq/64, if the checker is bounded.
	Seen []uint64
}

// NewProducerChecker returns a checker for payloads of up to maxMessage
// bytes. If ids > 0, it counts a payload as corrupt unless its producer id
// is below ids and its sequence number below seqs, and it keeps a bitmap
// of the numbers received in each stream.
func NewProducerChecker(maxMessage int, ids, seqs uint64) *ProducerChecker {
	return &ProducerChecker{streams: map[uint64]*Stream{}, scratch: make([]byte, maxMessage), ids: ids, seqs: seqs}
}

// Add checks the next payload the consumer received.
func (c *ProducerChecker) Add(m []byte) {
	if len(m) < MinProducer {
		c.Short++
		return
	}
	seq, id := Seq(m), ID(m)
	if len(m) > len(c.scratch) || !ProducerFillerOK(m, c.scratch) || c.ids > 0 && (id >= c.ids || seq >= c.seqs) {
		c.Corrupt++
		return
	}
	s := c.stream(id)
	switch {
	case s.Messages == 0:
		s.First, s.Last = seq, seq
		if seq > 0 {
			s.Gaps++
		}
	case seq > s.Last:
		if seq > s.Last+1 {
			s.Gaps++
		}
		s.Last = seq
	default:
		s.Repeats++ // keep Last: a step back does not rewind the stream
	}
	s.Messages++
	if s.Seen != nil {
		s.Seen[seq/64] |= 1 << (seq % 64)
	}
}

// stream returns the stream of producer id, new if none arrived yet.
func (c *ProducerChecker) stream(id uint64) *Stream {
	if c.cur != nil && c.cur.ID == id {
		return c.cur
	}
	s := c.streams[id]
	if s == nil {
		s = &Stream{ID: id}
		if c.ids > 0 {
			s.Seen = make([]uint64, (c.seqs+63)/64)
		}
		c.streams[id] = s
	}
	c.cur = s
	return s
}

// Streams returns the streams in order of producer id.
func (c *ProducerChecker) Streams() []*Stream {
	ss := make([]*Stream, 0, len(c.streams))
	for _, s := range c.streams {
		ss = append(ss, s)
	}
	slices.SortFunc(ss, func(a, b *Stream) int { return cmp.Compare(a.ID, b.ID) })
	return ss
}

// Totals returns the gaps and repeats of all streams.
func (c *ProducerChecker) Totals() (gaps, repeats uint64) {
	for _, s := range c.streams {
		gaps += s.Gaps
		repeats += s.Repeats
	}
	return gaps, repeats
}

// Summary returns the line consume prints after the stream lines:
// producers=P gaps=G repeats=R [corrupt=C] [redelivered=D].
func (c *ProducerChecker) Summary(redelivered uint64) string {
	gaps, repeats := c.Totals()
	line := fmt.Sprintf("producers=%d gaps=%d repeats=%d", len(c.streams), gaps, repeats)
	if c.Corrupt > 0 {
		line += fmt.Sprintf(" corrupt=%d", c.Corrupt)
	}
	if redelivered > 0 {
		line += fmt.Sprintf(" redelivered=%d", redelivered)
	}
	return line
}

// String returns the line consume prints for the stream:
// producer=ID messages=M seq_first=A seq_last=B gaps=G repeats=R.
func (s *Stream) String() string {
	return fmt.Sprintf("producer=%d messages=%d seq_first=%d seq_last=%d gaps=%d repeats=%d",
		s.ID, s.Messages, s.First, s.Last, s.Gaps, s.Repeats)
}
