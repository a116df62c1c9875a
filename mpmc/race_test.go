//go:build race

package mpmc

// raceEnabled: tests running under the race detector, which slows
// goroutines down, use smaller counts.
const raceEnabled = true
