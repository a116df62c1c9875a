package gate

// ErrClosed is the report of a spin (wakeline.Spin) that ended
// because the gate closed; callers map it to their package's closed error.
var ErrClosed = errClosed{}

type errClosed struct{}

func (errClosed) Error() string { return "gate closed" }
