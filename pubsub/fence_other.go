//go:build !amd64

package pubsub

import "sync/atomic"

// readFence orders the plain loads of a record copy before the atomic load
// of the intent that validates it (a seqlock reader's load-load barrier).
// Weakly ordered processors may satisfy a later atomic load before earlier
// plain ones; an atomic read-modify-write, which Go compiles to a fully
// ordered instruction (LDADDAL on arm64), keeps them apart. The word is
// the subscriber's own, so the fence costs no shared cache line.
type readFence struct{ w atomic.Uint64 }

func (f *readFence) fence() { f.w.Add(1) }
