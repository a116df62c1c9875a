//go:build !race

package mpmc

const raceEnabled = false
