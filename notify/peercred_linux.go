package notify

import "golang.org/x/sys/unix"

// peerUID returns the effective uid of the process at the other end of the
// connected Unix socket fd, as recorded by the kernel at connect time.
func peerUID(fd int) (uint32, error) {
	u, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return 0, err
	}
	return u.Uid, nil
}
