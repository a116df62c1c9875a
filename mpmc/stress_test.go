package mpmc

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestStressProcesses runs 3 producer and 3 consumer processes on one queue
// with cursors started just below 2^64, so positions wrap during the run.
// Producers send numbered, checksummed messages of random lengths through
// Send, SendBatch and Reserve/Commit; consumers take them through Recv,
// Peek/Release and TryRecvBatch, check checksums and per-producer order,
// and write what they got to a file. The parent checks that every message
// was delivered exactly once. Set MPMC_LONG=1 for millions of messages.
func TestStressProcesses(t *testing.T) {
	// Default: 300k messages. Tiny rings hand every message over between
	// processes that sleep while they wait, so -short trims them.
	small, scale := 1, 1
	if testing.Short() {
		small = 5
	}
	if os.Getenv("MPMC_LONG") != "" {
		scale = 10
	}
	for _, tc := range []struct {
		slots uint64
		per   int // messages per producer
	}{
		{1, 10000 * scale / small},
		{2, 20000 * scale / small},
		{1024, 70000 * scale},
	} {
		t.Run(fmt.Sprintf("slots=%d", tc.slots), func(t *testing.T) {
			stress(t, tc.slots, 3, 3, tc.per)
		})
	}
}

func stress(t *testing.T, slots uint64, np, nc, per int) {
	stressMode(t, slots, false, np, nc, per)
}

// stressMode is stress on a queue in locked mode or not.
func stressMode(t *testing.T, slots uint64, locked bool, np, nc, per int) {
	q := newTestQueue(t, Config{Slots: slots, SlotSize: 128, StartPosition: ^uint64(0) - uint64(np*per/2), Locked: locked})
	dir := t.TempDir()
	begin := time.Now()
	var prods, cons []*exec.Cmd
	for i := 0; i < nc; i++ {
		cmd := helper(t, q, "stress-consumer", "MPMC_OUT="+filepath.Join(dir, fmt.Sprint(i)))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cons = append(cons, cmd)
	}
	for i := 0; i < np; i++ {
		cmd := helper(t, q, "stress-producer", fmt.Sprintf("MPMC_ID=%d", i), fmt.Sprintf("MPMC_COUNT=%d", per))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		prods = append(prods, cmd)
	}
	failed := false
	for _, cmd := range prods {
		if err := cmd.Wait(); err != nil {
			t.Errorf("producer: %v", err)
			failed = true
		}
	}
	if failed {
		for _, cmd := range cons {
			cmd.Process.Kill()
			cmd.Wait()
		}
		t.FailNow()
	}
	// One end-of-stream message per consumer, after every real message.
	p := mustProducer(t, q)
	buf := make([]byte, 64)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := 0; i < nc; i++ {
		if err := p.Send(ctx, stressMessage(buf, sentinelID, 0, stressHeader)); err != nil {
			t.Fatal(err)
		}
	}
	for _, cmd := range cons {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("consumer: %v", err)
		}
	}
	elapsed := time.Since(begin)
	seen := make([][]uint8, np)
	for i := range seen {
		seen[i] = make([]uint8, per)
	}
	total := 0
	for i := 0; i < nc; i++ {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		for ; len(b) >= 8; b = b[8:] {
			id, seq := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:])
			if int(id) >= np || int(seq) >= per {
				t.Fatalf("consumer %d got producer %d seq %d", i, id, seq)
			}
			seen[id][seq]++
			total++
		}
	}
	for id := range seen {
		for seq, n := range seen[id] {
			if n != 1 {
				t.Fatalf("producer %d seq %d delivered %d times", id, seq, n)
			}
		}
	}
	st, err := q.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Used != 0 {
		t.Fatalf("queue not drained: %+v", st)
	}
	t.Logf("%d messages through %d slots in %v (%v/msg); cursors now %d", total, slots, elapsed,
		elapsed/time.Duration(total), st.Tail)
}
