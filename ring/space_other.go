//go:build !(linux || darwin || freebsd || dragonfly || aix || openbsd || netbsd || solaris)

package ring

// freeSpace cannot tell here; such systems have no segments anyway.
func freeSpace(int) (uint64, bool) { return 0, false }
