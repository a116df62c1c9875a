//go:build !amd64 && !arm64

package spinhint

// PerMicrosecond is about how many checks of a polled word take a
// microsecond where there is no hint.
const PerMicrosecond = 512

// Pause does nothing on this architecture.
func Pause() {}
