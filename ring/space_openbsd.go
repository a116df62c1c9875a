package ring

import "golang.org/x/sys/unix"

// freeSpace returns the bytes available to an unprivileged user on the file
// system of fd, or ok false if it cannot tell.
func freeSpace(fd int) (free uint64, ok bool) {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil || st.F_blocks == 0 {
		return 0, false
	}
	return uint64(st.F_bavail) * uint64(st.F_bsize), true
}
