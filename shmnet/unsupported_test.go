//go:build !linux

package shmnet_test

import (
	"context"
	"errors"
	"testing"

	"github.com/shmq/shmq/shmnet"
)

// TestUnsupported: without abstract Unix sockets and memfds (anywhere but
// Linux) Listen and Dial fail with ErrUnsupported rather than panicking.
// CI runs it on js/wasm.
func TestUnsupported(t *testing.T) {
	l, err := shmnet.Listen("unsupported")
	if l != nil || !errors.Is(err, shmnet.ErrUnsupported) || !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Listen = %v, %v; want ErrUnsupported", l, err)
	}
	c, err := shmnet.Dial(context.Background(), "unsupported")
	if c != nil || !errors.Is(err, shmnet.ErrUnsupported) || !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Dial = %v, %v; want ErrUnsupported", c, err)
	}
}
