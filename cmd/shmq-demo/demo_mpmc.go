package main

import (
	"context"
	"flag"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"

	"github.com/shmq/shmq/cmd/shmq-demo/internal/payload"
	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/mpmc"
	"github.com/shmq/shmq/ring"
)

// The demo's MPMC phase: producer and consumer processes on one MPMC
// queue, every message checked to arrive exactly once.
//
// Consumers start first; then the producers attach and wait for a go byte
// on stdin, so that the timing starts with all of them ready. Producer i
// sends producer payloads numbered 0..n-1 with id i. Each consumer checks
// that every producer's numbers increase and the filler is right, and
// reports a bitmap per producer of the numbers it received; the parent
// checks that the bitmaps are disjoint and together complete. Once the
// producers are done and the consumers have released every message, the
// parent sends stop messages (id payload.StopID), one at a time, each
// after the consumer that took the previous one has exited, so that each
// consumer takes exactly one. The peers are in demo_mpmc_peers.go.

const (
	maxDemoProcs    = 16 // producer or consumer processes, each
	maxMPMCMessages = 100_000_000
)

// mpmcPhase holds the phase's flags.
type mpmcPhase struct {
	messages   uint64 // -mpmc-messages: shared by the producers; 0 skips the phase
	nProducers int    // -mpmc-producers
	nConsumers int    // -mpmc-consumers
	slots      uint64 // -mpmc-slots
	locked     bool   // -mpmc-locked
}

func (*mpmcPhase) name() string { return "mpmc" }

func (m *mpmcPhase) register(fs *flag.FlagSet) {
	fs.Uint64Var(&m.messages, "mpmc-messages", 300_000, "")
	fs.IntVar(&m.nProducers, "mpmc-producers", 3, "")
	fs.IntVar(&m.nConsumers, "mpmc-consumers", 3, "")
	fs.Uint64Var(&m.slots, "mpmc-slots", mpmc.DefaultSlots, "")
	fs.BoolVar(&m.locked, "mpmc-locked", false, "")
}

func (m *mpmcPhase) check(*demoFlags) error {
	switch {
	case m.nProducers < 1 || m.nProducers > maxDemoProcs || m.nConsumers < 1 || m.nConsumers > maxDemoProcs:
		return usagef("-mpmc-producers and -mpmc-consumers must be between 1 and %d", maxDemoProcs)
	case m.messages > 0 && m.messages < uint64(m.nProducers):
		return usagef("-mpmc-messages must be 0 (no MPMC phase) or at least -mpmc-producers")
	case m.messages > maxMPMCMessages:
		// Each consumer keeps a bitmap of the numbers it received.
		return usagef("-mpmc-messages must be at most %d", maxMPMCMessages)
	}
	return nil
}

func (*mpmcPhase) peers() map[string]peerFunc {
	return map[string]peerFunc{mpmcProducerPeer: runMPMCProducer, mpmcConsumerPeer: runMPMCConsumer}
}

// mpmcRun is one run of the phase.
type mpmcRun struct {
	*mpmcPhase
	q         *mpmc.Queue
	size      int    // bytes per message
	per       uint64 // messages per producer
	total     uint64 // messages of all producers
	consumers []*child
	producers []*child
}

func (m *mpmcPhase) run(ctx context.Context, env *demoEnv) error {
	if m.messages == 0 {
		return nil
	}
	name := env.base + "-mpmc"
	r := &mpmcRun{mpmcPhase: m, size: max(env.size, payload.MinProducer), per: m.messages / uint64(m.nProducers)}
	r.total = r.per * uint64(m.nProducers)
	q, err := createDemoQueue(name, func(loc ring.Location) (*mpmc.Queue, error) {
		return mpmc.Create(loc, mpmc.Config{Slots: m.slots, MaxMessage: uint32(r.size), Locked: m.locked})
	})
	if err != nil {
		return err
	}
	defer closeAndRemove(q, name)
	r.q = q
	stopper, err := q.Producer()
	if err != nil {
		return err
	}
	defer stopper.Close()
	fmt.Printf("mpmc: created %v (%d slots of %d bytes, %s); starting the consumer processes (%d)\n",
		ring.Shm(name), q.Slots(), q.SlotSize(), mpmcMode(q.Locked()), m.nConsumers)

	defer func() {
		for _, c := range append(r.consumers, r.producers...) {
			c.stop()
		}
	}()
	if err := r.start(ctx, env.exe, name); err != nil {
		return err
	}
	elapsed, err := r.produce(ctx)
	if err != nil {
		return err
	}
	if err := r.stopConsumers(ctx, stopper); err != nil {
		return err
	}
	if err := r.checkExactlyOnce(); err != nil {
		return err
	}
	return r.checkCounters(elapsed)
}

// start starts the consumers and then the producers, and waits for all of
// them to attach.
func (r *mpmcRun) start(ctx context.Context, exe, name string) error {
	common := []string{"-queue", name, "-size", strconv.Itoa(r.size), "-count", strconv.FormatUint(r.per, 10)}
	for range r.nConsumers {
		ch, err := startChild(ctx, exe, append([]string{mpmcConsumerPeer, "-producers", strconv.Itoa(r.nProducers)}, common...)...)
		if err != nil {
			return err
		}
		r.consumers = append(r.consumers, ch)
	}
	if err := waitAttached(ctx, r.attachedAs(layout.RoleConsumer, len(r.consumers)), r.consumers...); err != nil {
		return err
	}
	for i := range r.nProducers {
		ch, err := startChild(ctx, exe, append([]string{mpmcProducerPeer, "-id", strconv.Itoa(i)}, common...)...)
		if err != nil {
			return err
		}
		r.producers = append(r.producers, ch)
	}
	// The stopper is a producer too.
	if err := waitAttached(ctx, r.attachedAs(layout.RoleProducer, len(r.producers)+1), append(r.producers, r.consumers...)...); err != nil {
		return err
	}
	fmt.Printf("mpmc: %d consumers (pids %s) and %d producers (pids %s) attached; each producer sends %d messages of %d bytes\n",
		len(r.consumers), pids(r.consumers), len(r.producers), pids(r.producers), r.per, r.size)
	return nil
}

// attachedAs returns a waitAttached condition: at least want live
// processes attached in role.
func (r *mpmcRun) attachedAs(role uint32, want int) func() (bool, error) {
	return func() (bool, error) {
		es, err := r.q.Entries()
		n := 0
		for _, e := range es {
			if e.Role == role && attached(e) {
				n++
			}
		}
		return n >= want, err
	}
}

// produce starts the producers, waits for them to send everything and for
// the consumers to release it all, and returns how long that took.
func (r *mpmcRun) produce(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	for _, p := range r.producers {
		if err := p.sendGo(); err != nil {
			return 0, err
		}
	}
	if err := waitExited(ctx, r.producers, r.consumers); err != nil {
		return 0, err
	}
	wantProduced := fmt.Sprintf("ok messages=%d bytes=%d crc32c=", r.per, r.per*uint64(r.size))
	for _, p := range r.producers {
		line, err := p.result()
		if err != nil {
			return 0, err
		}
		if !strings.HasPrefix(line, wantProduced) {
			return 0, fmt.Errorf("producer pid %d reported %q, want a line starting %q", p.pid(), line, wantProduced)
		}
	}
	for {
		st, err := r.q.Stats()
		if err != nil {
			return 0, err
		}
		var released uint64
		for _, e := range st.Entries {
			if e.Role == layout.RoleConsumer {
				released += e.Messages
			}
		}
		if released >= r.total {
			return time.Since(start), nil
		}
		if err := exitedEarly(ctx, r.consumers); err != nil {
			return 0, fmt.Errorf("waiting for the consumers to drain %d of %d messages: %w", r.total-released, r.total, err)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// stopConsumers sends the stop messages, each once the consumer that took
// the one before has exited.
func (r *mpmcRun) stopConsumers(ctx context.Context, stopper *mpmc.Producer) error {
	stop := make([]byte, r.size)
	payload.PutProducer(stop, payload.StopID, 0)
	for k := range r.consumers {
		if err := stopper.Send(ctx, stop); err != nil {
			return fmt.Errorf("stop message %d: %w", k, err)
		}
		for exitedCount(r.consumers) <= k {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("waiting for a consumer to take stop message %d: %w", k, err)
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
	return nil
}

// checkExactlyOnce checks that the consumers' bitmaps of each producer are
// disjoint and together hold every number below r.per.
func (r *mpmcRun) checkExactlyOnce() error {
	words := int((r.per + 63) / 64)
	union := make([][]uint64, len(r.producers))
	for i := range union {
		union[i] = make([]uint64, words)
	}
	var received uint64
	for _, c := range r.consumers {
		line, err := c.result()
		if err != nil {
			return err
		}
		counts, n, err := mergeBitmaps(c.out.String(), union)
		if err != nil {
			return fmt.Errorf("consumer pid %d: %w", c.pid(), err)
		}
		if !strings.HasPrefix(line, fmt.Sprintf("ok messages=%d ", n)) {
			return fmt.Errorf("consumer pid %d reported %q, but its bitmaps hold %d messages", c.pid(), line, n)
		}
		received += n
		fmt.Printf("mpmc: consumer pid %d received %d messages (%s), each producer's numbers increasing\n", c.pid(), n, counts)
	}
	for i, u := range union {
		got := 0
		for _, w := range u {
			got += bits.OnesCount64(w)
		}
		if uint64(got) != r.per {
			return fmt.Errorf("producer %d: %d of its %d messages arrived", i, got, r.per)
		}
	}
	if received != r.total {
		return fmt.Errorf("consumers received %d messages, producers sent %d", received, r.total)
	}
	return nil
}

// mergeBitmaps reads the producer lines of a consumer's report (out) and
// ORs their bitmaps into union, failing on a number that union already
// holds (received twice). It returns a description of the counts per
// producer and their total.
func mergeBitmaps(out string, union [][]uint64) (string, uint64, error) {
	var total uint64
	var counts []string
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "producer=") {
			continue
		}
		kv := map[string]string{}
		for _, f := range strings.Fields(line) {
			if k, v, ok := strings.Cut(f, "="); ok {
				kv[k] = v
			}
		}
		id, err1 := strconv.ParseUint(kv["producer"], 10, 64)
		n, err2 := strconv.ParseUint(kv["messages"], 10, 64)
		if err1 != nil || err2 != nil || id >= uint64(len(union)) {
			return "", 0, fmt.Errorf("bad report line %.80q", line)
		}
		bm, err := decodeBitmap(kv["bitmap"], len(union[id]))
		if err != nil {
			return "", 0, fmt.Errorf("producer %d: %w", id, err)
		}
		got := 0
		for i, w := range bm {
			if dup := union[id][i] & w; dup != 0 {
				return "", 0, fmt.Errorf("producer %d: message %d received twice", id, 64*i+bits.TrailingZeros64(dup))
			}
			union[id][i] |= w
			got += bits.OnesCount64(w)
		}
		if uint64(got) != n {
			return "", 0, fmt.Errorf("producer %d: reports %d messages, its bitmap holds %d", id, n, got)
		}
		total += n
		counts = append(counts, fmt.Sprintf("producer %d: %d", id, n))
	}
	if len(counts) == 0 {
		counts = []string{"none"}
	}
	return strings.Join(counts, ", "), total, nil
}

// checkCounters checks the registry's counters, summed over the producers
// and over the consumers, against what was sent, and prints the results.
func (r *mpmcRun) checkCounters(elapsed time.Duration) error {
	st, err := r.q.Stats()
	if err != nil {
		return err
	}
	var prod, cons ring.EntryInfo // sums
	for _, e := range st.Entries {
		s := &cons
		if e.Role == layout.RoleProducer {
			s = &prod
		}
		s.Messages += e.Messages
		s.Bytes += e.Bytes
		s.Stalls += e.Stalls
		s.Waits += e.Waits
		s.Wakes += e.Wakes
	}
	nC := uint64(len(r.consumers))
	all, allBytes := r.total+nC, (r.total+nC)*uint64(r.size) // stop messages included
	if prod.Messages != all || cons.Messages != all || prod.Bytes != allBytes || cons.Bytes != allBytes || st.Used != 0 {
		return fmt.Errorf("registry counters disagree: producers %d messages/%d bytes, consumers %d/%d, %d slots in use; want %d/%d",
			prod.Messages, prod.Bytes, cons.Messages, cons.Bytes, st.Used, all, allBytes)
	}
	bytes := r.total * uint64(r.size)
	fmt.Printf("mpmc: every message delivered exactly once (%d producers x %d), in each producer's order, filler checked\n", len(r.producers), r.per)
	fmt.Printf("mpmc: %d messages, %d bytes in %v: %.2f M messages/s, %.1f MB/s\n",
		r.total, bytes, elapsed.Round(time.Microsecond), rate(r.total, elapsed)/1e6, rate(bytes, elapsed)/1e6)
	fmt.Printf("mpmc: producers stalls=%d waits=%d wakes=%d; consumers stalls=%d waits=%d wakes=%d (summed)\n",
		prod.Stalls, prod.Waits, prod.Wakes, cons.Stalls, cons.Waits, cons.Wakes)
	return nil
}
