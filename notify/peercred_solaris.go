package notify

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// peerUID returns the effective uid of the process at the other end of the
// connected Unix socket fd, as recorded by the kernel at connect time.
func peerUID(fd int) (uint32, error) {
	u, err := unix.GetPeerUcred(uintptr(fd))
	if err != nil {
		return 0, err
	}
	uid := u.Geteuid()
	if uid < 0 { // ucred_geteuid: not available
		return 0, fmt.Errorf("notify: peer of fd %d has no effective uid", fd)
	}
	return uint32(uid), nil
}
