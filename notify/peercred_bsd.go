//go:build darwin || freebsd

package notify

import "golang.org/x/sys/unix"

// peerUID returns the effective uid of the process at the other end of the
// connected Unix socket fd, as recorded by the kernel at connect time.
func peerUID(fd int) (uint32, error) {
	x, err := unix.GetsockoptXucred(fd, unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
	if err != nil {
		return 0, err
	}
	return x.Uid, nil
}
