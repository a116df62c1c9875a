package gate

import (
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// membarrier(2) commands (linux/membarrier.h).
const (
	membarrierQuery                     = 0
	membarrierPrivateExpedited          = 1 << 3
	membarrierRegisterPrivateExpedited  = 1 << 4
	membarrierPrivateExpeditedSupported = membarrierPrivateExpedited | membarrierRegisterPrivateExpedited
)

// membarrierReady registers this process for private expedited barriers,
// once, and reports whether the kernel offers them.
var membarrierReady = sync.OnceValue(func() bool {
	mask, _, errno := unix.Syscall(unix.SYS_MEMBARRIER, membarrierQuery, 0, 0)
	if errno != 0 || mask&membarrierPrivateExpeditedSupported != membarrierPrivateExpeditedSupported {
		return false
	}
	_, _, errno = unix.Syscall(unix.SYS_MEMBARRIER, membarrierRegisterPrivateExpedited, 0, 0)
	return errno == 0
})

// membarrier makes every running thread of this process execute a full
// memory barrier before it returns. It cannot fail once registered; if it
// did, the gates that rely on it would not be safe to close, so it panics.
func membarrier() {
	if _, _, errno := unix.Syscall(unix.SYS_MEMBARRIER, membarrierPrivateExpedited, 0, 0); errno != 0 {
		panic(fmt.Sprintf("gate: membarrier: %v", errno))
	}
}
