//go:build !linux

package sem

import (
	"testing"

	"github.com/shmq/shmq/notify"
)

func addOSBackends(map[string]func(t *testing.T) notify.Backend) {}
