//go:build !(linux || darwin || freebsd || solaris)

package notify

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
)

// errNoSocket is what the Socket backend returns where it is missing.
var errNoSocket = fmt.Errorf("notify: socket backend: %w on %s (no peer credentials for Unix sockets)", errors.ErrUnsupported, runtime.GOOS)

// Socket is the backend over Unix domain sockets, which checks its peers'
// credentials. This system offers shmq no way to query them, so NewSocket
// fails with an error wrapping errors.ErrUnsupported; use Poll instead.
type Socket struct{ stats }

// NewSocket fails here with an error wrapping errors.ErrUnsupported.
func NewSocket(SocketConfig) (*Socket, error) { return nil, errNoSocket }

// Rejected returns how many connections failed the credential check.
func (s *Socket) Rejected() uint64 { return 0 }

// Wait implements Backend; it fails with errors.ErrUnsupported.
func (s *Socket) Wait(context.Context, *atomic.Uint32, uint32) error { return errNoSocket }

// Wake implements Backend; it fails with errors.ErrUnsupported.
func (s *Socket) Wake(*atomic.Uint32, int) error { return errNoSocket }

// Close implements Backend.
func (s *Socket) Close() error { return nil }
