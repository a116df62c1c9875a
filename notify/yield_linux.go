package notify

import "golang.org/x/sys/unix"

// schedYield gives the processor to another runnable thread, of any process.
func schedYield() { unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }
