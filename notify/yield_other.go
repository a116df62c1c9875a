//go:build !linux

package notify

import "runtime"

// schedYield gives the processor to another goroutine; elsewhere than on
// Linux it does not reach other processes.
func schedYield() { runtime.Gosched() }
