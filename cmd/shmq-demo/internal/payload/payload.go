// Package payload defines the payloads that shmq-demo sends and checks,
// precisely enough for a peer in another language (C, Python, ...) to
// produce for shmq-demo consume, or to check what shmq-demo produce sends.
// The queue itself is the shmq layout (layout/LAYOUT.md, layout/shmq.h);
// this is only what goes inside a message.
//
// All integers are little-endian and unsigned; arithmetic is modulo 2^64.
// Offsets are in bytes from the start of a payload of n bytes.
//
// # Filler
//
// filler(seed) is the byte stream of an xorshift64 generator:
//
//	x = seed*0x9e3779b97f4a7c15 ^ 0xd1b54a32d192ed03
//	repeat: x ^= x << 13; x ^= x >> 7; x ^= x << 17; emit x as 8 little-endian bytes
//
// (logical shifts). A filler of k bytes is the first k bytes of that
// stream: the last value emitted gives its low k%8 bytes.
//
// # Sequenced payload: produce and consume -kind spsc
//
//	[0:8]   sequence number: 0, 1, 2, ...
//	[8:n]   filler(seq)
//
// A payload under 8 bytes is filler(seq) only and carries no sequence
// number (consume counts it as short, with a warning). consume -kind spsc
// reads the sequence number alone: a gap or a repeat fails it (exit 1),
// the filler is not checked.
//
// # Producer payload: produce and consume -kind mpmc
//
//	[0:8]    sequence number: 0, 1, 2, ... per producer
//	[8:16]   producer id (produce: its pid, or -producer-id)
//	[16:n]   filler(seq ^ rotl64(id*0xbf58476d1ce4e5b9, 29))
//
// n is at least 16 and at most the queue's message size. consume -kind
// mpmc follows each producer id apart: within a producer the numbers must
// increase (gaps are fine, other consumers took those), and the filler must
// match; a repeat, a step back or a wrong filler fails it (exit 1). A
// payload under 16 bytes is counted as short, with a warning. Producer id
// 2^64-1 is the demo's stop message (seq 0): its consumer processes stop
// when they take one.
//
// # Checked payload: the demo's stream phase
//
//	[0:8]     sequence number: 0, 1, 2, ...
//	[8:n-4]   filler(seq)
//	[n-4:n]   CRC32-C of [0:n-4], a 32-bit integer
//
// n is at least 12. The consumer process checks every field.
//
// # The summary line
//
// produce, consume and the demo's processes end with
//
//	messages=N bytes=B crc32c=HEX
//
// N is the number of payloads, B the sum of their lengths and HEX the
// CRC32-C of all of them concatenated, in the order this process sent or
// received them, as 8 lowercase hex digits. CRC32-C is CRC-32 with the
// Castagnoli polynomial (reflected 0x82f63b78), initial value 0xffffffff
// and final XOR 0xffffffff, as in iSCSI and SSE4.2's crc32 instruction; it
// is e3069283 for the nine bytes "123456789" and 00000000 for no bytes.
// For an SPSC queue consume's line equals produce's once every message
// arrived. An MPMC consumer's line covers only the messages it took, so it
// equals a producer's only with one producer and one consumer.
package payload

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/bits"
)

// Sizes of the fields.
const (
	SeqSize = 8 // the sequence number at the start of every payload
	IDSize  = 8 // the producer id after it, in a producer payload
	CRCSize = 4 // the CRC32-C at the end of a checked payload

	MinProducer = SeqSize + IDSize  // smallest producer payload
	MinChecked  = SeqSize + CRCSize // smallest checked payload
)

// StopID is the producer id of the demo's stop message.
const StopID = ^uint64(0)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Seq returns the sequence number of m, which has at least SeqSize bytes.
func Seq(m []byte) uint64 { return binary.LittleEndian.Uint64(m) }

// ID returns the producer id of m, which has at least MinProducer bytes.
func ID(m []byte) uint64 { return binary.LittleEndian.Uint64(m[SeqSize:]) }

// fill writes the first len(b) bytes of filler(seed) into b.
func fill(b []byte, seed uint64) {
	x := seed*0x9e3779b97f4a7c15 ^ 0xd1b54a32d192ed03
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

// Put writes the sequenced payload seq into b.
func Put(b []byte, seq uint64) {
	if len(b) < SeqSize {
		fill(b, seq)
		return
	}
	binary.LittleEndian.PutUint64(b, seq)
	fill(b[SeqSize:], seq)
}

// producerSeed mixes a producer id into the filler's seed, so that the
// payloads of two producers with the same sequence number differ.
func producerSeed(id, seq uint64) uint64 {
	return seq ^ bits.RotateLeft64(id*0xbf58476d1ce4e5b9, 29)
}

// PutProducer writes the producer payload seq of producer id into b, which
// has at least MinProducer bytes.
func PutProducer(b []byte, id, seq uint64) {
	binary.LittleEndian.PutUint64(b, seq)
	binary.LittleEndian.PutUint64(b[SeqSize:], id)
	fill(b[MinProducer:], producerSeed(id, seq))
}

// ProducerFillerOK reports whether the filler of m, a producer payload of
// at least MinProducer bytes, is the one for its id and sequence number;
// scratch must hold len(m) bytes.
func ProducerFillerOK(m, scratch []byte) bool {
	want := scratch[MinProducer:len(m)]
	fill(want, producerSeed(ID(m), Seq(m)))
	return bytes.Equal(m[MinProducer:], want)
}

// PutChecked writes the checked payload seq into b, which has at least
// MinChecked bytes.
func PutChecked(b []byte, seq uint64) {
	n := len(b) - CRCSize
	binary.LittleEndian.PutUint64(b, seq)
	fill(b[SeqSize:n], seq)
	binary.LittleEndian.PutUint32(b[n:], crc32.Checksum(b[:n], castagnoli))
}

// VerifyChecked verifies that m is the checked payload seq of size bytes;
// scratch must hold at least size bytes.
func VerifyChecked(m []byte, seq uint64, size int, scratch []byte) error {
	if len(m) != size {
		return fmt.Errorf("message %d has %d bytes, want %d", seq, len(m), size)
	}
	if got := Seq(m); got != seq {
		return fmt.Errorf("got sequence number %d, want %d (lost, repeated or reordered)", got, seq)
	}
	n := len(m) - CRCSize
	if got, want := binary.LittleEndian.Uint32(m[n:]), crc32.Checksum(m[:n], castagnoli); got != want {
		return fmt.Errorf("message %d: CRC32-C %08x, trailer says %08x", seq, want, got)
	}
	want := scratch[SeqSize:n]
	fill(want, seq)
	if !bytes.Equal(m[SeqSize:n], want) {
		return fmt.Errorf("message %d: filler differs although its CRC matches", seq)
	}
	return nil
}

// Tally counts payloads for the summary line. The zero value is an empty
// tally.
type Tally struct {
	Messages uint64
	Bytes    uint64
	CRC      uint32 // CRC32-C of the payloads concatenated
}

// Add counts m, after the payloads added before it.
func (t *Tally) Add(m []byte) {
	t.Messages++
	t.Bytes += uint64(len(m))
	t.CRC = crc32.Update(t.CRC, castagnoli, m)
}

// String returns the summary line, messages=N bytes=B crc32c=HEX.
func (t Tally) String() string {
	return fmt.Sprintf("messages=%d bytes=%d crc32c=%08x", t.Messages, t.Bytes, t.CRC)
}
