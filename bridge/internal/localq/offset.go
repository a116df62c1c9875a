package localq

import "unsafe"

// offsetIn returns the offset of sub's first byte in base, and whether sub
// starts inside base. Peek returns slices of the queue's data region; their
// offset tells the ring index (SPSC) or slot (MPMC) of the message, which the
// consumer APIs do not report today. Only addresses are compared: no pointer
// is made from the difference.
func offsetIn(base, sub []byte) (uint64, bool) {
	if len(base) == 0 || len(sub) == 0 {
		return 0, false
	}
	b := uintptr(unsafe.Pointer(unsafe.SliceData(base)))
	s := uintptr(unsafe.Pointer(unsafe.SliceData(sub)))
	if s < b || s-b >= uintptr(len(base)) {
		return 0, false
	}
	return uint64(s - b), true
}
