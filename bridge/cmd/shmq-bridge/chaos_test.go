package main

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shmq/shmq/bridge/internal/jsconn"
	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/spsc"
)

// The chaos tests stream N checksummed messages from queue A on "host A"
// through shmq-bridge out, JetStream, and shmq-bridge in to queue B on
// "host B", and disrupt the stream three times on the way: SIGKILL of out
// (and a restart), SIGKILL of in, or a restart of the NATS server (file
// store, same port). Every message must arrive, with an intact payload;
// duplicates are counted. Through JetStream's deduplication, the stream
// must hold each message exactly once whatever is killed.

func TestKillOut(t *testing.T)       { chaos(t, "out") }
func TestKillIn(t *testing.T)        { chaos(t, "in") }
func TestRestartServer(t *testing.T) { chaos(t, "server") }

func chaos(t *testing.T, victim string) {
	const n = 60000
	const size = 64
	srv := startServer(t)
	a, b := queueName(t, victim+"A"), queueName(t, victim+"B")
	subject := "chaos." + victim
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// Host B's consumer and host A's producer, in this process.
	qb, err := spsc.OpenOrCreate(ctx, ring.Shm(b), spsc.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer qb.Close()
	cb, err := qb.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	qa, err := spsc.OpenOrCreate(ctx, ring.Shm(a), spsc.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer qa.Close()
	pa, err := qa.Producer()
	if err != nil {
		t.Fatal(err)
	}

	in := startBridge(t, "in", "-nats", srv.URL(), "-subject", subject, "-queue", b, "-ack-wait", "1s", "-progress", "0", "-reconnect-max", "500ms")
	out := startBridge(t, "out", "-queue", a, "-nats", srv.URL(), "-subject", subject, "-ack-timeout", "1s", "-progress", "0", "-reconnect-max", "500ms")

	var sent atomic.Uint64
	prodErr := make(chan error, 1)
	go func() {
		msg := make([]byte, size)
		for i := uint64(0); i < n; i++ {
			putSeq(msg, i)
			// The consumer (out) may be killed while the ring is full: wait
			// for its successor.
			for err := pa.Send(ctx, msg); err != nil; err = pa.Send(ctx, msg) {
				if !errors.Is(err, spsc.ErrPeerDead) {
					prodErr <- err
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
			sent.Store(i + 1)
		}
		prodErr <- nil
	}()

	seen := make([]uint8, n)
	var distinct, dups, bad uint64
	var progress atomic.Uint64
	buf := make([]byte, qb.MaxMessage())
	recv := func(ctx context.Context) error {
		k, err := cb.Recv(ctx, buf)
		for errors.Is(err, spsc.ErrPeerDead) { // in was killed: wait for its successor
			time.Sleep(10 * time.Millisecond)
			k, err = cb.Recv(ctx, buf)
		}
		if err != nil {
			return err
		}
		seq, ok := checkSeq(buf[:k])
		switch {
		case !ok || seq >= n || k != size:
			bad++
		case seen[seq] > 0:
			dups++
			seen[seq]++
		default:
			seen[seq] = 1
			distinct++
			progress.Store(distinct)
		}
		return nil
	}

	// Disrupt at a quarter, half and three quarters of the stream: of the
	// messages sent into A when out is the victim (it runs ahead of B by up
	// to the JetStream backlog), of those received from B otherwise.
	mark := &progress
	if victim == "out" {
		mark = &sent
	}
	disrupted := make(chan error, 1)
	go func() {
		for _, at := range []uint64{n / 4, n / 2, 3 * n / 4} {
			for mark.Load() < at {
				if ctx.Err() != nil {
					disrupted <- ctx.Err()
					return
				}
				time.Sleep(time.Millisecond)
			}
			switch victim {
			case "out":
				out.kill(t)
				out = out.restart(t)
			case "in":
				in.kill(t)
				in = in.restart(t)
			case "server":
				if err := srv.Restart(300 * time.Millisecond); err != nil {
					disrupted <- err
					return
				}
			}
		}
		disrupted <- nil
	}()

	for distinct < n {
		if err := recv(ctx); err != nil {
			t.Fatalf("after %d distinct messages (%d duplicates): %v", distinct, dups, err)
		}
	}
	if err := <-disrupted; err != nil {
		t.Fatal(err)
	}
	if err := <-prodErr; err != nil {
		t.Fatal(err)
	}
	outLog, inLog := out.stop(t), in.stop(t)
	// Anything still on its way is a duplicate. The stopped in closed
	// queue B's producer: the stream ends (io.EOF) once it is drained.
	for {
		rctx, rcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		err := recv(rctx)
		rcancel()
		if errors.Is(err, context.DeadlineExceeded) || err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if bad > 0 {
		t.Errorf("%d corrupt payloads", bad)
	}
	stored := streamMessages(t, srv.URL(), subject)
	if stored != n {
		t.Errorf("the stream holds %d messages, want %d: deduplication failed", stored, n)
	}
	t.Logf("%s disrupted 3 times: %d messages arrived, %d duplicates in queue B, stream holds %d; last out: %s; last in: %s",
		victim, distinct, dups, stored, lastStopped(outLog), lastStopped(inLog))
	if victim != "in" && dups > 0 {
		t.Errorf("%d duplicates in queue B: only a killed in may commit a message twice", dups)
	}
}

func lastStopped(log string) string {
	for _, l := range splitLines(log) {
		if i := indexOf(l, "stopped: "); i >= 0 {
			log = l[i+len("stopped: "):]
		}
	}
	return log
}

func streamMessages(t *testing.T, url, subject string) uint64 {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, jsconn.DefaultStreamName(subject))
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}
