//go:build netbsd || solaris

package ring

import "golang.org/x/sys/unix"

// freeSpace returns the bytes available to an unprivileged user on the file
// system of fd, or ok false if it cannot tell. These systems have
// fstatvfs, not fstatfs.
func freeSpace(fd int) (free uint64, ok bool) {
	var st unix.Statvfs_t
	if err := unix.Fstatvfs(fd, &st); err != nil || st.Blocks == 0 {
		return 0, false
	}
	// f_bavail counts fragments of f_frsize bytes.
	return uint64(st.Bavail) * uint64(st.Frsize), true
}
