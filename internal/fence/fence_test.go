package fence

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"
)

// storeBuffering runs the store-buffering litmus test trials times on two
// goroutines: each stores 1 into its own word with store, then loads the
// other's. It returns how often both loads saw 0, the outcome that a
// sequentially consistent store forbids and that x86's store buffer
// produces for a plain one.
func storeBuffering(trials int, store func(*atomic.Uint64, uint64)) int {
	const stride = 8 // words: x and y of a trial on separate lines
	x := make([]atomic.Uint64, trials*stride)
	y := make([]atomic.Uint64, trials*stride)
	rx := make([]uint64, trials)
	ry := make([]uint64, trials)
	var arrived atomic.Int64
	var wg sync.WaitGroup
	side := func(mine, theirs []atomic.Uint64, seen []uint64) {
		defer wg.Done()
		for i := range trials {
			// Start each trial together: both sides wait for the other.
			arrived.Add(1)
			for arrived.Load() < int64(2*(i+1)) {
			}
			store(&mine[i*stride], 1)
			seen[i] = theirs[i*stride].Load()
		}
	}
	wg.Add(2)
	go side(x, y, ry)
	go side(y, x, rx)
	wg.Wait()
	both := 0
	for i := range trials {
		if rx[i] == 0 && ry[i] == 0 {
			both++
		}
	}
	return both
}

func plainStore(w *atomic.Uint64, v uint64) { *(*uint64)(unsafe.Pointer(w)) = v }

// TestStoreOrdersLaterLoads: after Store, no load of the same goroutine
// reads a value older than a store the other goroutine made before its own
// Store. The same harness with a plain store must see the forbidden
// outcome, or it could not tell the difference.
func TestStoreOrdersLaterLoads(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 || runtime.NumCPU() < 2 {
		t.Skip("needs two CPUs")
	}
	trials := 200000
	if testing.Short() || raceEnabled {
		trials = 20000 // the race detector makes each trial a hundred times slower
	}
	if n := storeBuffering(trials, Store); n != 0 {
		t.Fatalf("Store: %d of %d trials saw both loads before both stores", n, trials)
	}
	if runtime.GOARCH != "amd64" || raceEnabled {
		// The control is about x86's store buffer, and its plain store
		// is a data race that the race detector would report.
		return
	}
	if n := storeBuffering(trials, plainStore); n == 0 {
		t.Skipf("a plain store was never reordered in %d trials here, so the harness cannot show that Store orders", trials)
	} else {
		t.Logf("control: a plain store let both loads pass in %d of %d trials", n, trials)
	}
}
