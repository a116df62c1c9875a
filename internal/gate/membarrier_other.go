//go:build !linux

package gate

// membarrierReady reports false: without membarrier(2), single-caller gates
// count their calls like New's.
func membarrierReady() bool { return false }

func membarrier() { panic("gate: membarrier without kernel support") }
