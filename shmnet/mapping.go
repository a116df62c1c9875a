package shmnet

import (
	"sync"
	"sync/atomic"

	"github.com/shmq/shmq/spsc"
)

// mapping owns one queue of a Conn and unmaps it once the direction is
// closed and no call is using its memory any more. Read keeps the unread
// part of a message in the ring between calls, and WriteTo hands ring
// slices to a writer that may block for as long as it likes, so Close
// cannot unmap at once; nor should it wait for a writer it does not
// control. The last user out unmaps instead.
type mapping struct {
	q     *spsc.Queue
	state atomic.Int64 // calls using q, plus closingBit once closed
	once  sync.Once
}

const closingBit = 1 << 62

// acquire admits a call that will touch q's memory, or reports that the
// direction is closed. An admitted call must release.
func (m *mapping) acquire() bool {
	if m.state.Add(1)&closingBit != 0 {
		m.release()
		return false
	}
	return true
}

func (m *mapping) release() {
	if m.state.Add(-1) == closingBit {
		m.unmap()
	}
}

// close refuses further calls and unmaps q now if no call is using it, or
// else when the last one releases it. It reports whether this call closed
// the direction.
func (m *mapping) close() bool {
	old := m.state.Or(closingBit)
	if old == 0 {
		m.unmap()
	}
	return old&closingBit == 0
}

func (m *mapping) closed() bool { return m.state.Load()&closingBit != 0 }

func (m *mapping) unmap() { m.once.Do(func() { m.q.Close() }) }
