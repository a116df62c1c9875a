package spsc

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/shmq/shmq/ring"
)

// TestHammer runs a producer and a consumer goroutine on separate handles
// of one segment, with every send and receive variant, and checks each
// message's bytes and order. Run it under -race too: the detector does not
// see the mapped memory, but it does see the handles' private state.
func TestHammer(t *testing.T) {
	count := uint64(200000)
	if testing.Short() {
		count = 30000
	}
	for _, capacity := range []uint64{32, 64, 1024, 1 << 16} {
		t.Run(fmt.Sprint(capacity), func(t *testing.T) { hammer(t, capacity, count) })
	}
}

func hammer(t *testing.T, capacity, count uint64) {
	loc := tempShm(t)
	q, err := Create(loc, Config{Capacity: capacity, StartPosition: (^uint64(0) - 8*capacity) &^ 7})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	q2, err := Open(context.Background(), loc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Close()
	p, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	c, err := q2.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	max := q.MaxMessage()
	// A hang guard, not a speed limit: on a loaded 2-core machine (4 busy
	// neighbours) one shape took 90 s.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, max)
		batch := make([][]byte, 0, 4)
		for seq := uint64(0); seq < count; {
			switch seq % 3 {
			case 0: // blocking send
				b := buf[:sizeOf(seq, min(max, 512))]
				fill(b, seq)
				if err := p.Send(ctx, b); err != nil {
					errc <- err
					return
				}
				seq++
			case 1: // zero-copy reserve and commit
				b, err := p.Reserve(sizeOf(seq, min(max, 512)))
				if err == ErrFull {
					continue
				}
				if err != nil {
					errc <- err
					return
				}
				fill(b, seq)
				p.Commit()
				seq++
			case 2: // a batch
				batch = batch[:0]
				for i := uint64(0); i < 4 && seq+i < count; i++ {
					b := make([]byte, sizeOf(seq+i, min(max, 512)))
					fill(b, seq+i)
					batch = append(batch, b)
				}
				if err := p.SendBatch(ctx, batch); err != nil {
					errc <- err
					return
				}
				seq += uint64(len(batch))
			}
		}
		errc <- nil
	}()
	buf := make([]byte, max)
	for seq := uint64(0); seq < count; {
		switch seq % 2 {
		case 0:
			n, err := c.Recv(ctx, buf)
			if err != nil {
				t.Fatalf("Recv %d: %v", seq, err)
			}
			if err := verify(buf[:n], seq); err != nil {
				t.Fatal(err)
			}
			seq++
		case 1:
			_, err := c.TryRecvBatch(3, func(m []byte) error {
				if err := verify(m, seq); err != nil {
					return err
				}
				seq++
				return nil
			})
			if err != nil && err != ErrEmpty {
				t.Fatal(err)
			}
			if err == ErrEmpty && ctx.Err() != nil { // the producer failed, or the machine is too slow
				select {
				case perr := <-errc:
					t.Fatalf("at %d: producer: %v", seq, perr)
				default:
					t.Fatalf("at %d: %v", seq, ctx.Err())
				}
			}
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if _, err := c.TryRecv(buf); err != ErrEmpty {
		t.Fatalf("extra message after the stream: %v", err)
	}
}

// BenchmarkCrossProcess64 streams 64-byte messages to a consumer process;
// the consumer checks the sequence of each. Compare with BenchmarkChannel64.
func BenchmarkCrossProcess64(b *testing.B) {
	loc := tempShm(b)
	q, err := Create(loc, Config{Capacity: 1 << 16})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	c := startHelper(b, "bench", queueName(loc), map[string]string{"SHMQ_COUNT": fmt.Sprint(b.N)})
	c.expect(b, "attached")
	p, err := q.Producer()
	if err != nil {
		b.Fatal(err)
	}
	msg := make([]byte, 64)
	ctx := context.Background()
	b.SetBytes(64)
	b.ResetTimer()
	for seq := 0; seq < b.N; seq++ {
		fill(msg[:8], uint64(seq))
		if err := p.Send(ctx, msg); err != nil {
			b.Fatal(err)
		}
	}
	c.expect(b, "ok")
	b.StopTimer()
}

// BenchmarkChannel64 is the reference: a buffered Go channel carrying the
// same 64-byte messages between two goroutines of one process.
func BenchmarkChannel64(b *testing.B) {
	ch := make(chan [64]byte, 1024)
	done := make(chan error)
	go func() {
		for seq := 0; seq < b.N; seq++ {
			m := <-ch
			if m[0] != byte(seq) {
				done <- fmt.Errorf("message %d out of order", seq)
				return
			}
		}
		done <- nil
	}()
	b.SetBytes(64)
	b.ResetTimer()
	var m [64]byte
	for seq := 0; seq < b.N; seq++ {
		m[0] = byte(seq)
		ch <- m
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSendRecv64 is the cost of one TrySend and one TryRecv of a
// 64-byte message on one goroutine: the queue's own work, without the cost
// of moving cache lines between cores.
func BenchmarkSendRecv64(b *testing.B) {
	_, p, c := newPair(b, ring.Memfd("bench"), Config{Capacity: 1 << 16})
	msg := make([]byte, 64)
	buf := make([]byte, 64)
	b.SetBytes(64)
	for i := 0; i < b.N; i++ {
		if err := p.TrySend(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := c.TryRecv(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBatch64 is the batch path's own cost per 64-byte message on
// one goroutine: TrySendBatch of 64 messages, then TryRecvBatch of 64.
func BenchmarkBatch64(b *testing.B) {
	_, p, c := newPair(b, ring.Memfd("bench"), Config{Capacity: 1 << 16})
	msgs := make([][]byte, 64)
	for i := range msgs {
		msgs[i] = make([]byte, 64)
	}
	stage := make([]byte, 64*64)
	k := 0
	take := func(m []byte) error { k += copy(stage[k:], m); return nil }
	b.SetBytes(64)
	for i := 0; i < b.N; i += len(msgs) {
		if n, err := p.TrySendBatch(msgs); n != len(msgs) || err != nil {
			b.Fatal(n, err)
		}
		k = 0
		if n, err := c.TryRecvBatch(len(msgs), take); n != len(msgs) || err != nil {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkPingPong measures the round trip of a 64-byte message to an echo
// process and back, over two queues: spinning, the default (spin, then
// park), and parking at once. Compare "park" with the raw futex ping-pong,
// notify's BenchmarkFutexPingPongProcesses.
func BenchmarkPingPong(b *testing.B) {
	for _, mode := range []string{"spin", "default", "park"} {
		b.Run(mode, func(b *testing.B) {
			os.Setenv("SHMQ_WAIT", mode)
			defer os.Unsetenv("SHMQ_WAIT")
			w := helperWait()
			req, rsp := tempShm(b), tempShm(b)
			qreq, err := Create(req, Config{Capacity: 1 << 12, Wait: w})
			if err != nil {
				b.Fatal(err)
			}
			defer qreq.Close()
			qrsp, err := Create(rsp, Config{Capacity: 1 << 12, Wait: w})
			if err != nil {
				b.Fatal(err)
			}
			defer qrsp.Close()
			h := startHelper(b, "echo", queueName(req), map[string]string{
				"SHMQ_REPLY": queueName(rsp), "SHMQ_COUNT": fmt.Sprint(b.N), "SHMQ_WAIT": mode})
			h.expect(b, "attached")
			p, err := qreq.Producer()
			if err != nil {
				b.Fatal(err)
			}
			c, err := qrsp.Consumer()
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			msg, buf := make([]byte, 64), make([]byte, 64)
			rtt := make([]time.Duration, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if err := p.Send(ctx, msg); err != nil {
					b.Fatal(err)
				}
				if _, err := c.Recv(ctx, buf); err != nil {
					b.Fatal(err)
				}
				rtt[i] = time.Since(start)
			}
			b.StopTimer()
			h.expect(b, "ok")
			reportPercentiles(b, rtt)
		})
	}
}

// BenchmarkStream64 streams 64-byte messages to a consumer process with the
// consumer spinning or parking at once, to compare blocking mode with spin
// mode (BenchmarkCrossProcess64 uses the default).
func BenchmarkStream64(b *testing.B) {
	for _, mode := range []string{"spin", "park"} {
		b.Run(mode, func(b *testing.B) {
			os.Setenv("SHMQ_WAIT", mode)
			defer os.Unsetenv("SHMQ_WAIT")
			loc := tempShm(b)
			q, err := Create(loc, Config{Capacity: 1 << 16, Wait: helperWait()})
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			c := startHelper(b, "bench", queueName(loc), map[string]string{"SHMQ_COUNT": fmt.Sprint(b.N), "SHMQ_WAIT": mode})
			c.expect(b, "attached")
			p, err := q.Producer()
			if err != nil {
				b.Fatal(err)
			}
			msg := make([]byte, 64)
			ctx := context.Background()
			b.SetBytes(64)
			b.ResetTimer()
			for seq := 0; seq < b.N; seq++ {
				fill(msg[:8], uint64(seq))
				if err := p.Send(ctx, msg); err != nil {
					b.Fatal(err)
				}
			}
			c.expect(b, "ok")
		})
	}
}

// reportPercentiles adds the p50, p99 and p99.9 of samples to the
// benchmark's output.
func reportPercentiles(b *testing.B, samples []time.Duration) {
	slices.Sort(samples)
	at := func(q float64) float64 { return float64(samples[int(q*float64(len(samples)-1))].Nanoseconds()) }
	b.ReportMetric(at(0.50), "p50-ns")
	b.ReportMetric(at(0.99), "p99-ns")
	b.ReportMetric(at(0.999), "p99.9-ns")
}
