package notify

// Default returns the preferred backend for this system: a futex backend.
func Default() Backend { return NewFutex() }
