// Package fence has the one sequentially consistent store that the wake
// protocol needs after every publication: a cursor store that no later
// load of the same goroutine may pass, so that a publisher's check for
// waiters after it and a waiter's re-check of the cursor after registering
// cannot both miss (a store-load, Dekker, pattern).
//
// sync/atomic's Store gives that order, on amd64 as an XCHG on the
// cursor's line. An XCHG first waits for every earlier store (the record
// just written) to leave the store buffer, and only then asks for its own
// line, which the peer polling the cursor holds: the two line transfers
// happen one after the other, on the path of every hand-over. Store here
// writes the cursor with a plain move (on x86 every store is a release)
// and then fences with a locked operation on the caller's own stack line,
// as Linux's smp_mb does, so the two transfers overlap and the order is
// the same. Elsewhere, and in race-detector builds, it is sync/atomic's
// Store.
package fence
