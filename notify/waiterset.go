package notify

import (
	"math/bits"
	"sync/atomic"
)

// A WaiterSet is a set of registry entries in shared memory: a bitmap in
// which bit j of word k stands for entry 64k+j (layout/LAYOUT.md section 6).
// A waiter adds its entry before it re-checks its condition and parks, and
// removes it when it leaves; a publisher wakes only while the set is not
// empty.
//
// Ownership: the bit of entry i is written only by a holder of entry i's
// liveness lock (the entry's holder while it waits, or whoever takes the
// lock of a dead holder's entry to clear it), so a waiter that dies while
// registered can be removed exactly, never confused with a live one. At
// most one goroutine at a time may wait in one set for one entry.
//
// The zero value is an empty set with no words, for in-process use.
type WaiterSet struct {
	words []*atomic.Uint64
}

// NewWaiterSet returns the set over words, which must cover every entry
// that can register (one word per 64 entries).
func NewWaiterSet(words []*atomic.Uint64) WaiterSet { return WaiterSet{words: words} }

// Add registers entry i. It is a sequentially consistent read-modify-write,
// and so a full fence before the waiter's re-check (the Dekker pattern of
// Line).
func (s WaiterSet) Add(i int) { s.words[i/64].Or(1 << (i % 64)) }

// Remove unregisters entry i.
func (s WaiterSet) Remove(i int) { s.words[i/64].And(^uint64(1 << (i % 64))) }

// Has reports whether entry i is registered.
func (s WaiterSet) Has(i int) bool { return s.words[i/64].Load()&(1<<(i%64)) != 0 }

// Any reports whether any entry is registered: one load per 64 entries.
func (s WaiterSet) Any() bool {
	for _, w := range s.words {
		if w.Load() != 0 {
			return true
		}
	}
	return false
}

// Count returns the number of registered entries.
func (s WaiterSet) Count() int {
	n := 0
	for _, w := range s.words {
		n += bits.OnesCount64(w.Load())
	}
	return n
}

// Members calls fn with each registered entry, in order.
func (s WaiterSet) Members(fn func(i int)) {
	for k, w := range s.words {
		for v := w.Load(); v != 0; v &= v - 1 {
			fn(64*k + bits.TrailingZeros64(v))
		}
	}
}
