//go:build linux || darwin || freebsd || dragonfly || aix

package ring

import "golang.org/x/sys/unix"

// freeSpace returns the bytes available to an unprivileged user on the file
// system of fd (what df reports as available), or ok false if it cannot
// tell.
func freeSpace(fd int) (free uint64, ok bool) {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil || !(st.Blocks > 0) {
		return 0, false
	}
	// f_bavail counts blocks of f_bsize bytes.
	return uint64(st.Bavail) * uint64(st.Bsize), true
}
