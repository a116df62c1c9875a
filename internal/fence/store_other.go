//go:build !amd64 || race

package fence

import "sync/atomic"

// Store is w.Store: on these architectures a sequentially consistent store
// is already a release store followed by a fence, or cheaper (arm64's STLR,
// ordered before a later LDAR). Race-detector builds use it on amd64 too,
// so that the detector sees the store as the synchronizing access it is.
func Store(w *atomic.Uint64, v uint64) { w.Store(v) }
