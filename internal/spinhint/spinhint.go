// Package spinhint tells the processor that the caller is spinning on a
// word another core will write: PAUSE on amd64, YIELD on arm64, nothing
// elsewhere.
//
// A loop that loads the watched line back to back keeps many loads of it in
// flight; when the peer's store arrives, the core throws them away (a
// memory-order machine clear) before it can act on the new value, and that
// delay lands on the hand-over a spin exists to make fast. The hint spaces
// the loads out. It costs tens of nanoseconds on recent x86 cores and next
// to nothing elsewhere, so a loop that counts its checks to bound itself
// counts them in PerMicrosecond.
package spinhint
