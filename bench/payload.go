package main

import (
	"encoding/binary"
	"fmt"
)

// Every message carries its sequence number in the first 8 bytes and, when
// there is room, again in the last 8; the bytes between hold a fixed
// pattern. The consumer checks the sequence of every message (so loss,
// duplication and reordering fail the run) and folds a cheap checksum; with
// full checking on (tests) it also compares every payload byte.

// newMessage returns a buffer of size bytes with the pattern filled in.
func newMessage(size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = patternByte(i)
	}
	return b
}

func patternByte(i int) byte { return byte(i*7 + 1) }

// stampMessage writes seq into a buffer made by newMessage.
func stampMessage(b []byte, seq uint64) {
	binary.LittleEndian.PutUint64(b, seq)
	if len(b) >= 16 {
		binary.LittleEndian.PutUint64(b[len(b)-8:], seq)
	}
}

// checkMessage reports a message that is not number want.
func checkMessage(b []byte, want uint64, full bool) error {
	if got := binary.LittleEndian.Uint64(b); got != want {
		return fmt.Errorf("message %d arrived with sequence %d: lost, duplicated or reordered", want, got)
	}
	if len(b) >= 16 {
		if tail := binary.LittleEndian.Uint64(b[len(b)-8:]); tail != want {
			return fmt.Errorf("message %d corrupted: trailer %d", want, tail)
		}
	}
	if full {
		for i := 8; i < len(b)-8; i++ {
			if b[i] != patternByte(i) {
				return fmt.Errorf("message %d corrupted at byte %d: %#x, want %#x", want, i, b[i], patternByte(i))
			}
		}
	}
	return nil
}

// foldChecksum mixes a message's head, tail and middle byte into sum; cheap
// enough for the timed loop, and order-sensitive.
func foldChecksum(sum uint64, b []byte) uint64 {
	head := binary.LittleEndian.Uint64(b)
	tail := binary.LittleEndian.Uint64(b[len(b)-8:])
	return (sum^head)*0x9E3779B97F4A7C15 + tail + uint64(b[len(b)/2])
}

// expectedChecksum is what the consumer should fold from count messages.
func expectedChecksum(size, count int) uint64 {
	b := newMessage(size)
	var sum uint64
	for i := range count {
		stampMessage(b, uint64(i))
		sum = foldChecksum(sum, b)
	}
	return sum
}
