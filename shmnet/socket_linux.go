package shmnet

import (
	"net"

	"golang.org/x/sys/unix"
)

// socketAddr is the rendezvous socket of the listener called name: an
// abstract Unix socket, which has no file to leak and vanishes with its
// last descriptor. SOCK_SEQPACKET keeps the handshake's two messages whole.
func socketAddr(name string) (*net.UnixAddr, error) {
	return &net.UnixAddr{Name: "@shmq/net/" + name, Net: "unixpacket"}, nil
}

// peerCred returns the uid and pid of the process at the other end of s,
// as the kernel recorded them when it connected (or listened).
func peerCred(s *net.UnixConn) (uid uint32, pid int, err error) {
	rc, err := s.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var cred *unix.Ucred
	cerr := rc.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if cerr != nil {
		return 0, 0, cerr
	}
	if err != nil {
		return 0, 0, err
	}
	return cred.Uid, int(cred.Pid), nil
}
