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
// only when its limit does not cover need.
func (p *Publisher) room(need uint64) error {
	if !p.haveLimit || need > p.limit-p.published {
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
		p.ctr.Stalls.Set(p.stalls)
		return ErrFull
	}
	return nil
}

// scan computes and publishes the limit: a record boundary, the floor,
// plus the capacity. The floor is the slowest live subscriber's position,
// or the publisher's mark (a boundary a quarter to a half ring back) if
// that is earlier, which keeps that much history for subscribers that ask
// for it, unless the mark leaves no room for need. scan stores the limit,
// then reads the positions again: a subscriber attaching meanwhile either
// stored its position before that second read, which sees it and lowers
// the limit, or loads the limit after it was stored and starts at or after
// the floor. Either way the publisher never overwrites it (LAYOUT.md section 18,
// "Back-pressure").
func (p *Publisher) scan(need uint64) {
	t := p.published
	lag := p.slowest(t)
	back := lag
	if m := t - p.mark0; m > back && m <= p.cap && p.cap-m >= need {
		back = m
	}
	p.q.limit.Store(t + p.cap - back)
	if lag2 := p.slowest(t); lag2 > back {
		back = lag2
		p.q.limit.Store(t + p.cap - back)
	}
	p.limit, p.haveLimit = t+p.cap-back, true
}

// mark moves the publisher's marks after a commit: mark1 is the published
// tail at most a quarter ring ago, mark0 the one before, so mark0 is a
// record boundary between a quarter and a half ring (plus a batch) back.
func (p *Publisher) mark() {
	if p.published-p.mark1 >= p.cap/4 {
		p.mark0, p.mark1 = p.mark1, p.published
	}
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
// n bytes, dropping dead subscribers that hold it back between parks. It
// publishes the position the slowest subscriber must reach first, so that
// only a release that reaches it wakes the publisher (layout.PubWaitFor).
func (p *Publisher) waitRoom(ctx context.Context, n int) error {
	need := p.ahead(layout.PubSubRecordSize(n))
	p.q.target.Store(p.published + need - p.cap)
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
