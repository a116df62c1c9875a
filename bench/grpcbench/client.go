package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/shmq/shmq/bench/grpcbench/helloworld"
	"github.com/shmq/shmq/shmnet"
)

// transport is one way of reaching the server: a client connection with
// gRPC's default options, differing only in how it dials.
type transport struct {
	name string
	cc   *grpc.ClientConn
	gc   helloworld.GreeterClient
}

// dialTransports connects to s over shmq and over its Unix socket.
func dialTransports(s *server, d *shmnet.Dialer) ([]*transport, error) {
	targets := []struct {
		name, target string
		opts         []grpc.DialOption
	}{
		{"shmq", "passthrough:///" + s.shmName, []grpc.DialOption{grpc.WithContextDialer(d.DialContext)}},
		{"unix", "unix://" + s.unixPath, nil},
	}
	var ts []*transport
	for _, tg := range targets {
		opts := append(tg.opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
		cc, err := grpc.NewClient(tg.target, opts...)
		if err != nil {
			closeTransports(ts)
			return nil, fmt.Errorf("%s: %w", tg.name, err)
		}
		ts = append(ts, &transport{name: tg.name, cc: cc, gc: helloworld.NewGreeterClient(cc)})
	}
	return ts, nil
}

func closeTransports(ts []*transport) {
	for _, t := range ts {
		t.cc.Close()
	}
}

// call makes one SayHello round trip and checks the answer.
func (t *transport) call(ctx context.Context, req *helloworld.HelloRequest) error {
	r, err := t.gc.SayHello(ctx, req)
	if err != nil {
		return fmt.Errorf("%s: %w", t.name, err)
	}
	if m := r.GetMessage(); len(m) != len("Hello ")+len(req.Name) || !strings.HasPrefix(m, "Hello ") || m[6:] != req.Name {
		return fmt.Errorf("%s: wrong reply of %d bytes", t.name, len(m))
	}
	return nil
}

// latencies makes n sequential calls and appends each round trip's
// duration to lat.
func (t *transport) latencies(ctx context.Context, req *helloworld.HelloRequest, n int, lat []time.Duration) ([]time.Duration, error) {
	for range n {
		start := time.Now()
		if err := t.call(ctx, req); err != nil {
			return lat, err
		}
		lat = append(lat, time.Since(start))
	}
	return lat, nil
}

// throughput runs callers goroutines calling in a loop for d and returns
// the calls completed.
func (t *transport) throughput(ctx context.Context, req *helloworld.HelloRequest, callers int, d time.Duration) (int64, error) {
	var calls atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	stop := time.Now().Add(d)
	for range callers {
		wg.Go(func() {
			for time.Now().Before(stop) {
				if err := t.call(ctx, req); err != nil {
					errs <- err
					return
				}
				calls.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	return calls.Load(), <-errs
}

// config is what one comparison measures.
type config struct {
	sizes    []int         // name lengths (the reply is 6 bytes longer)
	rounds   int           // rounds, alternating the transports' order
	calls    int           // sequential calls per transport per round
	callers  int           // concurrent callers in the throughput phase
	duration time.Duration // throughput phase per transport per round
}

// result is one transport's numbers at one size.
type result struct {
	transport string
	size      int
	lat       []time.Duration // sorted
	seqRate   float64         // sequential calls per second
	seqCPU    time.Duration   // CPU time of both processes per sequential call
	parRate   float64         // calls per second with cfg.callers callers
	parCPU    time.Duration   // CPU time of both processes per concurrent call
}

func (r result) percentile(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, int(p*float64(len(r.lat))))]
}

func (r result) mean() time.Duration {
	var sum time.Duration
	for _, d := range r.lat {
		sum += d
	}
	return sum / time.Duration(max(1, len(r.lat)))
}

// compare measures every transport at every size, interleaving them in
// rounds (ABBA order) so that drift in the machine's load affects both
// alike.
func compare(ctx context.Context, ts []*transport, cfg config, cpu cpuMeter) ([]result, error) {
	var out []result
	for _, size := range cfg.sizes {
		req := &helloworld.HelloRequest{Name: strings.Repeat("x", size)}
		res := make([]result, len(ts))
		seqTime := make([]time.Duration, len(ts))
		seqCPU := make([]time.Duration, len(ts))
		parCalls := make([]int64, len(ts))
		parCPU := make([]time.Duration, len(ts))
		for i, t := range ts {
			res[i] = result{transport: t.name, size: size}
			if _, err := t.latencies(ctx, req, max(cfg.calls/10, 10), nil); err != nil { // warm up
				return nil, err
			}
		}
		for round := range cfg.rounds {
			order := []int{0, 1}
			if round%2 == 1 {
				order = []int{1, 0}
			}
			for _, i := range order {
				start, cpu0 := time.Now(), cpu.now()
				var err error
				if res[i].lat, err = ts[i].latencies(ctx, req, cfg.calls, res[i].lat); err != nil {
					return nil, err
				}
				seqTime[i] += time.Since(start)
				seqCPU[i] += cpu.now() - cpu0
			}
			if cfg.callers > 0 && cfg.duration > 0 {
				for _, i := range order {
					cpu0 := cpu.now()
					n, err := ts[i].throughput(ctx, req, cfg.callers, cfg.duration)
					if err != nil {
						return nil, err
					}
					parCalls[i] += n
					parCPU[i] += cpu.now() - cpu0
				}
			}
		}
		for i := range res {
			slices.Sort(res[i].lat)
			res[i].seqRate = float64(len(res[i].lat)) / seqTime[i].Seconds()
			res[i].seqCPU = seqCPU[i] / time.Duration(max(1, len(res[i].lat)))
			res[i].parRate = float64(parCalls[i]) / (time.Duration(cfg.rounds) * cfg.duration).Seconds()
			res[i].parCPU = parCPU[i] / time.Duration(max(1, parCalls[i]))
			out = append(out, res[i])
		}
	}
	return out, nil
}
