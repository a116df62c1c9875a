package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/mpmc"
	"github.com/shmq/shmq/ring"
)

// The MPMC message format of layout/c/shmq_mpmc.c: u64 seq, u32 producer
// id, byte(seq ^ id*13 ^ i*7) filler, CRC-32C of everything before it in
// the last 4 bytes. A stop message (id stopID) ends a consumer.
const stopID = 0xFFFFFFFF

func mpmcMessage(b []byte, id uint32, seq uint64) []byte {
	n := len(b)
	binary.LittleEndian.PutUint64(b, seq)
	binary.LittleEndian.PutUint32(b[8:], id)
	for i := 12; i < n-4; i++ {
		b[i] = byte(seq) ^ byte(id*13) ^ byte(i*7)
	}
	binary.LittleEndian.PutUint32(b[n-4:], crc32.Checksum(b[:n-4], castagnoli))
	return b
}

func mpmcCheck(b []byte) (id uint32, seq uint64, err error) {
	n := len(b)
	if n < 16 || binary.LittleEndian.Uint32(b[n-4:]) != crc32.Checksum(b[:n-4], castagnoli) {
		return 0, 0, fmt.Errorf("message of %d bytes: bad checksum", n)
	}
	return binary.LittleEndian.Uint32(b[8:]), binary.LittleEndian.Uint64(b), nil
}

// newMPMC creates an MPMC queue in /dev/shm, removed at the end of the test,
// and returns it with the location argument for shmq_mpmc.
func newMPMC(t *testing.T, cfg mpmc.Config) (*mpmc.Queue, string) {
	t.Helper()
	name := fmt.Sprintf("shmq-itm-%d-%d", os.Getpid(), nameSeq.Add(1))
	loc := ring.Shm(name)
	q, err := mpmc.Create(loc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		q.Close()
		ring.Unlink(loc)
	})
	return q, name
}

// tally collects, per producer id, how often each sequence number was
// delivered, across all consumers.
type tally struct {
	mu   sync.Mutex
	seen map[uint32][]uint8
}

func newTally(producers int, count uint64) *tally {
	tl := &tally{seen: map[uint32][]uint8{}}
	for id := 0; id < producers; id++ {
		tl.seen[uint32(id)] = make([]uint8, count)
	}
	return tl
}

func (tl *tally) add(id uint32, first, last uint64) error {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	s, ok := tl.seen[id]
	if !ok || last < first || last >= uint64(len(s)) {
		return fmt.Errorf("delivered run %d..%d of unknown producer %d", first, last, id)
	}
	for q := first; q <= last; q++ {
		if s[q] < 255 {
			s[q]++
		}
	}
	return nil
}

// check requires every message of every producer exactly once.
func (tl *tally) check(t *testing.T) {
	t.Helper()
	for id, s := range tl.seen {
		for q, n := range s {
			if n != 1 {
				t.Errorf("producer %d message %d delivered %d times", id, q, n)
				break
			}
		}
	}
}

// goConsume receives until a stop message, checking checksums and that each
// producer's sequence numbers increase, and records what it got.
func goConsume(ctx context.Context, c *mpmc.Consumer, tl *tally, pause bool) (uint64, error) {
	buf := make([]byte, 1<<16)
	last := map[uint32]uint64{}
	var n uint64
	for {
		if pause && n%100 == 99 {
			time.Sleep(5 * time.Millisecond) // the ring fills and producers park
		}
		m, err := c.Recv(ctx, buf)
		if err != nil {
			return n, err
		}
		id, seq, err := mpmcCheck(buf[:m])
		if err != nil {
			return n, err
		}
		if id == stopID {
			return n, nil
		}
		if l, ok := last[id]; ok && seq <= l {
			return n, fmt.Errorf("producer %d: seq %d after %d (duplicated or reordered)", id, seq, l)
		}
		last[id] = seq
		if err := tl.add(id, seq, seq); err != nil {
			return n, err
		}
		n++
	}
}

// parseCConsumer reads shmq_mpmc consume's output into tl and returns the
// message count and the registry entry it printed.
func parseCConsumer(t *testing.T, out string, tl *tally) (msgs uint64, entry int) {
	t.Helper()
	entry = -1
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var id uint32
		var first, last uint64
		if _, err := fmt.Sscanf(sc.Text(), "run %d %d %d", &id, &first, &last); err == nil {
			if err := tl.add(id, first, last); err != nil {
				t.Error(err)
			}
			continue
		}
		if _, err := fmt.Sscanf(sc.Text(), "messages=%d entry=%d", &msgs, &entry); err != nil {
			t.Fatalf("C consumer printed %q", sc.Text())
		}
	}
	return msgs, entry
}

func mpmcEnv(bin string, env []string, extra ...string) func(args ...string) *exec.Cmd {
	return func(args ...string) *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(append([]string{}, env...), extra...)
		return cmd
	}
}

type mpmcCase struct {
	name       string
	cfg        mpmc.Config
	count      uint64
	sizes      sizeSpec
	goProd     int
	cProd      int
	goCons     int
	cCons      int
	slowGoCons bool // Go consumers pause now and then: producers park
}

func mpmcCases() []mpmcCase {
	return []mpmcCase{
		{name: "2go+2c-producers/2go+2c-consumers", cfg: mpmc.Config{Slots: 64, SlotSize: 256}, count: 4000,
			sizes: sizeSpec{16, 240}, goProd: 2, cProd: 2, goCons: 2, cCons: 2},
		{name: "tiny-ring/cursor-wrap-2^64", cfg: mpmc.Config{Slots: 4, SlotSize: 64, StartPosition: 1<<64 - 3000}, count: 2000,
			sizes: sizeSpec{16, 48}, goProd: 2, cProd: 2, goCons: 2, cCons: 2},
		{name: "c-producers-only/parked", cfg: mpmc.Config{Slots: 16, SlotSize: 128}, count: 1500,
			sizes: sizeSpec{16, 112}, cProd: 2, goCons: 1, cCons: 1, slowGoCons: true},
	}
}

// mixed runs producers and consumers of both languages on one queue and
// checks exactly-once delivery and per-producer order across all of them.
func mixed(t *testing.T, bin string, env []string, tc mpmcCase) {
	q, loc := newMPMC(t, tc.cfg)
	run := mpmcEnv(bin, env)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	producers := tc.goProd + tc.cProd
	tl := newTally(producers, tc.count)

	// Consumers first, so that they park on an empty queue too.
	var cCons []func() string
	for i := 0; i < tc.cCons; i++ {
		_, wait := start(t, run("consume", loc))
		cCons = append(cCons, wait)
	}
	var wg sync.WaitGroup
	var goErr atomic.Value
	fail := func(err error) {
		goErr.CompareAndSwap(nil, err)
		cancel()
	}
	var goGot atomic.Uint64
	for i := 0; i < tc.goCons; i++ {
		c, err := q.Consumer()
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			n, err := goConsume(ctx, c, tl, tc.slowGoCons)
			goGot.Add(n)
			if err != nil {
				fail(fmt.Errorf("go consumer: %w", err))
			}
		}()
	}
	var cProd []func() string
	for i := 0; i < tc.cProd; i++ {
		_, wait := start(t, run("produce", loc, fmt.Sprint(tc.goProd+i), fmt.Sprint(tc.count), tc.sizes.String()))
		cProd = append(cProd, wait)
	}
	var pg sync.WaitGroup
	for i := 0; i < tc.goProd; i++ {
		p, err := q.Producer()
		if err != nil {
			t.Fatal(err)
		}
		pg.Add(1)
		go func(id uint32) {
			defer pg.Done()
			defer p.Close()
			buf := make([]byte, tc.sizes.max)
			for seq := uint64(0); seq < tc.count; seq++ {
				m := mpmcMessage(buf[:tc.sizes.size(seq)], id, seq)
				var err error
				if seq%128 < 64 {
					err = p.Send(ctx, m)
				} else {
					var b []byte
					for b, err = p.Reserve(len(m)); err == mpmc.ErrFull; b, err = p.Reserve(len(m)) {
						time.Sleep(50 * time.Microsecond)
					}
					if err == nil {
						copy(b, m)
						err = p.Commit()
					}
				}
				if err != nil {
					fail(fmt.Errorf("go producer %d message %d: %w", id, seq, err))
					return
				}
			}
		}(uint32(i))
	}
	pg.Wait()
	for i, wait := range cProd {
		if got, want := wait(), fmt.Sprintf("messages=%d", tc.count); !strings.HasPrefix(got, want+" ") {
			t.Fatalf("C producer %d printed %q, want %s", i, got, want)
		}
	}
	// Every message is committed: one stop message per consumer.
	sp, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < tc.goCons+tc.cCons; i++ {
		if err := sp.Send(ctx, mpmcMessage(make([]byte, 16), stopID, 0)); err != nil {
			t.Fatal(err)
		}
	}
	sp.Close()
	var cGot uint64
	for _, wait := range cCons {
		n, _ := parseCConsumer(t, wait(), tl)
		cGot += n
	}
	wg.Wait()
	if err, _ := goErr.Load().(error); err != nil {
		t.Fatal(err)
	}
	tl.check(t)
	if total := goGot.Load() + cGot; total != uint64(producers)*tc.count {
		t.Fatalf("delivered %d messages, want %d", total, uint64(producers)*tc.count)
	}
	st, err := q.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Used != 0 {
		t.Fatalf("queue not drained: %+v", st)
	}
	var waits uint64
	for _, e := range st.Entries {
		if e.Alive || e.State != layout.EntryDetached {
			t.Errorf("registry entry %d left %+v", e.Index, e)
		}
		waits += e.Waits
	}
	t.Logf("Go consumers got %d, C consumers %d; %d parks recorded", goGot.Load(), cGot, waits)
}

// lockedRefused: the C side refuses a locked-mode segment (FlagLocked,
// which it does not implement) with a typed error, touching nothing.
func lockedRefused(t *testing.T, bin string, env []string) {
	_, loc := newMPMC(t, mpmc.Config{Slots: 8, SlotSize: 64, Locked: true})
	for _, role := range [][]string{{"consume", loc}, {"produce", loc, "0", "1", "16"}} {
		cmd := mpmcEnv(bin, env, "SHMQ_TIMEOUT_MS=2000")(role...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), "locked mode") {
			t.Fatalf("C %s on a locked-mode queue: %v, stderr %q; want exit 1 naming locked mode", role[0], err, stderr.String())
		}
	}
}

// awaitLine starts cmd and waits until it prints want on stdout.
func awaitLine(t *testing.T, cmd *exec.Cmd, want string) {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	got := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == want {
				got <- true
				return
			}
		}
		got <- false
	}()
	select {
	case ok := <-got:
		if !ok {
			cmd.Wait()
			t.Fatalf("%s exited without printing %q; stderr: %s", cmd, want, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not print %q; stderr: %s", cmd, want, stderr.String())
	}
}

// kill SIGKILLs cmd and reaps it: its OFD locks are gone when this returns.
func kill(cmd *exec.Cmd) {
	cmd.Process.Kill()
	cmd.Wait()
}

func recvIDs(t *testing.T, ctx context.Context, c *mpmc.Consumer, n int) []string {
	t.Helper()
	buf := make([]byte, 1<<12)
	var got []string
	for i := 0; i < n; i++ {
		m, err := c.Recv(ctx, buf)
		if err != nil {
			t.Fatalf("recv after %v: %v", got, err)
		}
		id, seq, err := mpmcCheck(buf[:m])
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d:%d", id, seq))
	}
	return got
}

func ids(id uint32, from, to uint64) []string {
	var s []string
	for q := from; q < to; q++ {
		s = append(s, fmt.Sprintf("%d:%d", id, q))
	}
	return s
}

func sameIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

// deadCProducer: a C producer is SIGKILLed holding a claimed, unwritten
// slot. The Go consumer gets what it committed and then skips the slot or
// a new C producer, reusing the dead one's registry entry, tombstones it.
func deadCProducer(t *testing.T, bin string, env []string) {
	q, loc := newMPMC(t, mpmc.Config{Slots: 16, SlotSize: 64})
	c, err := q.Consumer() // entry 0
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hung := mpmcEnv(bin, env, "SHMQ_HANG_AFTER=5")("produce", loc, "0", "20", "16-48")
	awaitLine(t, hung, "hanging")
	sameIDs(t, "before the kill", recvIDs(t, ctx, c, 5), ids(0, 0, 5))
	kill(hung)
	// A new C producer takes the dead one's entry (the first free one).
	out := output(t, mpmcEnv(bin, env)("produce", loc, "1", "5", "16"))
	if !strings.HasPrefix(out, "messages=5 entry=1") {
		t.Fatalf("second C producer printed %q, want entry 1 (the dead producer's)", out)
	}
	sameIDs(t, "after the kill", recvIDs(t, ctx, c, 5), ids(1, 0, 5))
	if c.Skipped() != 1 {
		t.Fatalf("consumer skipped %d slots, want 1 (the dead producer's claim)", c.Skipped())
	}
}

// deadCConsumer: a C consumer is SIGKILLed holding a taken slot; the Go
// producer that reaches the slot a lap later requeues the message in it,
// and a Go consumer receives it again, after the messages that overtook it.
func deadCConsumer(t *testing.T, bin string, env []string) {
	q, loc := newMPMC(t, mpmc.Config{Slots: 4, SlotSize: 64})
	p, err := q.Producer() // entry 0
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := q.Consumer() // entry 1: the C consumer's entry stays free after it dies
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	buf := make([]byte, 16)
	for seq := uint64(0); seq < 4; seq++ {
		if err := p.Send(ctx, mpmcMessage(buf, 0, seq)); err != nil {
			t.Fatal(err)
		}
	}
	hung := mpmcEnv(bin, env, "SHMQ_HANG_AFTER=2")("consume", loc)
	awaitLine(t, hung, "hanging") // took 0 and 1, holds 2
	kill(hung)
	sent := make(chan error, 1)
	go func() {
		buf := make([]byte, 16)
		for seq := uint64(4); seq < 7; seq++ { // the third finds the dead consumer's slot
			if err := p.Send(ctx, mpmcMessage(buf, 0, seq)); err != nil {
				sent <- fmt.Errorf("send %d: %w", seq, err)
				return
			}
		}
		sent <- nil
	}()
	sameIDs(t, "after the kill", recvIDs(t, ctx, c, 5), []string{"0:3", "0:4", "0:5", "0:2", "0:6"})
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if p.Requeued() != 1 || c.Redelivered() != 1 {
		t.Fatalf("producer requeued %d messages, consumer got %d again; want 1 and 1", p.Requeued(), c.Redelivered())
	}
}

// claimAs makes the slot at the enqueue cursor look claimed by registry
// entry owner, which no process holds: exactly what a producer that died
// right after its claim leaves behind.
func claimAs(t *testing.T, q *mpmc.Queue, owner uint32) {
	t.Helper()
	seg := q.Segment()
	h := seg.Header()
	enq, err := seg.Uint64(h.Producer + layout.CursorPosition)
	if err != nil {
		t.Fatal(err)
	}
	pos := enq.Load()
	seq, err := seg.Uint64(h.Data + (pos&(h.Capacity-1))*uint64(h.SlotSize))
	if err != nil {
		t.Fatal(err)
	}
	if !seq.CompareAndSwap(layout.SeqWord(pos, layout.SlotEmpty, 0), layout.SeqWord(pos, layout.SlotWriting, owner)) ||
		!enq.CompareAndSwap(pos, pos+1) {
		t.Fatal("slot at the enqueue cursor is not free")
	}
}

// takeAs makes the slot at the dequeue cursor look taken by registry entry
// owner, which no process holds: what a consumer that died reading leaves.
func takeAs(t *testing.T, q *mpmc.Queue, owner uint32) {
	t.Helper()
	seg := q.Segment()
	h := seg.Header()
	deq, err := seg.Uint64(h.Consumer + layout.CursorPosition)
	if err != nil {
		t.Fatal(err)
	}
	pos := deq.Load()
	seq, err := seg.Uint64(h.Data + (pos&(h.Capacity-1))*uint64(h.SlotSize))
	if err != nil {
		t.Fatal(err)
	}
	w := seq.Load()
	if layout.SeqDiff(w, pos) != layout.SlotFull ||
		!seq.CompareAndSwap(w, layout.SeqWord(pos, layout.SlotReading, owner)) || !deq.CompareAndSwap(pos, pos+1) {
		t.Fatal("slot at the dequeue cursor is not full")
	}
}

// cSkipsDeadClaim: the C consumer skips a slot a dead producer claimed
// instead of wedging behind it.
func cSkipsDeadClaim(t *testing.T, bin string, env []string) {
	q, loc := newMPMC(t, mpmc.Config{Slots: 8, SlotSize: 64, Registry: 16})
	p, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	buf := make([]byte, 16)
	if err := p.TrySend(mpmcMessage(buf, 0, 0)); err != nil {
		t.Fatal(err)
	}
	claimAs(t, q, 9)
	for _, m := range [][]byte{mpmcMessage(buf, 0, 1), mpmcMessage(make([]byte, 16), stopID, 0)} {
		if err := p.TrySend(m); err != nil {
			t.Fatal(err)
		}
	}
	out := output(t, mpmcEnv(bin, env, "SHMQ_TIMEOUT_MS=5000")("consume", loc))
	if !strings.HasPrefix(out, "run 0 0 1\nmessages=2 ") {
		t.Fatalf("C consumer printed %q, want messages 0 and 1 of producer 0", out)
	}
}

// cRequeuesDeadTake: the C producer requeues the message of a slot a dead
// consumer held instead of finding the queue full forever.
func cRequeuesDeadTake(t *testing.T, bin string, env []string) {
	q, loc := newMPMC(t, mpmc.Config{Slots: 4, SlotSize: 64, Registry: 16})
	p, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	for seq := uint64(0); seq < 4; seq++ {
		if err := p.TrySend(mpmcMessage(buf, 0, seq)); err != nil {
			t.Fatal(err)
		}
	}
	p.Close()
	takeAs(t, q, 9) // message 0 is held by a dead consumer
	// The C producer requeues message 0 into the one slot there is, and then
	// waits for a consumer to make room for its own message.
	var stdout, stderr bytes.Buffer
	cp := mpmcEnv(bin, env, "SHMQ_TIMEOUT_MS=5000")("produce", loc, "1", "1", "16")
	cp.Stdout, cp.Stderr = &stdout, &stderr
	if err := cp.Start(); err != nil {
		t.Fatal(err)
	}
	c, err := q.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sameIDs(t, "after the requeue", recvIDs(t, ctx, c, 5), []string{"0:1", "0:2", "0:3", "0:0", "1:0"})
	if err := cp.Wait(); err != nil || !strings.HasPrefix(stdout.String(), "messages=1 ") {
		t.Fatalf("C producer: %v, printed %q; stderr: %s", err, stdout.String(), stderr.String())
	}
	if c.Redelivered() != 1 {
		t.Fatalf("consumer got %d messages again, want 1", c.Redelivered())
	}
}

// cOrphansOnReuse: a C consumer that takes over the registry entry of a dead
// consumer orphans the message it held, and a Go producer requeues it at
// once.
func cOrphansOnReuse(t *testing.T, bin string, env []string) {
	q, loc := newMPMC(t, mpmc.Config{Slots: 4, SlotSize: 64, Registry: 3})
	p, err := q.Producer() // entry 0
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	buf := make([]byte, 16)
	if err := p.TrySend(mpmcMessage(buf, 0, 0)); err != nil {
		t.Fatal(err)
	}
	takeAs(t, q, 1) // entry 1, free: a consumer that died holding message 0
	if err := p.TrySend(mpmcMessage(make([]byte, 16), stopID, 0)); err != nil {
		t.Fatal(err)
	}
	out := output(t, mpmcEnv(bin, env, "SHMQ_TIMEOUT_MS=5000")("consume", loc))
	if !strings.HasPrefix(out, "messages=0 entry=1 ") {
		t.Fatalf("C consumer printed %q, want no messages, on entry 1", out)
	}
	h := q.Segment().Header()
	seq0, err := q.Segment().Uint64(h.Data + layout.SlotSeq)
	if err != nil {
		t.Fatal(err)
	}
	if w := seq0.Load(); w != layout.SeqWord(0, layout.SlotReading, layout.SeqOwnerOrphan) {
		t.Fatalf("slot 0 holds %#x after the C consumer took entry 1 over, want R(0, orphan)", w)
	}
	for seq := uint64(1); seq < 4; seq++ { // the third requeues message 0 first, without waiting
		if err := p.TrySend(mpmcMessage(buf, 0, seq)); err != nil {
			t.Fatalf("send %d: %v", seq, err)
		}
	}
	if p.Requeued() != 1 {
		t.Fatalf("producer requeued %d messages, want 1", p.Requeued())
	}
	c, err := q.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sameIDs(t, "after the requeue", recvIDs(t, ctx, c, 4), []string{"0:1", "0:2", "0:0", "0:3"})
}

// cFinishesRequeue: a producer requeued a message and died before it
// published it, leaving W(p, orphan) with the enqueue cursor still at p:
// the C consumer publishes the message and delivers it.
func cFinishesRequeue(t *testing.T, bin string, env []string) {
	q, loc := newMPMC(t, mpmc.Config{Slots: 4, SlotSize: 64, Registry: 4})
	p, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.TrySend(mpmcMessage(make([]byte, 16), 5, 0)); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(0); seq < 3; seq++ {
		if err := p.TrySend(mpmcMessage(make([]byte, 16), 0, seq)); err != nil {
			t.Fatal(err)
		}
	}
	takeAs(t, q, 2) // a dead consumer holds message 5:0 at position 0
	h := q.Segment().Header()
	seq0, err := q.Segment().Uint64(h.Data + layout.SlotSeq)
	if err != nil {
		t.Fatal(err)
	}
	if !seq0.CompareAndSwap(layout.SeqWord(0, layout.SlotReading, 2), layout.SeqWord(4, layout.SlotWriting, layout.SeqOwnerOrphan)) {
		t.Fatal("setup")
	}
	var stdout, stderr bytes.Buffer
	cc := mpmcEnv(bin, env, "SHMQ_TIMEOUT_MS=5000")("consume", loc)
	cc.Stdout, cc.Stderr = &stdout, &stderr
	if err := cc.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Send(ctx, mpmcMessage(make([]byte, 16), stopID, 0)); err != nil {
		t.Fatal(err)
	}
	if err := cc.Wait(); err != nil || !strings.HasPrefix(stdout.String(), "run 0 0 2\nrun 5 0 0\nmessages=4 ") {
		t.Fatalf("C consumer: %v, printed %q, want messages 0-2 of producer 0, then 0 of producer 5; stderr: %s",
			err, stdout.String(), stderr.String())
	}
}

func runMPMC(t *testing.T, cc string, sanitize bool) {
	var extra []string
	env := os.Environ()
	if sanitize {
		extra, env = sanitizeFlags, sanitizerEnv()
	}
	bin := build(t, cc, t.TempDir(), "shmq_mpmc", extra...)
	env = append(env, "SHMQ_TIMEOUT_MS=20000")
	for _, tc := range mpmcCases() {
		t.Run("Mixed/"+tc.name, func(t *testing.T) { mixed(t, bin, env, tc) })
	}
	t.Run("LockedModeRefused", func(t *testing.T) { lockedRefused(t, bin, env) })
	t.Run("DeadCProducer", func(t *testing.T) { deadCProducer(t, bin, env) })
	t.Run("DeadCConsumer", func(t *testing.T) { deadCConsumer(t, bin, env) })
	t.Run("CSkipsDeadClaim", func(t *testing.T) { cSkipsDeadClaim(t, bin, env) })
	t.Run("CRequeuesDeadTake", func(t *testing.T) { cRequeuesDeadTake(t, bin, env) })
	t.Run("COrphansOnReuse", func(t *testing.T) { cOrphansOnReuse(t, bin, env) })
	t.Run("CFinishesRequeue", func(t *testing.T) { cFinishesRequeue(t, bin, env) })
}

// TestMPMCInterop runs Go and C producers and consumers together on MPMC
// queues, and the crash cases in both directions.
func TestMPMCInterop(t *testing.T) {
	runMPMC(t, compiler(t), false)
}

// TestMPMCInteropSanitized repeats TestMPMCInterop with the C built under
// -fsanitize=address,undefined.
func TestMPMCInteropSanitized(t *testing.T) {
	cc := compiler(t)
	if ok, why := sanitizerAvailable(t, cc); !ok {
		t.Skipf("sanitizer runtime missing (%s -fsanitize=address,undefined failed): %s", cc, why)
	}
	runMPMC(t, cc, true)
}
