// Package notifytest is test support for the packages that wait through
// notify: backends that let a test hold a goroutine at a chosen point.
// (notify's own tests cannot import it; they use internal/shmtest.)
package notifytest

import (
	"sync/atomic"

	"github.com/shmq/shmq/notify"
)

// StallWake is the default backend whose next Wake, once Armed, stops until
// the test closes Release: a way to hold a goroutine inside a publishing
// path (Backend is public configuration, so a queue's Wait can carry it).
type StallWake struct {
	notify.Backend
	Armed   atomic.Bool
	At      chan struct{} // closed when the armed Wake is reached
	Release chan struct{} // closed by the test to let it go on
}

// NewStallWake returns a StallWake over notify.Default(), not armed.
func NewStallWake() *StallWake {
	return &StallWake{Backend: notify.Default(), At: make(chan struct{}), Release: make(chan struct{})}
}

// Wake stops at the armed wake until Release is closed, then wakes.
func (s *StallWake) Wake(w *atomic.Uint32, n int) error {
	if s.Armed.CompareAndSwap(true, false) {
		close(s.At)
		<-s.Release
	}
	return s.Backend.Wake(w, n)
}
