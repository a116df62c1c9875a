package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/shmq/shmq/cmd/shmq-demo/internal/payload"
	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/mpmc"
	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/spsc"
)

type demoFlags struct {
	messages   uint64
	size       int
	capacity   uint64
	roundtrips int
	warmup     int
	pingCap    time.Duration
	timeout    time.Duration

	mpmcMessages  uint64 // total for the MPMC phase; 0 skips it
	mpmcProducers int
	mpmcConsumers int
	mpmcSlots     uint64
	mpmcLocked    bool
}

// Demo tuning that needs no flag.
const (
	streamBatch  = 128      // messages reserved per commit
	pingCapacity = 64 << 10 // ring bytes of each ping-pong queue
	attachWait   = 10 * time.Second
	maxDemoProcs = 16 // producer or consumer processes of the MPMC phase, each

	maxMPMCMessages = 100_000_000
)

func runDemo(args []string) error {
	f := demoFlags{}
	fs := newFlags("demo")
	fs.Uint64Var(&f.messages, "messages", 4_000_000, "")
	fs.IntVar(&f.size, "size", 64, "")
	fs.Uint64Var(&f.capacity, "capacity", 1<<20, "")
	fs.IntVar(&f.roundtrips, "roundtrips", 200_000, "")
	fs.IntVar(&f.warmup, "warmup", 20_000, "")
	fs.DurationVar(&f.pingCap, "pingcap", 15*time.Second, "")
	fs.DurationVar(&f.timeout, "timeout", 55*time.Second, "")
	fs.Uint64Var(&f.mpmcMessages, "mpmc-messages", 300_000, "")
	fs.IntVar(&f.mpmcProducers, "mpmc-producers", 3, "")
	fs.IntVar(&f.mpmcConsumers, "mpmc-consumers", 3, "")
	fs.Uint64Var(&f.mpmcSlots, "mpmc-slots", mpmc.DefaultSlots, "")
	fs.BoolVar(&f.mpmcLocked, "mpmc-locked", false, "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case f.messages == 0:
		return usagef("-messages must be positive")
	case f.size < payload.MinChecked:
		return usagef("-size must be at least %d (sequence number and CRC)", payload.MinChecked)
	case f.roundtrips <= 0 || f.warmup < 0:
		return usagef("-roundtrips must be positive and -warmup not negative")
	case f.pingCap <= 0 || f.timeout <= 0:
		return usagef("-pingcap and -timeout must be positive")
	case f.mpmcProducers < 1 || f.mpmcProducers > maxDemoProcs || f.mpmcConsumers < 1 || f.mpmcConsumers > maxDemoProcs:
		return usagef("-mpmc-producers and -mpmc-consumers must be between 1 and %d", maxDemoProcs)
	case f.mpmcMessages > 0 && f.mpmcMessages < uint64(f.mpmcProducers):
		return usagef("-mpmc-messages must be 0 (no MPMC phase) or at least -mpmc-producers")
	case f.mpmcMessages > maxMPMCMessages:
		// Each consumer keeps a bitmap of the numbers it received.
		return usagef("-mpmc-messages must be at most %d", maxMPMCMessages)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find my executable to start the child: %w", err)
	}
	ctx, stop := signalContext()
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	defer removeAll()

	base := "shmq-demo-" + strconv.Itoa(os.Getpid())
	fmt.Printf("shmq-demo: pid %d, GOMAXPROCS %d, %s/%s\n", os.Getpid(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH)
	if err := streamPhase(ctx, exe, base, &f); err != nil {
		return fmt.Errorf("stream: %w", err)
	}
	if err := pingPongPhase(ctx, exe, base, &f); err != nil {
		return fmt.Errorf("ping-pong: %w", err)
	}
	if f.mpmcMessages > 0 {
		if err := mpmcPhase(ctx, exe, base+"-mpmc", &f); err != nil {
			return fmt.Errorf("mpmc: %w", err)
		}
	}
	fmt.Println("ok: every check held")
	return nil
}

// createQueue creates a fresh SPSC queue and registers its name for removal.
func createQueue(name string, capacity uint64) (*spsc.Queue, error) {
	loc := ring.Shm(name)
	q, err := spsc.Create(loc, spsc.Config{Capacity: capacity})
	if errors.Is(err, spsc.ErrExists) {
		return nil, fmt.Errorf("%w (left by an earlier run? remove it with: shmq-demo rm %s)", err, name)
	}
	if err != nil {
		return nil, err
	}
	removeOnExit(name, func() error { return ring.Unlink(loc) })
	return q, nil
}

// closeAndRemove closes q and removes its name, reporting a failure to.
func closeAndRemove(q *spsc.Queue, name string) {
	q.Close()
	if err := removeNow(name); err != nil {
		fmt.Fprintf(os.Stderr, "shmq-demo: removing %s: %v\n", name, err)
	}
}

// waitAttached polls until ready reports true, one of the children exits,
// ctx ends or attachWait passes.
func waitAttached(ctx context.Context, ready func() (bool, error), chs ...*child) error {
	deadline := time.Now().Add(attachWait)
	for {
		ok, err := ready()
		if ok || err != nil {
			return err
		}
		for _, ch := range chs {
			if ch.exited() {
				_, err := ch.result()
				if err == nil {
					err = fmt.Errorf("child pid %d exited", ch.pid())
				}
				return fmt.Errorf("child exited before attaching: %w", err)
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("child pid %s did not attach within %v", pids(chs), attachWait)
		}
		time.Sleep(time.Millisecond)
	}
}

func attached(e ring.EntryInfo) bool { return e.State == layout.EntryAttached && e.Alive }

// streamPhase streams f.messages checksummed messages to a child consumer
// and reports the throughput.
func streamPhase(ctx context.Context, exe, name string, f *demoFlags) error {
	q, err := createQueue(name, f.capacity)
	if err != nil {
		return err
	}
	defer closeAndRemove(q, name)
	if f.size > q.MaxMessage() {
		return fmt.Errorf("-size %d exceeds the largest message of a %d-byte ring, %d", f.size, f.capacity, q.MaxMessage())
	}
	p, err := q.Producer()
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Printf("stream: created %v (ring of %d bytes); starting the consumer process\n", ring.Shm(name), q.Capacity())
	ch, err := startChild(ctx, exe, childStream, "-queue", name,
		"-messages", strconv.FormatUint(f.messages, 10), "-size", strconv.Itoa(f.size))
	if err != nil {
		return err
	}
	defer ch.stop()
	if err := waitAttached(ctx, func() (bool, error) {
		st, err := q.Stats()
		return attached(st.Consumer), err
	}, ch); err != nil {
		return err
	}
	fmt.Printf("stream: consumer pid %d attached; sending %d messages of %d bytes\n", ch.pid(), f.messages, f.size)

	cctx, cancel := ch.untilExit(ctx)
	defer cancel()
	start := time.Now()
	sent, err := sendStream(cctx, p, f.messages, f.size)
	if err == nil {
		err = waitDrained(cctx, q)
	}
	elapsed := time.Since(start)
	if err != nil {
		if ch.exited() {
			if _, cerr := ch.result(); cerr != nil {
				return cerr
			}
		}
		return err
	}
	line, err := ch.result()
	if err != nil {
		return err
	}
	total := f.messages * uint64(f.size)
	want := "ok " + sent.String()
	if line != want {
		return fmt.Errorf("consumer reported %q, producer has %q", line, want)
	}
	st, err := q.Stats()
	if err != nil {
		return err
	}
	if st.Producer.Messages != f.messages || st.Consumer.Messages != f.messages ||
		st.Producer.Bytes != total || st.Consumer.Bytes != total || st.Used != 0 {
		return fmt.Errorf("registry counters disagree: producer %d messages/%d bytes, consumer %d/%d, %d bytes left, want %d/%d",
			st.Producer.Messages, st.Producer.Bytes, st.Consumer.Messages, st.Consumer.Bytes, st.Used, f.messages, total)
	}
	fmt.Printf("stream: consumer checked every message (sequence, size, filler, CRC32-C): %s\n", line[len("ok "):])
	fmt.Printf("stream: %d messages, %d bytes in %v: %.2f M messages/s, %.1f MB/s (%.1f MiB/s)\n",
		f.messages, total, elapsed.Round(time.Microsecond), rate(f.messages, elapsed)/1e6,
		rate(total, elapsed)/1e6, rate(total, elapsed)/(1<<20))
	fmt.Printf("stream: producer stalls=%d waits=%d wakes=%d; consumer stalls=%d waits=%d wakes=%d\n",
		st.Producer.Stalls, st.Producer.Waits, st.Producer.Wakes, st.Consumer.Stalls, st.Consumer.Waits, st.Consumer.Wakes)
	return nil
}

// sendStream sends n demo messages of size bytes, writing them in place
// with Reserve and committing up to streamBatch at a time. It returns the
// tally of the payloads in order.
func sendStream(ctx context.Context, p *spsc.Producer, n uint64, size int) (payload.Tally, error) {
	var sent payload.Tally
	scratch := make([]byte, size)
	pending := 0
	for seq := uint64(0); seq < n; {
		if seq%(1<<14) == 0 {
			if err := ctx.Err(); err != nil {
				return sent, fmt.Errorf("after %d messages: %w", seq, err)
			}
		}
		b, err := p.Reserve(size)
		switch {
		case err == spsc.ErrFull && pending > 0:
			p.Commit()
			pending = 0
			continue
		case err == spsc.ErrFull:
			// Nothing to commit and no room: let Send wait for space.
			payload.PutChecked(scratch, seq)
			if err := p.Send(ctx, scratch); err != nil {
				return sent, fmt.Errorf("after %d messages: %w", seq, err)
			}
			sent.Add(scratch)
			seq++
			continue
		case err != nil:
			return sent, fmt.Errorf("after %d messages: %w", seq, err)
		}
		payload.PutChecked(b, seq)
		sent.Add(b)
		seq++
		if pending++; pending == streamBatch {
			p.Commit()
			pending = 0
		}
	}
	p.Commit()
	return sent, nil
}

// waitDrained waits until the consumer has released everything.
func waitDrained(ctx context.Context, q *spsc.Queue) error {
	for i := 0; ; i++ {
		st, err := q.Stats()
		if err != nil || st.Used == 0 {
			return err
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("waiting for the consumer to drain %d bytes: %w", st.Used, err)
		}
		if i < 100 {
			runtime.Gosched()
		} else {
			time.Sleep(20 * time.Microsecond)
		}
	}
}

// pingPongPhase measures round trips through a request queue and a
// response queue with a child echoing, and prints latency percentiles.
func pingPongPhase(ctx context.Context, exe, base string, f *demoFlags) error {
	reqName, rspName := base+"-req", base+"-rsp"
	req, err := createQueue(reqName, pingCapacity)
	if err != nil {
		return err
	}
	defer closeAndRemove(req, reqName)
	rsp, err := createQueue(rspName, pingCapacity)
	if err != nil {
		return err
	}
	defer closeAndRemove(rsp, rspName)
	if f.size > req.MaxMessage() {
		return fmt.Errorf("-size %d exceeds the ping queues' largest message, %d", f.size, req.MaxMessage())
	}
	p, err := req.Producer()
	if err != nil {
		return err
	}
	defer p.Close()
	c, err := rsp.Consumer()
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Printf("ping-pong: created %v and %v; starting the echo process\n", ring.Shm(reqName), ring.Shm(rspName))
	ch, err := startChild(ctx, exe, childEcho, "-req", reqName, "-rsp", rspName)
	if err != nil {
		return err
	}
	defer ch.stop()
	if err := waitAttached(ctx, func() (bool, error) {
		a, err := req.Stats()
		if err != nil {
			return false, err
		}
		b, err := rsp.Stats()
		return attached(a.Consumer) && attached(b.Producer), err
	}, ch); err != nil {
		return err
	}
	fmt.Printf("ping-pong: echo pid %d attached; %d warm-up and %d timed round trips of %d bytes\n",
		ch.pid(), f.warmup, f.roundtrips, f.size)

	cctx, cancel := ch.untilExit(ctx)
	defer cancel()
	samples, sent, err := pingPong(cctx, p, c, f)
	if err != nil {
		if ch.exited() {
			if _, cerr := ch.result(); cerr != nil {
				return cerr
			}
		}
		return err
	}
	line, err := ch.result()
	if err != nil {
		return err
	}
	if want := fmt.Sprintf("ok echoed=%d", sent); line != want {
		return fmt.Errorf("echo process reported %q, want %q", line, want)
	}
	if len(samples) < f.roundtrips {
		fmt.Printf("ping-pong: stopped after %v (-pingcap) with %d of %d timed round trips\n", f.pingCap, len(samples), f.roundtrips)
	}
	if len(samples) == 0 {
		return fmt.Errorf("no timed round trip within -pingcap %v", f.pingCap)
	}
	var sum time.Duration
	for _, s := range samples {
		sum += s
	}
	slices.Sort(samples)
	fmt.Printf("ping-pong: %d round trips, every echo checked; mean %v\n", len(samples), sum/time.Duration(len(samples)))
	fmt.Printf("ping-pong: round-trip latency p50=%v p99=%v p99.9=%v max=%v\n",
		percentile(samples, 0.50), percentile(samples, 0.99), percentile(samples, 0.999), samples[len(samples)-1])
	return nil
}

// pingPong runs the round trips and then the stop message. It returns the
// timed samples and the number of messages sent, stop message included.
func pingPong(ctx context.Context, p *spsc.Producer, c *spsc.Consumer, f *demoFlags) ([]time.Duration, uint64, error) {
	msg := make([]byte, f.size)
	buf := make([]byte, f.size)
	samples := make([]time.Duration, 0, f.roundtrips)
	var sent uint64
	roundTrip := func(seq uint64) (time.Duration, error) {
		payload.Put(msg, seq)
		t0 := time.Now()
		if err := p.Send(ctx, msg); err != nil {
			return 0, err
		}
		sent++
		n, err := c.Recv(ctx, buf)
		d := time.Since(t0)
		if err != nil {
			return 0, err
		}
		if !bytes.Equal(buf[:n], msg) {
			return 0, fmt.Errorf("round trip %d: echo of %d bytes differs from the %d sent", seq, n, len(msg))
		}
		return d, nil
	}
	start := time.Now()
	for i := 0; i < f.warmup+f.roundtrips; i++ {
		d, err := roundTrip(uint64(i))
		if err != nil {
			return nil, sent, fmt.Errorf("round trip %d: %w", i, err)
		}
		if i >= f.warmup {
			samples = append(samples, d)
		}
		if i%1024 == 0 && time.Since(start) > f.pingCap {
			break
		}
	}
	if _, err := roundTrip(stopSeq); err != nil {
		return nil, sent, fmt.Errorf("stop message: %w", err)
	}
	return samples, sent, nil
}

// percentile returns the nearest-rank q-quantile of sorted samples.
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
