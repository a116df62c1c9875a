package main

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestCommandLineContract runs README's "Across hosts" commands: shmq-demo
// produce into queue A, shmq-bridge out from A, shmq-bridge in into queue B,
// shmq-demo consume from B, against one NATS server; produce and consume
// must print the same messages=... crc32c=... line, and the bridges must
// stop cleanly on SIGTERM with every message acknowledged once.
func TestCommandLineContract(t *testing.T) {
	for _, kind := range []string{"spsc", "mpmc"} {
		t.Run(kind, func(t *testing.T) {
			demo := shmqDemo(t)
			srv := startServer(t)
			a, b := queueName(t, kind+"A"), queueName(t, kind+"B")
			subject := "contract." + kind
			const n = "20000"
			kindArgs := []string{"-kind", kind}

			in := startBridge(t, append([]string{"in", "-nats", srv.URL(), "-subject", subject, "-queue", b, "-progress", "0"}, kindArgs...)...)
			out := startBridge(t, append([]string{"out", "-queue", a, "-nats", srv.URL(), "-subject", subject, "-progress", "0"}, kindArgs...)...)

			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var consOut, consErr bytes.Buffer
			consume := exec.CommandContext(ctx, demo, append([]string{"consume", "-queue", b, "-count", n}, kindArgs...)...)
			consume.Stdout, consume.Stderr = &consOut, &consErr
			if err := consume.Start(); err != nil {
				t.Fatal(err)
			}
			prodOut, err := exec.CommandContext(ctx, demo, append([]string{"produce", "-queue", a, "-count", n, "-size", "64"}, kindArgs...)...).Output()
			if err != nil {
				t.Fatalf("produce: %v", err)
			}
			if err := consume.Wait(); err != nil {
				t.Fatalf("consume: %v\n%s%s", err, consOut.String(), consErr.String())
			}
			want, got := lastLine(string(prodOut)), lastLine(consOut.String())
			if !strings.HasPrefix(want, "messages="+n+" ") || got != want {
				t.Fatalf("produce printed %q, consume %q", want, got)
			}
			outLog, inLog := out.stop(t), in.stop(t)
			if p, ack, dup := counter(t, outLog, "published"), counter(t, outLog, "acknowledged"), counter(t, outLog, "duplicates"); p != 20000 || ack != 20000 || dup != 0 {
				t.Errorf("out: published=%d acknowledged=%d duplicates=%d, want 20000, 20000, 0", p, ack, dup)
			}
			if c := counter(t, inLog, "committed"); c != 20000 {
				t.Errorf("in: committed=%d, want 20000", c)
			}
			t.Logf("produce and consume: %s", got)
		})
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
