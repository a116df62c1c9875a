package layout

import "fmt"

// validateMPMC checks the MPMC-specific header fields. The MPMC slot format
// is defined by the MPMC queue work; until it lands, version 1 readers
// refuse MPMC segments rather than guess at them.
func validateMPMC(h *Header) error {
	return fmt.Errorf("%w: mpmc segments are not supported by this build", ErrKind)
}
