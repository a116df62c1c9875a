//go:build !linux

package notify

func osBackends() []namedBackend { return nil }
