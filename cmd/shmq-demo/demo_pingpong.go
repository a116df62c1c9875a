package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/shmq/shmq/cmd/shmq-demo/internal/payload"
	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/spsc"
)

// The demo's ping-pong phase, on two SPSC queues: the parent sends a
// sequenced payload of -size bytes on the request queue and waits for an
// echo process to send it back on the response queue, -warmup times
// untimed and -roundtrips times timed, then prints the round-trip latency
// percentiles. A payload numbered stopSeq tells the echo process to echo
// it and exit.

const (
	echoPeer     = "__echo" // the echo process's hidden command
	pingCapacity = 64 << 10 // ring bytes of each queue
	stopSeq      = ^uint64(0)
)

// pingPongPhase holds the phase's flags.
type pingPongPhase struct {
	roundtrips int           // -roundtrips: timed round trips
	warmup     int           // -warmup: untimed round trips before them
	pingCap    time.Duration // -pingcap: stop early after this
}

func (*pingPongPhase) name() string { return "ping-pong" }

func (pp *pingPongPhase) register(fs *flag.FlagSet) {
	fs.IntVar(&pp.roundtrips, "roundtrips", 200_000, "")
	fs.IntVar(&pp.warmup, "warmup", 20_000, "")
	fs.DurationVar(&pp.pingCap, "pingcap", 15*time.Second, "")
}

func (pp *pingPongPhase) check(f *demoFlags) error {
	switch {
	case pp.roundtrips <= 0 || pp.warmup < 0:
		return usagef("-roundtrips must be positive and -warmup not negative")
	case pp.pingCap <= 0 || f.timeout <= 0:
		// The demo's -timeout is checked here, with the phase's own time
		// limit, so that the errors keep the order they always had.
		return usagef("-pingcap and -timeout must be positive")
	}
	return nil
}

func (*pingPongPhase) peers() map[string]peerFunc {
	return map[string]peerFunc{echoPeer: runEcho}
}

func (pp *pingPongPhase) run(ctx context.Context, env *demoEnv) error {
	reqName, rspName := env.base+"-req", env.base+"-rsp"
	create := func(loc ring.Location) (*spsc.Queue, error) {
		return spsc.Create(loc, spsc.Config{Capacity: pingCapacity})
	}
	req, err := createDemoQueue(reqName, create)
	if err != nil {
		return err
	}
	defer closeAndRemove(req, reqName)
	rsp, err := createDemoQueue(rspName, create)
	if err != nil {
		return err
	}
	defer closeAndRemove(rsp, rspName)
	if env.size > req.MaxMessage() {
		return fmt.Errorf("-size %d exceeds the ping queues' largest message, %d", env.size, req.MaxMessage())
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
	ch, err := startChild(ctx, env.exe, echoPeer, "-req", reqName, "-rsp", rspName)
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
		ch.pid(), pp.warmup, pp.roundtrips, env.size)
	return pp.measure(ctx, p, c, ch, env.size)
}

// measure runs the round trips with the attached echo process ch, checks
// its report and prints the latencies.
func (pp *pingPongPhase) measure(ctx context.Context, p *spsc.Producer, c *spsc.Consumer, ch *child, size int) error {
	cctx, cancel := ch.untilExit(ctx)
	defer cancel()
	samples, sent, err := pp.pingPong(cctx, p, c, size)
	if err != nil {
		if cerr := ch.failure(); cerr != nil {
			return cerr
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
	if len(samples) < pp.roundtrips {
		fmt.Printf("ping-pong: stopped after %v (-pingcap) with %d of %d timed round trips\n", pp.pingCap, len(samples), pp.roundtrips)
	}
	if len(samples) == 0 {
		return fmt.Errorf("no timed round trip within -pingcap %v", pp.pingCap)
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
func (pp *pingPongPhase) pingPong(ctx context.Context, p *spsc.Producer, c *spsc.Consumer, size int) ([]time.Duration, uint64, error) {
	msg := make([]byte, size)
	buf := make([]byte, size)
	samples := make([]time.Duration, 0, pp.roundtrips)
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
	for i := 0; i < pp.warmup+pp.roundtrips; i++ {
		d, err := roundTrip(uint64(i))
		if err != nil {
			return nil, sent, fmt.Errorf("round trip %d: %w", i, err)
		}
		if i >= pp.warmup {
			samples = append(samples, d)
		}
		if i%1024 == 0 && time.Since(start) > pp.pingCap {
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

// runEcho is the echo process: it sends back every message it receives
// until the stop message.
func runEcho(args []string) int {
	var reqName, rspName string
	fs := newFlags(echoPeer)
	fs.StringVar(&reqName, "req", "", "")
	fs.StringVar(&rspName, "rsp", "", "")
	if err := parseFlags(fs, args); err != nil {
		return childReport("", err)
	}
	ctx, cancel := childContext()
	defer cancel()

	req, err := spsc.Open(ctx, ring.Shm(reqName), nil)
	if err != nil {
		return childReport("", err)
	}
	defer req.Close()
	rsp, err := spsc.Open(ctx, ring.Shm(rspName), nil)
	if err != nil {
		return childReport("", err)
	}
	defer rsp.Close()
	c, err := req.Consumer()
	if err != nil {
		return childReport("", err)
	}
	defer c.Close()
	p, err := rsp.Producer()
	if err != nil {
		return childReport("", err)
	}
	defer p.Close()

	buf := make([]byte, req.MaxMessage())
	for echoed := uint64(0); ; {
		n, err := c.Recv(ctx, buf)
		if err != nil {
			return childReport("", fmt.Errorf("after %d echoes: %w", echoed, err))
		}
		if err := p.Send(ctx, buf[:n]); err != nil {
			return childReport("", fmt.Errorf("after %d echoes: %w", echoed, err))
		}
		echoed++
		if n >= payload.SeqSize && payload.Seq(buf) == stopSeq {
			return childReport(fmt.Sprintf("echoed=%d", echoed), nil)
		}
	}
}
