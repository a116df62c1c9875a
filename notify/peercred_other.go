//go:build !linux && !darwin && !freebsd

package notify

import "errors"

// peerUID fails where no peer-credential query is wired up, so every
// connection is rejected rather than trusted.
func peerUID(fd int) (uint32, error) { return 0, errors.ErrUnsupported }
