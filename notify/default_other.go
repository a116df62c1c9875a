//go:build !linux

package notify

// Default returns the preferred backend for this system: without futexes, a
// polling backend with the default back-off.
func Default() Backend { return NewPoll(PollConfig{}) }
