package pubsub

import (
	"context"
	"time"

	"github.com/shmq/shmq/layout"
)

// How the publisher finds room. In a back-pressure queue it may write up to
// its limit, which it computes from the subscribers' positions and
// publishes before relying on it (scan); in a lossy queue it announces
// where it may write up to, its intent, before writing there (advance).
// All distances are taken from the published tail, so that positions may
// wrap around 2^64.

// room makes sure a back-pressure publisher may write need bytes past the
// published tail, or returns ErrFull. It reads the subscribers' positions
// only when its limit does not cover need, or when half a ring has been
// published since it last did (which keeps at least half a ring of history
// for subscribers that ask for it).
func (p *Publisher) room(need uint64) error {
	if !p.haveLimit || need > p.limit-p.published || p.published-p.scanTail >= p.cap/2 {
		p.scan(need)
		if need <= p.limit-p.published {
			return nil
		}
		// Maybe a subscriber that holds the room died: look now and then.
		if now := time.Now(); now.Sub(p.lastDrop) >= dropEvery {
			p.lastDrop = now
			if p.dropDead(need) > 0 {
				p.scan(need)
			}
		}
	}
	if need > p.limit-p.published {
		p.stalls++
		p.e.Stalls.Store(p.stalls)
		return ErrFull
	}
	return nil
}

// scan computes and publishes the limit: the slowest live subscriber's
// position plus the capacity, but no more than half a ring (or need, if
// more) past the published tail. It stores the limit, then reads the
// positions again: a subscriber attaching meanwhile either stored its
// position before that second read, which sees it and lowers the limit,
// or loads the limit after it was stored and starts at or after
// limit - capacity. Either way the publisher never overwrites it
// (PUBSUB.md, "Back-pressure").
func (p *Publisher) scan(need uint64) {
	t := p.published
	lag := p.slowest(t)
	d := min(p.cap-lag, max(p.cap/2, need))
	p.q.limit.Store(t + d)
	if lag2 := p.slowest(t); lag2 > lag && p.cap-lag2 < d {
		d = p.cap - lag2
		p.q.limit.Store(t + d)
	}
	p.limit, p.haveLimit, p.scanTail = t+d, true, t
}

// slowest returns how far the slowest attached subscriber is behind
// position t, 0 if none is. A position that is not within a ring behind t
// belongs to a subscriber still attaching (its entry holds its
// predecessor's) or is garbage; it holds nothing back: an attaching
// subscriber stores its position and then checks the limit.
func (p *Publisher) slowest(t uint64) uint64 {
	lag := uint64(0)
	for i := layout.PubSubFirstSubscriber; i < len(p.q.subs); i++ {
		w := &p.q.subs[i]
		if w.state.Load() != layout.EntryAttached {
			continue
		}
		pos := w.pos.Load()
		if d := t - pos; d <= p.cap && d > lag && pos%layout.PubSubRecordAlign == 0 {
			lag = d
		}
	}
	return lag
}

// dropDead frees the registry entries of the subscribers that hold back a
// reservation of need bytes and whose holders died without detaching, and
// returns how many it freed. It takes each such entry's lock while it
// frees it, so it never touches one that a live process holds or attaches
// meanwhile.
func (p *Publisher) dropDead(need uint64) int {
	t := p.published
	n := 0
	for i := layout.PubSubFirstSubscriber; i < len(p.q.subs); i++ {
		w := &p.q.subs[i]
		if w.state.Load() != layout.EntryAttached {
			continue
		}
		if d := t - w.pos.Load(); d > p.cap || p.cap-d >= need {
			continue // not holding this reservation back
		}
		info, err := p.q.seg.Entry(i)
		if err != nil || !info.Dead() {
			continue
		}
		ok, _ := p.q.seg.WithDeadEntry(i, func() {
			if w.state.Load() == layout.EntryAttached {
				w.state.Store(layout.EntryFree)
			}
		})
		if ok {
			n++
		}
	}
	if n > 0 {
		p.haveLimit = false
	}
	return n
}

// waitRoom waits until a back-pressure publisher has room for a message of
// n bytes, dropping dead subscribers that hold it back after each park.
func (p *Publisher) waitRoom(ctx context.Context, n int) error {
	need := p.ahead(layout.PubSubRecordSize(n))
	ready := func() bool { return p.cap-p.slowest(p.published) >= need }
	check := func() error {
		p.dropDead(need)
		return nil
	}
	return p.q.waitFor(ctx, p.g, p.q.publisherWake, p.e, ready, check)
}

// advance moves a lossy publisher's intent so that it covers need bytes
// past the published tail, plus a slack of PubSubSlack bytes (capped at a
// ring past the tail), and the oldest position with it: first the oldest
// record boundary at or after intent - capacity, found by stepping over
// the records that the new intent gives up, then the intent itself, with
// a fence (Swap) so that no byte written after it becomes visible before
// it. A subscriber that loads the intent and then the oldest position
// finds a record that is whole.
func (p *Publisher) advance(need uint64) error {
	q := p.q
	in := p.published + min(need+p.slack, p.cap)
	o := p.oldest
	for in-o > p.cap {
		avail := p.published - o
		length, typ, _ := q.header(o)
		size, _, err := layout.CheckPubSubRecord(length, typ, q.idx(o), avail, p.cap, p.maxMsg)
		if err != nil {
			return err
		}
		o += size
	}
	if o != p.oldest {
		q.oldest.Store(o)
		p.oldest = o
	}
	q.intent.Swap(in)
	p.intent = in
	return nil
}
