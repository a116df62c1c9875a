package notify

import "io/fs"

// SocketConfig configures a Socket backend.
type SocketConfig struct {
	// Listen is the path of the Unix socket on which this process receives
	// its wake-ups. Empty means the backend can only wake (Wait fails).
	// A stale socket left at the path by a dead process (one that refuses
	// connections) is replaced; anything else there makes NewSocket fail
	// with EADDRINUSE. NewSocket briefly makes a private directory next to
	// the path (see listenUnix).
	Listen string
	// Mode is the permission of the socket file at Listen; 0 means 0600.
	// It is applied exactly, regardless of the umask. Connecting needs write
	// permission, so a group mode such as 0660 lets the group's processes
	// reach the socket; Authorize still decides which of them may wake.
	Mode fs.FileMode
	// Peer is the path of the waiting side's socket that Wake connects to.
	// Empty means the backend can only wait (Wake fails).
	Peer string
	// Authorize decides whether the process at the other end of a
	// connection, with effective uid uid, is trusted: as a waker connecting
	// to Listen, and as the listener at Peer that Wake writes to. Nil allows
	// only this process's effective uid.
	Authorize func(uid uint32) bool
}
