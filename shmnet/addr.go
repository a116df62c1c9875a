package shmnet

import (
	"fmt"
	"strings"

	"github.com/shmq/shmq/ring"
)

// Network is the network name of shmnet addresses.
const Network = "shmq"

// MaxNameLen bounds listener names, which become abstract socket names.
const MaxNameLen = 64

// Addr is the address of one end of a shmnet connection, or of a listener.
type Addr struct {
	// Name is the listener's name: the address a dialer passes to Dial.
	Name string
	// PID is the process at this end, as the kernel reported it at
	// connect time; 0 when unknown.
	PID int
}

// Network returns "shmq".
func (a *Addr) Network() string { return Network }

// String returns the listener's name, so that a Listener's Addr().String()
// can be passed to Dial, as with the net package.
func (a *Addr) String() string {
	if a == nil {
		return "<nil>"
	}
	return a.Name
}

// parseName returns the listener name in addr: the name itself, with an
// optional leading slash (as in shm names) or "shmq:" prefix.
func parseName(addr string) (string, error) {
	name := strings.TrimPrefix(strings.TrimPrefix(addr, Network+":"), "/")
	if name == "" || len(name) > MaxNameLen {
		return "", fmt.Errorf("%w: %q must have 1 to %d characters", ring.ErrBadName, addr, MaxNameLen)
	}
	if name[0] == '.' || name[0] == '-' {
		return "", fmt.Errorf("%w: %q starts with %q", ring.ErrBadName, addr, name[0])
	}
	for _, c := range []byte(name) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return "", fmt.Errorf("%w: %q may hold only letters, digits, '.', '_' and '-'", ring.ErrBadName, addr)
		}
	}
	return name, nil
}
