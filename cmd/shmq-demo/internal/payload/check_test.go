package payload

import (
	"slices"
	"testing"
)

func sequenced(seqs ...uint64) [][]byte {
	var ms [][]byte
	for _, s := range seqs {
		b := make([]byte, 16)
		Put(b, s)
		ms = append(ms, b)
	}
	return ms
}

func TestSeqChecker(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first uint64
		ms    [][]byte
		want  string
		gaps  uint64
		reps  uint64
		short uint64
	}{
		{"in-order", 0, sequenced(0, 1, 2), "seq_first=0 seq_last=2 gaps=0", 0, 0, 0},
		{"none", 0, nil, "seq_first=- seq_last=- gaps=0", 0, 0, 0},
		{"repeat", 0, sequenced(0, 1, 2, 2, 3), "seq_first=0 seq_last=3 gaps=0", 0, 1, 0},
		{"reorder", 0, sequenced(0, 2, 1, 3, 4), "seq_first=0 seq_last=4 gaps=1", 1, 1, 0},
		{"late-start", 0, sequenced(1, 2, 3), "seq_first=1 seq_last=3 gaps=1", 1, 0, 0},
		// After a crash: 5 and 6 were peeked by the dead consumer and
		// arrive again before 7, the expected first.
		{"redelivered", 7, sequenced(5, 6, 7, 8), "seq_first=5 seq_last=8 gaps=0 redelivered=2", 0, 0, 0},
		// Redelivery ends with the first number at or past the expected.
		{"repeat-after-catch-up", 7, sequenced(7, 6), "seq_first=7 seq_last=6 gaps=0", 0, 1, 0},
		{"not-consecutive", 7, sequenced(3, 5, 7), "seq_first=3 seq_last=7 gaps=0 redelivered=1", 0, 1, 0},
		{"short", 0, append(sequenced(0), []byte{1, 2, 3}), "seq_first=0 seq_last=0 gaps=0", 0, 0, 1},
	} {
		c := NewSeqChecker(tc.first)
		for _, m := range tc.ms {
			c.Add(m)
		}
		if got := c.String(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
		if c.Gaps != tc.gaps || c.Repeats != tc.reps || c.Short != tc.short {
			t.Errorf("%s: gaps=%d repeats=%d short=%d, want %d, %d, %d", tc.name, c.Gaps, c.Repeats, c.Short, tc.gaps, tc.reps, tc.short)
		}
	}
}

type msg struct{ id, seq uint64 }

func TestProducerChecker(t *testing.T) {
	for _, tc := range []struct {
		name    string
		msgs    []msg
		corrupt int // index of a payload to corrupt, or -1
		want    []string
	}{
		{"gaps", []msg{{7, 0}, {9, 1}, {7, 2}, {9, 3}}, -1, []string{
			"producer=7 messages=2 seq_first=0 seq_last=2 gaps=1 repeats=0",
			"producer=9 messages=2 seq_first=1 seq_last=3 gaps=2 repeats=0",
			"producers=2 gaps=3 repeats=0"}},
		{"step-back", []msg{{7, 5}, {7, 3}}, -1, []string{
			"producer=7 messages=2 seq_first=5 seq_last=5 gaps=1 repeats=1",
			"producers=1 gaps=1 repeats=1"}},
		{"repeat", []msg{{7, 0}, {9, 0}, {7, 0}, {7, 1}}, -1, []string{
			"producer=7 messages=3 seq_first=0 seq_last=1 gaps=0 repeats=1",
			"producer=9 messages=1 seq_first=0 seq_last=0 gaps=0 repeats=0",
			"producers=2 gaps=0 repeats=1"}},
		{"filler", []msg{{7, 0}, {7, 1}}, 1, []string{
			"producer=7 messages=1 seq_first=0 seq_last=0 gaps=0 repeats=0",
			"producers=1 gaps=0 repeats=0 corrupt=1"}},
	} {
		c := NewProducerChecker(64, 0, 0)
		for i, m := range tc.msgs {
			b := make([]byte, 32)
			PutProducer(b, m.id, m.seq)
			if i == tc.corrupt {
				b[20] ^= 1
			}
			c.Add(b)
		}
		var got []string
		for _, s := range c.Streams() {
			got = append(got, s.String())
		}
		got = append(got, c.Summary(0))
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestProducerCheckerShortAndOversized(t *testing.T) {
	c := NewProducerChecker(32, 0, 0)
	c.Add(make([]byte, MinProducer-1))
	big := make([]byte, 33)
	PutProducer(big, 1, 0)
	c.Add(big)
	if c.Short != 1 || c.Corrupt != 1 || len(c.Streams()) != 0 {
		t.Errorf("short=%d corrupt=%d streams=%d, want 1, 1, 0", c.Short, c.Corrupt, len(c.Streams()))
	}
	if got, want := c.Summary(2), "producers=0 gaps=0 repeats=0 corrupt=1 redelivered=2"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
}

func TestProducerCheckerBounded(t *testing.T) {
	c := NewProducerChecker(32, 2, 70)
	for _, m := range []msg{{0, 0}, {0, 65}, {1, 3}, {2, 0}, {1, 70}} {
		b := make([]byte, 24)
		PutProducer(b, m.id, m.seq)
		c.Add(b)
	}
	if c.Corrupt != 2 {
		t.Errorf("corrupt=%d, want 2 (id 2 and number 70 out of range)", c.Corrupt)
	}
	ss := c.Streams()
	if len(ss) != 2 {
		t.Fatalf("%d streams, want 2", len(ss))
	}
	if want := []uint64{1, 1 << 1}; !slices.Equal(ss[0].Seen, want) {
		t.Errorf("producer 0 bitmap %x, want %x", ss[0].Seen, want)
	}
	if want := []uint64{1 << 3, 0}; !slices.Equal(ss[1].Seen, want) {
		t.Errorf("producer 1 bitmap %x, want %x", ss[1].Seen, want)
	}
}
