package payload

import (
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"strings"
	"testing"
)

// The vectors below were computed by a Python implementation written from
// the package comment alone, and match what shmq-demo produce printed
// before the payload code moved here: they pin the formats that peers in
// other languages rely on.

func TestFormats(t *testing.T) {
	for _, tc := range []struct {
		name string
		put  func(b []byte)
		n    int
		want string
	}{
		{"sequenced", func(b []byte) { Put(b, 1) }, 16, "0100000000000000b4a5eb56db9b5848"},
		{"sequenced-short", func(b []byte) { Put(b, 9) }, 5, "5d07fd5cc9"},
		{"producer", func(b []byte) { PutProducer(b, 7, 2) }, 24, "0200000000000000070000000000000040cda77f6f4ddfa5"},
		{"checked", func(b []byte) { PutChecked(b, 3) }, 16, "03000000000000000ecd48ab835cbe5c"},
	} {
		b := make([]byte, tc.n)
		tc.put(b)
		if got := hex.EncodeToString(b); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestTally(t *testing.T) {
	var tl Tally
	if got := tl.String(); got != "messages=0 bytes=0 crc32c=00000000" {
		t.Errorf("empty tally: %q", got)
	}
	tl.Add([]byte("1234"))
	tl.Add([]byte("56789"))
	if got := tl.String(); got != "messages=2 bytes=9 crc32c=e3069283" {
		t.Errorf("tally of \"1234\", \"56789\": %q, want the CRC32-C check value of \"123456789\"", got)
	}
	// The summary lines of the package comment's examples.
	var seq, prod Tally
	for s := range uint64(3) {
		b := make([]byte, 20)
		Put(b, s)
		seq.Add(b)
		b = make([]byte, 16)
		PutProducer(b, 5, s)
		prod.Add(b)
	}
	if got, want := seq.String(), "messages=3 bytes=60 crc32c=b4ccc226"; got != want {
		t.Errorf("produce -count 3 -size 20: %q, want %q", got, want)
	}
	if got, want := prod.String(), "messages=3 bytes=48 crc32c=60a387f5"; got != want {
		t.Errorf("produce -kind mpmc -producer-id 5 -count 3 -size 16: %q, want %q", got, want)
	}
}

func TestVerifyChecked(t *testing.T) {
	const size = 40
	scratch := make([]byte, size)
	good := make([]byte, size)
	PutChecked(good, 7)
	if err := VerifyChecked(good, 7, size, scratch); err != nil {
		t.Fatalf("a good payload: %v", err)
	}
	// A wrong filler with a trailer that matches it.
	forged := append([]byte(nil), good...)
	forged[10] ^= 1
	binary.LittleEndian.PutUint32(forged[size-CRCSize:], crc32.Checksum(forged[:size-CRCSize], castagnoli))
	flipped := append([]byte(nil), good...)
	flipped[20] ^= 0x80
	for _, tc := range []struct {
		name string
		m    []byte
		seq  uint64
		want string
	}{
		{"size", good[:size-1], 7, "has 39 bytes, want 40"},
		{"seq", good, 8, "got sequence number 7, want 8"},
		{"crc", flipped, 7, "CRC32-C"},
		{"filler", forged, 7, "filler differs"},
	} {
		err := VerifyChecked(tc.m, tc.seq, size, scratch)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
}

func TestProducerFillerOK(t *testing.T) {
	b := make([]byte, 33)
	scratch := make([]byte, len(b))
	PutProducer(b, 3, 11)
	if !ProducerFillerOK(b, scratch) {
		t.Fatal("a good payload fails")
	}
	if Seq(b) != 11 || ID(b) != 3 {
		t.Errorf("Seq, ID = %d, %d; want 11, 3", Seq(b), ID(b))
	}
	for _, i := range []int{0, 8, 16, 32} {
		c := append([]byte(nil), b...)
		c[i] ^= 1
		if ProducerFillerOK(c, scratch) {
			t.Errorf("byte %d flipped: filler still OK", i)
		}
	}
	other := make([]byte, len(b))
	PutProducer(other, 4, 11)
	if string(other[MinProducer:]) == string(b[MinProducer:]) {
		t.Error("two producers' payloads with the same number have the same filler")
	}
}
