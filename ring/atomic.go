package ring

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/shmq/shmq/layout"
)

// This file is the one place where offsets of the mapping become typed
// atomic values. Every cast is preceded by a bounds and alignment check, so
// the pointers it hands out lie wholly inside the mapping, naturally aligned,
// for as long as the segment stays mapped. Callers take the pointers once,
// at open, from offsets that layout.Decode has validated; a peer that later
// rewrites the header cannot move them.

// Uint64 returns the 64-bit word at byte offset off of the mapping.
func (s *Segment) Uint64(off uint64) (*atomic.Uint64, error) {
	p, err := s.word(off, 8)
	if err != nil {
		return nil, err
	}
	return (*atomic.Uint64)(p), nil
}

// Uint32 returns the 32-bit word at byte offset off of the mapping.
func (s *Segment) Uint32(off uint64) (*atomic.Uint32, error) {
	p, err := s.word(off, 4)
	if err != nil {
		return nil, err
	}
	return (*atomic.Uint32)(p), nil
}

func (s *Segment) word(off, size uint64) (unsafe.Pointer, error) {
	if s.mem == nil {
		return nil, ErrClosed
	}
	n := uint64(len(s.mem))
	if n < size || off > n-size || off%size != 0 {
		return nil, fmt.Errorf("%w: %d-byte word at offset %d of a %d-byte mapping", layout.ErrCorrupt, size, off, n)
	}
	p := unsafe.Pointer(&s.mem[off])
	if uintptr(p)%uintptr(size) != 0 { // mappings are page-aligned; this guards the assumption
		return nil, fmt.Errorf("%w: mapping at %p is misaligned", layout.ErrCorrupt, p)
	}
	return p, nil
}

// mustUint32 and mustUint64 are for the fixed descriptor offsets, which lie
// inside the first page of every mapping this package makes.
func (s *Segment) mustUint32(off uint64) *atomic.Uint32 {
	w, err := s.Uint32(off)
	if err != nil {
		panic(err)
	}
	return w
}

func (s *Segment) mustUint64(off uint64) *atomic.Uint64 {
	w, err := s.Uint64(off)
	if err != nil {
		panic(err)
	}
	return w
}

// Contains reports whether addr lies inside the mapping.
func (s *Segment) Contains(addr uintptr) bool {
	if len(s.mem) == 0 {
		return false
	}
	base := uintptr(unsafe.Pointer(&s.mem[0]))
	return addr >= base && addr-base < uintptr(len(s.mem))
}
