package mpmc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/shmq/shmq/ring"
)

// BenchmarkSharedProducer: G goroutines of this process send b.N 64-byte
// messages in all to a consumer process, through one SharedProducer (one
// registry entry), through a Producer of their own each (G entries),
// through a pool of 4 Producers in a channel (4 entries; a goroutine waits
// for a free Producer), or through a sync.Pool of
// Producers (as many entries as goroutines sending at once: the pool makes
// a new Producer whenever every one is in use, and may drop idle ones,
// which detaches them). ns/op is per message; entries is the registry
// entries the producers took. With 1024 goroutines the sync.Pool runs out
// of registry entries (1023 left by the consumer), as do 1024 Producers
// of their own, and the benchmark says so and skips.
func BenchmarkSharedProducer(b *testing.B) {
	for _, g := range []int{8, 1024} {
		for _, kind := range []string{"shared", "own", "chan-pool-4", "sync-pool"} {
			b.Run(fmt.Sprintf("g=%d/%s", g, kind), func(b *testing.B) { benchShared(b, g, kind) })
		}
	}
}

func benchShared(b *testing.B, goroutines int, kind string) {
	q := newTestQueue(b, Config{Slots: benchSlots, MaxMessage: benchMsgSize, Registry: 1024})
	cmd := helper(b, q, "bench-consumer")
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	startAndWaitReady(b, cmd)
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	ctx := context.Background()
	var entries atomic.Int64
	var send func(msg []byte) error
	var own chan *Producer // kind "own": each goroutine takes one at its start
	var closeAll func()
	switch kind {
	case "own":
		own = make(chan *Producer, goroutines)
		for range goroutines {
			p, err := q.Producer()
			if errors.Is(err, ring.ErrRegistryFull) {
				b.Skipf("%v: a Producer per goroutine", err)
			}
			if err != nil {
				b.Fatal(err)
			}
			own <- p
			entries.Add(1)
		}
		closeAll = func() {}
	case "shared":
		s, err := q.SharedProducer()
		if err != nil {
			b.Fatal(err)
		}
		entries.Store(1)
		send = func(msg []byte) error { return s.Send(ctx, msg) }
		closeAll = func() { s.Close() }
	case "chan-pool-4":
		pool := make(chan *Producer, 4)
		for range cap(pool) {
			pool <- mustProducer(b, q)
			entries.Add(1)
		}
		send = func(msg []byte) error {
			p := <-pool
			defer func() { pool <- p }()
			return p.Send(ctx, msg)
		}
		closeAll = func() {
			for range cap(pool) {
				(<-pool).Close()
			}
		}
	case "sync-pool":
		var mu sync.Mutex
		var all []*Producer
		pool := sync.Pool{New: func() any {
			p, err := q.Producer()
			if err != nil {
				return err
			}
			entries.Add(1)
			mu.Lock()
			all = append(all, p)
			mu.Unlock()
			return p
		}}
		send = func(msg []byte) error {
			v := pool.Get()
			p, ok := v.(*Producer)
			if !ok {
				return v.(error)
			}
			defer pool.Put(p)
			return p.Send(ctx, msg)
		}
		closeAll = func() {
			for _, p := range all {
				p.Close()
			}
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	b.SetBytes(benchMsgSize)
	b.ResetTimer()
	io.WriteString(in, "go\n")
	in.Close()
	for range goroutines {
		wg.Go(func() {
			msg := make([]byte, benchMsgSize)
			send := send
			if own != nil {
				p := <-own
				defer func() { own <- p }()
				send = func(msg []byte) error { return p.Send(ctx, msg) }
			}
			for next.Add(1) <= int64(b.N) {
				if err := send(msg); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if errors.Is(err, ring.ErrRegistryFull) {
			b.Skipf("%v: a pool grows with the goroutines sending at once", err)
		}
		b.Fatal(err)
	}
	end := make([]byte, benchMsgSize)
	end[0] = 1
	if own != nil {
		p := <-own
		send = func(msg []byte) error { return p.Send(ctx, msg) }
		defer func() { own <- p }()
	}
	if err := send(end); err != nil {
		b.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	closeAll()
	b.ReportMetric(float64(entries.Load()), "entries")
}
