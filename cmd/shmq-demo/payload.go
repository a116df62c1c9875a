package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/bits"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// seqSize is the size of the sequence number at the start of a payload.
const seqSize = 8

// fill writes the deterministic filler of message seq into b: an xorshift
// stream seeded from seq, so every byte depends on the message.
func fill(b []byte, seq uint64) {
	x := seq*0x9e3779b97f4a7c15 ^ 0xd1b54a32d192ed03
	next := func() uint64 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		return x
	}
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, next())
		b = b[8:]
	}
	if len(b) > 0 {
		v := next()
		for i := range b {
			b[i] = byte(v >> (8 * i))
		}
	}
}

// putMessage writes message seq as produce sends it: the little-endian
// sequence number, then filler; a payload shorter than the sequence number
// is filler only.
func putMessage(b []byte, seq uint64) {
	if len(b) < seqSize {
		fill(b, seq)
		return
	}
	binary.LittleEndian.PutUint64(b, seq)
	fill(b[seqSize:], seq)
}

// The demo's stream messages also carry their own checksum:
//
//	[0:8]     little-endian sequence number
//	[8:n-4]   filler derived from the sequence number
//	[n-4:n]   little-endian CRC32-C of bytes [0:n-4]
const (
	crcSize        = 4
	minDemoMessage = seqSize + crcSize
)

// putChecked writes demo message seq into b, len(b) >= minDemoMessage.
func putChecked(b []byte, seq uint64) {
	n := len(b) - crcSize
	binary.LittleEndian.PutUint64(b, seq)
	fill(b[seqSize:n], seq)
	binary.LittleEndian.PutUint32(b[n:], crc32.Checksum(b[:n], castagnoli))
}

// checkMessage verifies that m is demo message seq of size bytes; scratch
// must hold at least size bytes.
func checkMessage(m []byte, seq uint64, size int, scratch []byte) error {
	if len(m) != size {
		return fmt.Errorf("message %d has %d bytes, want %d", seq, len(m), size)
	}
	if got := binary.LittleEndian.Uint64(m); got != seq {
		return fmt.Errorf("got sequence number %d, want %d (lost, repeated or reordered)", got, seq)
	}
	n := len(m) - crcSize
	if got, want := binary.LittleEndian.Uint32(m[n:]), crc32.Checksum(m[:n], castagnoli); got != want {
		return fmt.Errorf("message %d: CRC32-C %08x, trailer says %08x", seq, want, got)
	}
	want := scratch[seqSize:n]
	fill(want, seq)
	if !bytes.Equal(m[seqSize:n], want) {
		return fmt.Errorf("message %d: filler differs although its CRC matches", seq)
	}
	return nil
}

// Payloads of a shared (MPMC) queue, as produce -kind mpmc and the demo's
// MPMC phase send them, carry the producer's id so that consumers can tell
// the producers' streams apart:
//
//	[0:8]    little-endian sequence number, 0, 1, 2, ... per producer
//	[8:16]   little-endian producer id
//	[16:n]   filler derived from both
const (
	producerIDSize = 8
	minMPMCMessage = seqSize + producerIDSize
)

// mpmcSeed mixes a producer id into the filler seed, so that the messages
// of two producers with the same sequence number differ.
func mpmcSeed(id, seq uint64) uint64 {
	return seq ^ bits.RotateLeft64(id*0xbf58476d1ce4e5b9, 29)
}

// putMPMCMessage writes message seq of producer id into b, len(b) >=
// minMPMCMessage.
func putMPMCMessage(b []byte, id, seq uint64) {
	binary.LittleEndian.PutUint64(b, seq)
	binary.LittleEndian.PutUint64(b[seqSize:], id)
	fill(b[minMPMCMessage:], mpmcSeed(id, seq))
}

// mpmcFillerOK reports whether the filler of m, a message of at least
// minMPMCMessage bytes, is what putMPMCMessage writes for its id and
// sequence number; scratch must hold len(m) bytes.
func mpmcFillerOK(m []byte, scratch []byte) bool {
	seq := binary.LittleEndian.Uint64(m)
	id := binary.LittleEndian.Uint64(m[seqSize:])
	want := scratch[minMPMCMessage:len(m)]
	fill(want, mpmcSeed(id, seq))
	return bytes.Equal(m[minMPMCMessage:], want)
}
