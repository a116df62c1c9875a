// Package counter writes the monitoring counters of a registry entry
// (messages, bytes, stalls) without a fence.
//
// The counters are single-writer words in shared memory that no protocol
// decision reads: Stats, shmq-demo inspect and C peers load them to show
// progress. Go's atomic stores are sequentially consistent, which on amd64
// makes each one a locked exchange (about as costly as the whole rest of a
// small send), and a commit that published three of them paid for three
// fences where the wake protocol needs one (the cursor store). A Counter
// instead stores with a plain, naturally aligned 64-bit move: a reader on
// another CPU never sees a torn value (Go's memory model: racing reads of a
// word observe some write of it), but may see it a little after the cursor
// store that the count describes, and in no particular order with the
// other counters. Every write is also visible once the writer's next fenced
// store (its next cursor store, a park, its detach) is.
//
// The mapped memory is outside Go's heap, so the race detector, which only
// watches the heap and globals, does not see these accesses; on 32-bit
// architectures, where a plain 64-bit store is two stores, Set is an atomic
// store instead.
package counter

import (
	"sync/atomic"
	"unsafe"

	"github.com/shmq/shmq/ring"
)

// A Counter is a 64-bit counter word in shared memory with one writer.
// The zero value discards what is set.
type Counter struct{ p *uint64 }

// Of returns the counter at w, a word of a shared mapping that this process
// alone writes (its registry entry's).
func Of(w *atomic.Uint64) Counter { return Counter{(*uint64)(unsafe.Pointer(w))} }

// Set stores v.
func (c Counter) Set(v uint64) {
	if c.p != nil {
		set(c.p, v)
	}
}

// Entry is the counters of one registry entry that its holder updates as
// it moves messages: Waits and Wakes, which count system calls, keep their
// atomic stores.
type Entry struct{ Messages, Bytes, Stalls Counter }

// OfEntry returns the counters of e, which this process holds.
func OfEntry(e *ring.Entry) Entry {
	return Entry{Messages: Of(e.Messages), Bytes: Of(e.Bytes), Stalls: Of(e.Stalls)}
}
