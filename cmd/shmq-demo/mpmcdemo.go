package main

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/shmq/shmq/cmd/shmq-demo/internal/payload"
	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/mpmc"
	"github.com/shmq/shmq/ring"
)

// The demo's MPMC phase: producer and consumer processes on one MPMC queue,
// every message checked to arrive exactly once.
//
// Consumers start first; then the producers attach and wait for a go byte
// on stdin, so that the timing starts with all of them ready. Producer i
// sends its messages numbered 0..n-1 with id i (payload.PutProducer). Each
// consumer checks that every producer's numbers increase and the filler is
// right, and reports a bitmap per producer of the numbers it received; the
// parent checks that the bitmaps are disjoint and together complete. Once
// the producers are done and the consumers have released every message,
// the parent sends stop messages (id payload.StopID), one at a time, each
// after the consumer that took the previous one has exited, so that each
// consumer takes exactly one.

func mpmcPhase(ctx context.Context, exe, name string, f *demoFlags) error {
	nP, nC := f.mpmcProducers, f.mpmcConsumers
	per := f.mpmcMessages / uint64(nP)
	total := per * uint64(nP)
	size := max(f.size, payload.MinProducer)
	loc := ring.Shm(name)
	q, err := mpmc.Create(loc, mpmc.Config{Slots: f.mpmcSlots, MaxMessage: uint32(size), Locked: f.mpmcLocked})
	if errors.Is(err, mpmc.ErrExists) {
		return fmt.Errorf("%w (left by an earlier run? remove it with: shmq-demo rm %s)", err, name)
	}
	if err != nil {
		return err
	}
	removeOnExit(name, func() error { return ring.Unlink(loc) })
	defer func() {
		q.Close()
		if err := removeNow(name); err != nil {
			fmt.Fprintf(os.Stderr, "shmq-demo: removing %s: %v\n", name, err)
		}
	}()
	stopper, err := q.Producer()
	if err != nil {
		return err
	}
	defer stopper.Close()
	fmt.Printf("mpmc: created %v (%d slots of %d bytes, %s); starting the consumer processes (%d)\n",
		loc, q.Slots(), q.SlotSize(), mpmcMode(q.Locked()), nC)

	var consumers, producers []*child
	defer func() {
		for _, c := range append(consumers, producers...) {
			c.stop()
		}
	}()
	common := []string{"-queue", name, "-size", strconv.Itoa(size), "-count", strconv.FormatUint(per, 10)}
	for range nC {
		ch, err := startChild(ctx, exe, append([]string{childMPMCConsumer, "-producers", strconv.Itoa(nP)}, common...)...)
		if err != nil {
			return err
		}
		consumers = append(consumers, ch)
	}
	attachedAs := func(role uint32, want int) func() (bool, error) {
		return func() (bool, error) {
			es, err := q.Entries()
			n := 0
			for _, e := range es {
				if e.Role == role && attached(e) {
					n++
				}
			}
			return n >= want, err
		}
	}
	if err := waitAttached(ctx, attachedAs(layout.RoleConsumer, nC), consumers...); err != nil {
		return err
	}
	for i := range nP {
		ch, err := startChild(ctx, exe, append([]string{childMPMCProducer, "-id", strconv.Itoa(i)}, common...)...)
		if err != nil {
			return err
		}
		producers = append(producers, ch)
	}
	// The stopper is a producer too.
	if err := waitAttached(ctx, attachedAs(layout.RoleProducer, nP+1), append(producers, consumers...)...); err != nil {
		return err
	}
	fmt.Printf("mpmc: %d consumers (pids %s) and %d producers (pids %s) attached; each producer sends %d messages of %d bytes\n",
		nC, pids(consumers), nP, pids(producers), per, size)

	start := time.Now()
	for _, p := range producers {
		if _, err := p.stdin.Write([]byte{'g'}); err != nil {
			return fmt.Errorf("starting producer pid %d: %w", p.pid(), err)
		}
	}
	if err := waitExited(ctx, producers, consumers); err != nil {
		return err
	}
	wantProduced := fmt.Sprintf("ok messages=%d bytes=%d crc32c=", per, per*uint64(size))
	for _, p := range producers {
		line, err := p.result()
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, wantProduced) {
			return fmt.Errorf("producer pid %d reported %q, want a line starting %q", p.pid(), line, wantProduced)
		}
	}
	// Wait for the consumers to release every message, then time.
	for {
		st, err := q.Stats()
		if err != nil {
			return err
		}
		var released uint64
		for _, e := range st.Entries {
			if e.Role == layout.RoleConsumer {
				released += e.Messages
			}
		}
		if released >= total {
			break
		}
		if err := exitedEarly(ctx, consumers); err != nil {
			return fmt.Errorf("waiting for the consumers to drain %d of %d messages: %w", total-released, total, err)
		}
		time.Sleep(200 * time.Microsecond)
	}
	elapsed := time.Since(start)

	stop := make([]byte, size)
	payload.PutProducer(stop, payload.StopID, 0)
	for k := range nC {
		if err := stopper.Send(ctx, stop); err != nil {
			return fmt.Errorf("stop message %d: %w", k, err)
		}
		for exitedCount(consumers) <= k {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("waiting for a consumer to take stop message %d: %w", k, err)
			}
			time.Sleep(200 * time.Microsecond)
		}
	}

	// Exactly once: the consumers' bitmaps of each producer are disjoint
	// and together hold every number below per.
	words := int((per + 63) / 64)
	union := make([][]uint64, nP)
	for i := range union {
		union[i] = make([]uint64, words)
	}
	var received uint64
	for _, c := range consumers {
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
		if uint64(got) != per {
			return fmt.Errorf("producer %d: %d of its %d messages arrived", i, got, per)
		}
	}
	if received != total {
		return fmt.Errorf("consumers received %d messages, producers sent %d", received, total)
	}
	st, err := q.Stats()
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
	all, allBytes := total+uint64(nC), (total+uint64(nC))*uint64(size) // stop messages included
	if prod.Messages != all || cons.Messages != all || prod.Bytes != allBytes || cons.Bytes != allBytes || st.Used != 0 {
		return fmt.Errorf("registry counters disagree: producers %d messages/%d bytes, consumers %d/%d, %d slots in use; want %d/%d",
			prod.Messages, prod.Bytes, cons.Messages, cons.Bytes, st.Used, all, allBytes)
	}
	bytes := total * uint64(size)
	fmt.Printf("mpmc: every message delivered exactly once (%d producers x %d), in each producer's order, filler checked\n", nP, per)
	fmt.Printf("mpmc: %d messages, %d bytes in %v: %.2f M messages/s, %.1f MB/s\n",
		total, bytes, elapsed.Round(time.Microsecond), rate(total, elapsed)/1e6, rate(bytes, elapsed)/1e6)
	fmt.Printf("mpmc: producers stalls=%d waits=%d wakes=%d; consumers stalls=%d waits=%d wakes=%d (summed)\n",
		prod.Stalls, prod.Waits, prod.Wakes, cons.Stalls, cons.Waits, cons.Wakes)
	return nil
}

func pids(cs []*child) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = strconv.Itoa(c.pid())
	}
	return strings.Join(s, " ")
}

func exitedCount(cs []*child) int {
	n := 0
	for _, c := range cs {
		if c.exited() {
			n++
		}
	}
	return n
}

// exitedEarly returns an error if one of cs has exited or ctx has ended.
func exitedEarly(ctx context.Context, cs []*child) error {
	for _, c := range cs {
		if c.exited() {
			if _, err := c.result(); err != nil {
				return err
			}
			return fmt.Errorf("child pid %d exited early", c.pid())
		}
	}
	return ctx.Err()
}

// waitExited waits until every child of wait has exited, failing early if
// a child of watch exits first or ctx ends.
func waitExited(ctx context.Context, wait, watch []*child) error {
	for exitedCount(wait) < len(wait) {
		if err := exitedEarly(ctx, watch); err != nil {
			return err
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// encodeBitmap and decodeBitmap carry a bitmap on a report line.
func encodeBitmap(bm []uint64) string {
	b := make([]byte, 0, 8*len(bm))
	for _, w := range bm {
		b = binary.LittleEndian.AppendUint64(b, w)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func decodeBitmap(s string, words int) ([]uint64, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != 8*words {
		return nil, fmt.Errorf("bad bitmap of %d bytes (want %d): %v", len(b), 8*words, err)
	}
	bm := make([]uint64, words)
	for i := range bm {
		bm[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return bm, nil
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
