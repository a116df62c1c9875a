package mpmc

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// TestHammer runs producers and consumers as goroutines of this process,
// each with its own handle (mapping) of the queue, and checks exactly-once
// delivery and per-producer order. Run it under -race.
func TestHammer(t *testing.T) {
	per := 20000
	if testing.Short() {
		per = 3000
	}
	for _, slots := range []uint64{1, 2, 64} {
		t.Run(fmt.Sprintf("slots=%d", slots), func(t *testing.T) {
			hammer(t, slots, 4, 4, per)
		})
	}
}

func hammer(t *testing.T, slots uint64, np, nc, per int) {
	q := newTestQueue(t, Config{Slots: slots, SlotSize: 64, StartPosition: ^uint64(0) - 3*slots})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var received atomic.Int64
	total := int64(np * per)
	counts := make([][]int32, np)
	for i := range counts {
		counts[i] = make([]int32, per)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, np+nc)
	for i := 0; i < np; i++ {
		p := mustProducer(t, reopen(t, q))
		wg.Go(func() {
			var msg [12]byte
			for s := 0; s < per; s++ {
				binary.LittleEndian.PutUint32(msg[0:], uint32(i))
				binary.LittleEndian.PutUint64(msg[4:], uint64(s))
				if err := p.Send(ctx, msg[:]); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for i := 0; i < nc; i++ {
		c := mustConsumer(t, reopen(t, q))
		wg.Go(func() {
			last := make([]int, np)
			for k := range last {
				last[k] = -1
			}
			buf := make([]byte, 64)
			for received.Load() < total {
				n, err := c.TryRecv(buf)
				if err == ErrEmpty {
					if ctx.Err() != nil { // a producer failed, or the machine is too slow: report, do not hang
						errs <- fmt.Errorf("consumer gave up after %d of %d messages: %w", received.Load(), total, ctx.Err())
						return
					}
					continue
				}
				if err != nil || n != 12 {
					errs <- fmt.Errorf("recv %d: %v", n, err)
					return
				}
				id, s := int(binary.LittleEndian.Uint32(buf)), int(binary.LittleEndian.Uint64(buf[4:]))
				if id >= np || s >= per || s <= last[id] {
					errs <- fmt.Errorf("producer %d seq %d after %d", id, s, last[id])
					return
				}
				last[id] = s
				mu.Lock()
				counts[id][s]++
				mu.Unlock()
				received.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for id := range counts {
		for s, n := range counts[id] {
			if n != 1 {
				t.Fatalf("producer %d seq %d delivered %d times", id, s, n)
			}
		}
	}
}

// Linearizability: goroutines run TrySend and TryRecv concurrently on a
// tiny queue; porcupine checks the recorded history against a sequential
// FIFO. A failed TrySend (ErrFull) or TryRecv (ErrEmpty) may be spurious
// while other operations are in flight (a slot being written holds back the
// consumers, a slot being read holds back the producers), so failures are
// accepted in any state; every successful operation must linearize.

type linInput struct {
	send bool
	v    int
}

type linOutput struct {
	ok bool
	v  int
}

var fifoModel = porcupine.Model{
	Init: func() interface{} { return "" },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		s, in, out := state.(string), input.(linInput), output.(linOutput)
		if !out.ok {
			return true, s
		}
		if in.send {
			return true, s + fmt.Sprintf("%d,", in.v)
		}
		head, rest, found := strings.Cut(s, ",")
		return found && head == fmt.Sprint(out.v), rest
	},
	DescribeOperation: func(input, output interface{}) string {
		in, out := input.(linInput), output.(linOutput)
		if in.send {
			return fmt.Sprintf("send(%d) -> %v", in.v, out.ok)
		}
		return fmt.Sprintf("recv() -> %v %d", out.ok, out.v)
	},
}

func TestLinearizable(t *testing.T) {
	iters := 200
	if testing.Short() {
		iters = 50
	}
	const workers, ops = 4, 20
	for it := 0; it < iters; it++ {
		slots := uint64(2 << (it % 2))
		q := newTestQueue(t, Config{Slots: slots, SlotSize: 64, StartPosition: ^uint64(0) - uint64(it%7)})
		epoch := time.Now()
		var mu sync.Mutex
		var hist []porcupine.Operation
		var wg sync.WaitGroup
		var next atomic.Int64
		startLine := make(chan struct{})
		for w := 0; w < workers; w++ {
			p, c := mustProducer(t, q), mustConsumer(t, q)
			wg.Go(func() {
				buf := make([]byte, 64)
				<-startLine
				for k := 0; k < ops; k++ {
					var in linInput
					var out linOutput
					call := time.Since(epoch).Nanoseconds()
					if (k+w)%2 == 0 {
						in = linInput{send: true, v: int(next.Add(1))}
						var msg [8]byte
						binary.LittleEndian.PutUint64(msg[:], uint64(in.v))
						err := p.TrySend(msg[:])
						if err != nil && err != ErrFull {
							t.Error(err)
						}
						out.ok = err == nil
					} else {
						n, err := c.TryRecv(buf)
						if err != nil && err != ErrEmpty {
							t.Error(err)
						}
						if out.ok = err == nil; out.ok {
							out.v = int(binary.LittleEndian.Uint64(buf[:n]))
						}
					}
					ret := time.Since(epoch).Nanoseconds()
					mu.Lock()
					hist = append(hist, porcupine.Operation{ClientId: w, Input: in, Call: call, Output: out, Return: ret})
					mu.Unlock()
				}
			})
		}
		close(startLine)
		wg.Wait()
		if res := porcupine.CheckOperationsTimeout(fifoModel, hist, 10*time.Second); res == porcupine.Illegal {
			t.Fatalf("iteration %d: history is not linearizable: %+v", it, hist)
		}
		q.Close()
	}
}

// TestLinearizableModel checks that the FIFO model rejects what it must, so
// that TestLinearizable is not vacuous.
func TestLinearizableModel(t *testing.T) {
	op := func(send bool, v int, ok bool, call, ret int64) porcupine.Operation {
		return porcupine.Operation{Input: linInput{send: send, v: v}, Output: linOutput{ok: ok, v: v}, Call: call, Return: ret}
	}
	good := []porcupine.Operation{op(true, 1, true, 0, 10), op(true, 2, true, 5, 20), op(false, 2, true, 21, 30), op(false, 1, true, 22, 31)}
	if !porcupine.CheckOperations(fifoModel, good) {
		t.Fatal("overlapping sends received in either order were rejected")
	}
	bad := []porcupine.Operation{op(true, 1, true, 0, 10), op(true, 2, true, 11, 20), op(false, 2, true, 21, 30)}
	if porcupine.CheckOperations(fifoModel, bad) {
		t.Fatal("out-of-order receive accepted")
	}
	dup := []porcupine.Operation{op(true, 1, true, 0, 10), op(false, 1, true, 11, 20), op(false, 1, true, 21, 30)}
	if porcupine.CheckOperations(fifoModel, dup) {
		t.Fatal("duplicate receive accepted")
	}
}
