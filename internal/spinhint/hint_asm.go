//go:build amd64 || arm64

package spinhint

// Pause is one spin-wait hint (pause_amd64.s, pause_arm64.s).
func Pause()
