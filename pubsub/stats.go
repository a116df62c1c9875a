package pubsub

import (
	"fmt"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
)

// Stats is a snapshot of a pub/sub queue: its cursors and every subscriber's
// position and lag. The words are read one at a time, so under traffic they
// are mutually inconsistent by the messages that moved in between.
type Stats struct {
	Capacity   uint64
	MaxMessage uint32
	Lossy      bool
	Tail       uint64 // committed position
	NextSeq    uint64 // sequence number of the next message, from the ring at the tail
	Intent     uint64 // lossy: where the publisher may be writing up to
	Oldest     uint64 // lossy: the oldest record a lapped subscriber resumes at
	Limit      uint64 // back-pressure: the publisher's limit (see layout.PubLimit)
	Publisher  ring.EntryInfo
	// Subscribers lists the subscriber entries that are or were in use
	// (state not layout.EntryFree), live and dead.
	Subscribers []SubscriberStats
}

// SubscriberStats is one subscriber's entry, as it recorded it. The entry
// is attached a moment before the subscriber has placed itself (Position
// and NextSeq may still be its predecessor's then); one that has counted a
// stall (found no message) or released a message is placed.
type SubscriberStats struct {
	ring.EntryInfo
	Position uint64 // start of the first record it has not released
	NextSeq  uint64 // sequence number of the next message it expects
	Lost     uint64 // messages it lost to overwriting (lossy)
	// LagBytes is Tail-Position and LagMessages the queue's NextSeq minus
	// the subscriber's: what it has yet to release. A lapped lossy
	// subscriber lags by more than the capacity until its next call.
	LagBytes    uint64
	LagMessages uint64
}

// A WordReader reads words of a mapped segment: a *ring.View (read-only,
// for tools) or a queue's own mapping.
type WordReader interface {
	Header() layout.Header
	Load64(off uint64) (uint64, error)
}

// ReadStats reads the statistics of the pub/sub queue that r maps, given
// its registry entries (ring.View.Info's, or ring.Segment.Entries'),
// without attaching to it, for tools that inspect segments of any kind. It
// fails with ErrKind for a segment of another kind.
func ReadStats(r WordReader, entries []ring.EntryInfo) (Stats, error) {
	h := r.Header()
	if h.Kind != layout.KindPubSub {
		return Stats{}, fmt.Errorf("%w: a %v queue, not pubsub", ErrKind, h.Kind)
	}
	st := Stats{Capacity: h.Capacity, MaxMessage: h.MaxMessage, Lossy: h.Flags&layout.FlagLossy != 0}
	var err error
	for _, f := range []struct {
		p   *uint64
		off uint64
	}{{&st.Tail, layout.PubTail}, {&st.Intent, layout.PubIntent}, {&st.Oldest, layout.PubOldest}, {&st.Limit, layout.PubLimit}} {
		if *f.p, err = r.Load64(h.Producer + f.off); err != nil {
			return Stats{}, err
		}
	}
	if h.DataSize < h.Capacity {
		return Stats{}, fmt.Errorf("%w: data region of %d bytes for a %d-byte ring", ErrCorrupt, h.DataSize, h.Capacity)
	}
	if st.NextSeq, err = r.Load64(h.Data + st.Tail&(h.Capacity-1) + layout.PubSubRecordSeq); err != nil {
		return Stats{}, err
	}
	for _, e := range entries {
		switch {
		case e.Index == layout.PubSubPublisherEntry:
			st.Publisher = e
			continue
		case e.Index < layout.PubSubFirstSubscriber || e.Index >= int(h.RegistryCount) || e.State == layout.EntryFree:
			continue
		}
		s := SubscriberStats{EntryInfo: e}
		base := h.Entry(e.Index)
		for _, f := range []struct {
			p   *uint64
			off uint64
		}{{&s.Position, layout.EntrySubPosition}, {&s.NextSeq, layout.EntrySubSeq}, {&s.Lost, layout.EntrySubLost}} {
			if *f.p, err = r.Load64(base + f.off); err != nil {
				return Stats{}, err
			}
		}
		s.LagBytes = st.Tail - s.Position
		s.LagMessages = st.NextSeq - s.NextSeq
		st.Subscribers = append(st.Subscribers, s)
	}
	return st, nil
}

// segmentWords reads a queue's own mapping for ReadStats.
type segmentWords struct{ seg *ring.Segment }

func (s segmentWords) Header() layout.Header { return s.seg.Header() }

func (s segmentWords) Load64(off uint64) (uint64, error) {
	w, err := s.seg.Uint64(off)
	if err != nil {
		return 0, err
	}
	return w.Load(), nil
}
