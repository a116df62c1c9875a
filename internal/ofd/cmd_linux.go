package ofd

import "golang.org/x/sys/unix"

const (
	cmdSetLk = unix.F_OFD_SETLK
	cmdGetLk = unix.F_OFD_GETLK
)
