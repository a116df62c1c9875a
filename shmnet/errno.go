//go:build !plan9

package shmnet

import "syscall"

// The system errors that ErrPeerClosed and ErrRefused match.
var errEPIPE, errECONNREFUSED error = syscall.EPIPE, syscall.ECONNREFUSED
