package relay

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shmq/shmq/bridge/internal/jsconn"
	"github.com/shmq/shmq/bridge/internal/localq"
	"github.com/shmq/shmq/bridge/internal/natstest"
	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/spsc"
)

// The benchmarks compare, on one in-process NATS server with JetStream
// (file store) and in one run:
//
//   - bridged: shmq queue A -> Out -> JetStream -> In -> shmq queue B, with
//     release-after-ack and commit-before-ack;
//   - jetstream: a plain nats.go asynchronous JetStream publisher (1024 in
//     flight) and a pull consumer that acknowledges every message;
//   - core: plain core NATS publish and subscribe (no persistence, no
//     acknowledgements), for reference.
//
// Throughput reports msgs/s for b.N 64-byte messages from the first send
// to the last receipt; Latency sends one message at a time and reports the
// send-to-receipt percentiles (one way, one clock) in microseconds.
//
//	go test -run '^$' -bench . -benchtime 20000x ./internal/relay

const benchSize = 64

var benchSeq atomic.Uint64

// pipe is one way of carrying messages: send hands one over, recv returns
// one (blocking), close tears it down.
type pipe struct {
	send  func(ctx context.Context, msg []byte) error
	recv  func(ctx context.Context, buf []byte) (int, error)
	close func()
}

func benchServer(b *testing.B) *natstest.Server {
	b.Helper()
	srv, err := natstest.Start(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Stop)
	return srv
}

func connect(b *testing.B, srv *natstest.Server) *nats.Conn {
	b.Helper()
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		b.Fatal(err)
	}
	return nc
}

func bridgedPipe(b *testing.B, srv *natstest.Server) pipe {
	n := benchSeq.Add(1)
	nameA, nameB := fmt.Sprintf("sbb%d-%dA", os.Getpid(), n), fmt.Sprintf("sbb%d-%dB", os.Getpid(), n)
	subject := fmt.Sprintf("bench.bridged.%d", n)
	ctx, cancel := context.WithCancel(context.Background())
	qa, err := spsc.OpenOrCreate(ctx, ring.Shm(nameA), spsc.Config{})
	if err != nil {
		b.Fatal(err)
	}
	pa, err := qa.Producer()
	if err != nil {
		b.Fatal(err)
	}
	qb, err := spsc.OpenOrCreate(ctx, ring.Shm(nameB), spsc.Config{})
	if err != nil {
		b.Fatal(err)
	}
	cb, err := qb.Consumer()
	if err != nil {
		b.Fatal(err)
	}
	src, err := localq.Kinds["spsc"].OpenSource(ctx, ring.Shm(nameA), nameA, localq.Config{})
	if err != nil {
		b.Fatal(err)
	}
	sink, err := localq.Kinds["spsc"].OpenSink(ctx, ring.Shm(nameB), localq.Config{})
	if err != nil {
		b.Fatal(err)
	}
	so := jsconn.StreamOptions{Subject: subject, Create: true, Storage: jetstream.FileStorage}
	ncOut, ncIn := connect(b, srv), connect(b, srv)
	done := make(chan error, 2)
	go func() { done <- Out(ctx, OutConfig{Source: src, Conn: ncOut, Stream: so}) }()
	go func() { done <- In(ctx, InConfig{Sink: sink, Conn: ncIn, Stream: so, Durable: "bench"}) }()
	return pipe{
		send: pa.Send,
		recv: cb.Recv,
		close: func() {
			cancel()
			for i := 0; i < 2; i++ {
				if err := <-done; err != nil {
					b.Error(err)
				}
			}
			ncOut.Close()
			ncIn.Close()
			src.Close()
			sink.Close()
			qa.Close()
			qb.Close()
			ring.Unlink(ring.Shm(nameA))
			ring.Unlink(ring.Shm(nameB))
		},
	}
}

func jetstreamPipe(b *testing.B, srv *natstest.Server) pipe {
	subject := fmt.Sprintf("bench.js.%d", benchSeq.Add(1))
	ncPub, ncSub := connect(b, srv), connect(b, srv)
	js, err := jetstream.New(ncPub, jetstream.WithPublishAsyncMaxPending(1024))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	stream, err := jsconn.EnsureStream(ctx, js, jsconn.StreamOptions{Subject: subject, Create: true, Storage: jetstream.FileStorage})
	if err != nil {
		b.Fatal(err)
	}
	jsSub, err := jetstream.New(ncSub)
	if err != nil {
		b.Fatal(err)
	}
	cons, err := jsSub.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable: "bench", AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: subject, MaxAckPending: 1024,
	})
	if err != nil {
		b.Fatal(err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(256))
	if err != nil {
		b.Fatal(err)
	}
	return pipe{
		send: func(_ context.Context, msg []byte) error {
			_, err := js.PublishAsync(subject, msg)
			return err
		},
		recv: func(_ context.Context, buf []byte) (int, error) {
			m, err := it.Next()
			if err != nil {
				return 0, err
			}
			n := copy(buf, m.Data())
			return n, m.Ack()
		},
		close: func() {
			<-js.PublishAsyncComplete()
			it.Stop()
			ncPub.Close()
			ncSub.Close()
		},
	}
}

func corePipe(b *testing.B, srv *natstest.Server) pipe {
	subject := fmt.Sprintf("bench.core.%d", benchSeq.Add(1))
	ncPub, ncSub := connect(b, srv), connect(b, srv)
	sub, err := ncSub.SubscribeSync(subject)
	if err != nil {
		b.Fatal(err)
	}
	sub.SetPendingLimits(-1, -1)
	ncSub.Flush()
	return pipe{
		send: func(_ context.Context, msg []byte) error { return ncPub.Publish(subject, msg) },
		recv: func(ctx context.Context, buf []byte) (int, error) {
			m, err := sub.NextMsgWithContext(ctx)
			if err != nil {
				return 0, err
			}
			return copy(buf, m.Data), nil
		},
		close: func() { ncPub.Close(); ncSub.Close() },
	}
}

var pipes = []struct {
	name string
	make func(*testing.B, *natstest.Server) pipe
}{
	{"bridged", bridgedPipe},
	{"jetstream", jetstreamPipe},
	{"core", corePipe},
}

func BenchmarkThroughput(b *testing.B) {
	srv := benchServer(b)
	for _, pp := range pipes {
		b.Run(pp.name, func(b *testing.B) {
			p := pp.make(b, srv)
			defer p.close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			sent := make(chan error, 1)
			b.ResetTimer()
			start := time.Now()
			go func() {
				msg := make([]byte, benchSize)
				for i := 0; i < b.N; i++ {
					msg[0] = byte(i)
					if err := p.send(ctx, msg); err != nil {
						sent <- err
						return
					}
				}
				sent <- nil
			}()
			buf := make([]byte, 1024)
			for i := 0; i < b.N; i++ {
				if _, err := p.recv(ctx, buf); err != nil {
					b.Fatalf("after %d: %v", i, err)
				}
			}
			d := time.Since(start)
			b.StopTimer()
			if err := <-sent; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/d.Seconds(), "msgs/s")
		})
	}
}

func BenchmarkLatency(b *testing.B) {
	srv := benchServer(b)
	for _, pp := range pipes {
		b.Run(pp.name, func(b *testing.B) {
			p := pp.make(b, srv)
			defer p.close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			msg, buf := make([]byte, benchSize), make([]byte, 1024)
			// Warm up: the first message creates the consumer's pull.
			for i := 0; i < 100; i++ {
				if err := p.send(ctx, msg); err != nil {
					b.Fatal(err)
				}
				if _, err := p.recv(ctx, buf); err != nil {
					b.Fatal(err)
				}
			}
			lat := make([]time.Duration, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if err := p.send(ctx, msg); err != nil {
					b.Fatal(err)
				}
				if _, err := p.recv(ctx, buf); err != nil {
					b.Fatal(err)
				}
				lat[i] = time.Since(t0)
			}
			b.StopTimer()
			slices.Sort(lat)
			pct := func(q float64) float64 {
				return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Nanoseconds()) / 1e3
			}
			b.ReportMetric(pct(0.5), "p50-µs")
			b.ReportMetric(pct(0.99), "p99-µs")
		})
	}
}
