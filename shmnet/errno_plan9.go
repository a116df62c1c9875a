package shmnet

import "errors"

// Plan 9 has no error numbers; shmnet does not run there anyway.
var (
	errEPIPE        = errors.New("broken pipe")
	errECONNREFUSED = errors.New("connection refused")
)
