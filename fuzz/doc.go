// Package fuzz holds shmq's fuzz targets: the header decoder, the record
// check, and for both the SPSC and the MPMC queue random operation sequences
// against a plain queue and corruption of a live segment between
// operations. Their seed corpora are in testdata.
//
// A queue operation that hangs ends the fuzz worker with a report in the
// fuzzing log: every goroutine's stack, the step and operation, and the
// queue's cursors and the slots or record around them (watchdog_test.go).
//
// Run one with, for example:
//
//	go test ./fuzz -run '^$' -fuzz '^FuzzSPSCCorruption$' -fuzztime 1m
package fuzz
