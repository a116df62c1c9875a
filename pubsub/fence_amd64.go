package pubsub

// readFence orders the plain loads of a record copy before the atomic load
// of the intent that validates it. On amd64 loads are not reordered with
// older loads, and the compiler does not move an atomic load above the
// copy's call, so nothing is needed.
type readFence struct{}

func (readFence) fence() {}
