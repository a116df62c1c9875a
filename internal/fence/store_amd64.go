//go:build amd64 && !race

package fence

import "sync/atomic"

// Store stores v into w, atomically, and then waits until the store is
// visible to every processor before any later load of the caller runs: it
// orders like w.Store (store_amd64.s).
func Store(w *atomic.Uint64, v uint64)
