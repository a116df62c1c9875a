package interop

import (
	"context"
	"encoding/binary"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmq/shmq/spsc"
)

// BenchmarkStream64 measures streaming throughput of 64-byte SPSC messages
// for the four pairings of C and Go producer and consumer, through a 1 MiB
// ring. Each side runs in its own process (C) or goroutine (Go), and the
// time is taken by the consumer, from its first message to its last, so
// process start-up does not count. b.N is the message count; use a large
// one, e.g.
//
//	go test ./interop/ -run '^$' -bench Stream64 -benchtime 2000000x
//
// It reports ns/msg and msgs/s (the default ns/op includes start-up).
func BenchmarkStream64(b *testing.B) {
	cc := compiler(b)
	bin := build(b, cc, b.TempDir(), "shmq_bench")
	for _, pair := range []struct {
		name         string
		cProd, cCons bool
	}{{"CToC", true, true}, {"GoToC", false, true}, {"CToGo", true, false}, {"GoToGo", false, false}} {
		b.Run(pair.name, func(b *testing.B) {
			ns := stream64(b, bin, pair.cProd, pair.cCons, uint64(b.N))
			b.ReportMetric(float64(ns)/float64(b.N), "ns/msg")
			b.ReportMetric(float64(b.N)/(float64(ns)/1e9), "msgs/s")
		})
	}
}

// stream64 streams count messages and returns the consumer's elapsed ns.
func stream64(b *testing.B, bin string, cProd, cCons bool, count uint64) int64 {
	q, loc, _ := newQueue(b, false, spsc.Config{Capacity: 1 << 20})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var waits []func() string
	run := func(role string) {
		cmd := exec.Command(bin, role, loc, fmt.Sprint(count))
		_, wait := start(b, cmd)
		waits = append(waits, wait)
	}
	goErr := make(chan error, 2)
	goElapsed := make(chan int64, 1)
	if cCons {
		run("consume")
	} else {
		c, err := q.Consumer()
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 64)
			var first time.Time
			for i := uint64(0); i < count; i++ {
				n, err := c.Recv(ctx, buf)
				if err == nil && (n != 64 || binary.LittleEndian.Uint64(buf) != i) {
					err = fmt.Errorf("message %d: %d bytes, seq %d", i, n, binary.LittleEndian.Uint64(buf))
				}
				if err != nil {
					goErr <- err
					cancel()
					return
				}
				if i == 0 {
					first = time.Now()
				}
			}
			goElapsed <- int64(time.Since(first))
			goErr <- nil
		}()
	}
	if cProd {
		run("produce")
	} else {
		p, err := q.Producer()
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			defer p.Close()
			buf := make([]byte, 64)
			for i := uint64(0); i < count; i++ {
				binary.LittleEndian.PutUint64(buf, i)
				if err := p.Send(ctx, buf); err != nil {
					goErr <- err
					cancel()
					return
				}
			}
			goErr <- nil
		}()
	}
	var outs []string
	for _, wait := range waits {
		outs = append(outs, wait())
	}
	for i := 0; i < 2-len(waits); i++ {
		if err := <-goErr; err != nil {
			b.Fatal(err)
		}
	}
	if !cCons {
		return <-goElapsed
	}
	// The consumer was started first: its figure is outs[0].
	v, ok := strings.CutPrefix(outs[0], "elapsed_ns=")
	ns, err := strconv.ParseInt(v, 10, 64)
	if !ok || err != nil {
		b.Fatalf("C consumer printed %q", outs[0])
	}
	return ns
}
