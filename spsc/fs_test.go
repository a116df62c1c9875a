package spsc

import "io/fs"

var (
	fsErrNotExist   = fs.ErrNotExist
	fsErrExist      = fs.ErrExist
	fsErrPermission = fs.ErrPermission
	fsErrInvalid    = fs.ErrInvalid
)
