//go:build !amd64 && !arm64

package spinhint

// Pause does nothing on this architecture.
func Pause() {}
