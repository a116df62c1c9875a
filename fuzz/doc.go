// Package fuzz holds shmq's fuzz targets: the header decoder, the record
// check, and for both the SPSC and the MPMC queue random operation sequences
// against a plain queue and corruption of a live segment between
// operations. Their seed corpora are in testdata.
// Run one with, for example:
//
//	go test ./fuzz -run '^$' -fuzz '^FuzzSPSCCorruption$' -fuzztime 1m
package fuzz
