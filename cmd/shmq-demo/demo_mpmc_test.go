package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestMergeBitmaps checks the parent's side of the MPMC phase's
// exactly-once check on consumer reports made with encodeBitmap.
func TestMergeBitmaps(t *testing.T) {
	line := func(id, n uint64, bm ...uint64) string {
		return fmt.Sprintf("producer=%d messages=%d seq_first=0 seq_last=0 gaps=0 repeats=0 bitmap=%s", id, n, encodeBitmap(bm))
	}
	union := [][]uint64{make([]uint64, 2), make([]uint64, 2)}
	counts, n, err := mergeBitmaps(strings.Join([]string{line(0, 2, 0b101, 0), line(1, 1, 0, 1), "ok messages=3"}, "\n"), union)
	if err != nil || n != 3 || counts != "producer 0: 2, producer 1: 1" {
		t.Fatalf("first report: %q, %d, %v", counts, n, err)
	}
	if counts, n, err := mergeBitmaps("ok messages=0\n", union); err != nil || n != 0 || counts != "none" {
		t.Errorf("empty report: %q, %d, %v", counts, n, err)
	}
	for _, tc := range []struct {
		out, want string
	}{
		{line(0, 1, 0b100, 0), "producer 0: message 2 received twice"},
		{line(1, 1, 0, 1), "producer 1: message 64 received twice"},
		{line(0, 2, 0b10, 0), "reports 2 messages, its bitmap holds 1"},
		{line(2, 1, 1, 0), "bad report line"},
		{line(0, 1, 1), "bad bitmap"},
	} {
		if _, _, err := mergeBitmaps(tc.out, union); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error saying %q", tc.out, err, tc.want)
		}
	}
}
