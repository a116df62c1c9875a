//go:build !amd64

package main

var haveTicks = false

func ticks() uint64 { return monoTicks() }
