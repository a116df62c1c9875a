//go:build unix

package mpmc

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func init() {
	helpers["killloop-producer"] = killLoopProducer
	helpers["killloop-consumer"] = killLoopConsumer
}

// killLoopOpTimeout bounds every blocking call of a kill-loop helper: the
// queue always has a live producer and a live consumer, so a call that
// waits this long is a hang, and the helper fails.
const killLoopOpTimeout = 10 * time.Second

// killLoopVictimLife is how long a victim runs before it gives up on being
// killed and fails.
const killLoopVictimLife = time.Minute

// TestKillLoop runs 2 long-lived producer and 2 long-lived consumer
// processes on a small ring while, in each iteration, a victim producer
// and a victim consumer are started and SIGKILLed at random points (before
// or after they attach, while they hold reserved or peeked slots, inside a
// batch). The survivors must neither hang (every blocking call has a
// deadline) nor fail. At the end the long-lived producers stop, the parent
// sends a lap of filler messages (which makes producers requeue every
// message a dead consumer still held) and one sentinel per long-lived
// consumer, and checks what was delivered against the documented crash
// semantics (at-least-once across a consumer crash):
//
//   - nothing is lost: every message a long-lived producer committed is
//     delivered, and so is every message a victim producer committed (at
//     least its registry counter, and everything before the last of its
//     messages seen);
//   - a message is delivered more than once only if a killed consumer could
//     have held it: every copy but one is among the last maxHeld records of
//     a victim consumer (which records each message as soon as it holds it,
//     and holds at most maxHeld), and every copy but the first arrives
//     marked as requeued;
//   - no consumer receives a message twice, and each receives every
//     producer's messages in order, except that a requeued message may
//     arrive after later ones; at most maxHeld requeued messages per
//     consumer kill arrive;
//   - every slot is free at the end: nothing is left held or orphaned.
//
// MPMC_KILL_ITERS sets the number of iterations (40 by default, 15 under
// -short).
func TestKillLoop(t *testing.T) {
	iters := 40
	if testing.Short() {
		iters = 15
	}
	if os.Getenv("MPMC_KILL_ITERS") != "" {
		iters = envInt("MPMC_KILL_ITERS")
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	q := newTestQueue(t, Config{Slots: 8, SlotSize: 64, StartPosition: ^uint64(0) - 3000})
	dir := t.TempDir()
	var procs []*klProc
	t.Cleanup(func() {
		for _, p := range procs {
			p.kill()
		}
	})
	start := func(role string, withStdin bool, env ...string) *klProc {
		p, err := startKL(q, role, withStdin, env...)
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
		return p
	}

	const nLong = 2
	var longProds, longCons []*klProc
	for i := 0; i < nLong; i++ {
		longCons = append(longCons, start("killloop-consumer", false, "MPMC_OUT="+filepath.Join(dir, fmt.Sprintf("c%d", i))))
		longProds = append(longProds, start("killloop-producer", true, fmt.Sprintf("MPMC_ID=%d", i)))
	}
	for _, p := range append(append([]*klProc{}, longCons...), longProds...) {
		if _, err := p.ready(killLoopOpTimeout); err != nil {
			t.Fatalf("long-lived helper: %v", err)
		}
	}

	type victimProducer struct {
		id        uint32
		committed uint64 // lower bound, from its registry counter
	}
	var vprods []victimProducer
	var vconsFiles []string
	prodKills, consKills, earlyKills, reusedEntries := 0, 0, 0, 0
	begin := time.Now()
	for it := 0; it < iters; it++ {
		id := uint32(100 + it)
		vp := start("killloop-producer", false, fmt.Sprintf("MPMC_ID=%d", id), "MPMC_VICTIM=1")
		out := filepath.Join(dir, fmt.Sprintf("v%d", it))
		vconsFiles = append(vconsFiles, out)
		vc := start("killloop-consumer", false, "MPMC_OUT="+out, "MPMC_VICTIM=1")
		t0 := time.Now()
		type plan struct {
			p  *klProc
			at time.Time
		}
		var plans []plan
		for _, v := range []*klProc{vp, vc} {
			if rng.IntN(5) == 0 {
				// Kill it wherever it is: starting up, attaching, or
				// barely begun.
				earlyKills++
				plans = append(plans, plan{v, t0.Add(time.Duration(rng.IntN(15000)) * time.Microsecond)})
				continue
			}
			readyAt, err := v.ready(killLoopOpTimeout)
			if err != nil {
				t.Fatalf("iteration %d: victim: %v", it, err)
			}
			plans = append(plans, plan{v, readyAt.Add(time.Duration(rng.IntN(40000)) * time.Microsecond)})
		}
		if plans[1].at.Before(plans[0].at) {
			plans[0], plans[1] = plans[1], plans[0]
		}
		for _, pl := range plans {
			time.Sleep(time.Until(pl.at))
			if err := pl.p.killAndReap(killLoopOpTimeout); err != nil {
				t.Fatalf("iteration %d: victim: %v", it, err)
			}
		}
		prodKills++
		consKills++
		// Both victims are dead and nothing attaches until the next
		// iteration: the producer's registry entry still holds its count,
		// unless the victim consumer took the entry over after the
		// producer died (its attach bumped the generation, and it counts
		// what it receives on top): then all we know is what was delivered.
		var committed uint64
		for _, line := range vp.lines() {
			var idx int
			var base uint64
			var gen uint32
			if _, err := fmt.Sscanf(line, "ready %d %d %d", &idx, &base, &gen); err == nil {
				info, err := q.Segment().Entry(idx)
				if err != nil {
					t.Fatal(err)
				}
				if info.Gen == gen {
					committed = info.Messages - base
				} else {
					reusedEntries++
				}
			}
		}
		vprods = append(vprods, victimProducer{id, committed})
		for _, p := range append(append([]*klProc{}, longCons...), longProds...) {
			if p.exited() {
				t.Fatalf("iteration %d: a long-lived helper exited: %v", it, p.err)
			}
		}
		time.Sleep(time.Duration(rng.IntN(5000)) * time.Microsecond)
	}
	loopTime := time.Since(begin)

	// Stop the long-lived producers; each reports what it committed.
	longCommitted := make([]uint64, nLong)
	var requeued, skipped, redelivered uint64
	for i, p := range longProds {
		p.stdin.Close()
		if err := p.wait(30 * time.Second); err != nil {
			t.Fatalf("long-lived producer %d: %v", i, err)
		}
		var n, r uint64
		if _, err := fmt.Sscanf(p.last(), "done %d %d", &n, &r); err != nil {
			t.Fatalf("long-lived producer %d said %q", i, p.lines())
		}
		longCommitted[i] = n
		requeued += r
	}
	sp := mustProducer(t, q)
	buf := make([]byte, q.MaxMessage())
	ctx, cancel := context.WithTimeout(context.Background(), killLoopOpTimeout)
	defer cancel()
	// Every victim is dead. A message one of them still holds waits in its
	// slot for the producer that reaches the slot a lap later: a lap of
	// fillers makes sure that happens before the sentinels.
	for k := uint64(0); k < q.Slots(); k++ {
		if err := sp.Send(ctx, stressMessage(buf, fillerID, k, stressHeader)); err != nil {
			t.Fatalf("filler: %v", err)
		}
	}
	requeued += sp.Requeued()
	for range longCons {
		if err := sp.Send(ctx, stressMessage(buf, sentinelID, 0, stressHeader)); err != nil {
			t.Fatalf("sentinel: %v", err)
		}
	}
	for i, p := range longCons {
		if err := p.wait(30 * time.Second); err != nil {
			t.Fatalf("long-lived consumer %d: %v", i, err)
		}
		var n, s, r uint64
		if _, err := fmt.Sscanf(p.last(), "done %d %d %d", &n, &s, &r); err != nil {
			t.Fatalf("long-lived consumer %d said %q", i, p.lines())
		}
		skipped += s
		redelivered += r
	}
	// Everything before the sentinels was taken or skipped.
	c := mustConsumer(t, q)
	if n, err := c.TryRecv(buf); err != ErrEmpty {
		t.Fatalf("queue not drained: %d-byte message, %v", n, err)
	}
	if st, err := q.Stats(); err != nil || st.Used != 0 {
		t.Fatalf("queue not drained: %+v %v", st, err)
	}
	checkIdle(t, q)

	// What was delivered, from every consumer's record.
	type copyOf struct {
		file     int
		tail     bool // among the last maxHeld records of a victim
		requeued bool
	}
	type msgKey struct {
		id  uint32
		seq uint64
	}
	copies := map[msgKey][]copyOf{}
	maxSeq := map[uint32]uint64{}
	delivered, requeuedSeen, stepBacks := 0, 0, 0
	files := vconsFiles
	for i := range longCons {
		files = append(files, filepath.Join(dir, fmt.Sprintf("c%d", i)))
	}
	for fi, name := range files {
		b, err := os.ReadFile(name)
		if err != nil && !errors.Is(err, os.ErrNotExist) { // a victim killed before it created its file
			t.Fatal(err)
		}
		if len(b)%klRecordSize != 0 {
			t.Fatalf("%s: %d bytes of records", filepath.Base(name), len(b))
		}
		victim := fi < len(vconsFiles)
		nrec := len(b) / klRecordSize
		last := map[uint32]uint64{}
		got := map[msgKey]bool{}
		for r := 0; r < nrec; r++ {
			rec := b[r*klRecordSize:]
			k := msgKey{binary.LittleEndian.Uint32(rec), uint64(binary.LittleEndian.Uint32(rec[4:]))}
			requeuedMsg := binary.LittleEndian.Uint32(rec[8:]) != 0
			if got[k] {
				t.Fatalf("%s: producer %d seq %d received twice", filepath.Base(name), k.id, k.seq)
			}
			got[k] = true
			if l, ok := last[k.id]; ok && k.seq < l {
				// Per-producer order holds, except for requeued messages.
				if !requeuedMsg {
					t.Fatalf("%s: producer %d seq %d after %d, not requeued", filepath.Base(name), k.id, k.seq, l)
				}
				stepBacks++
			} else {
				last[k.id] = k.seq
			}
			if requeuedMsg {
				requeuedSeen++
			}
			copies[k] = append(copies[k], copyOf{fi, victim && r >= nrec-maxHeld, requeuedMsg})
			if m, ok := maxSeq[k.id]; !ok || k.seq > m {
				maxSeq[k.id] = k.seq
			}
			delivered++
		}
	}
	duplicates := 0
	for k, cs := range copies {
		if len(cs) == 1 {
			continue
		}
		duplicates += len(cs) - 1
		held, fresh := 0, 0
		for _, c := range cs {
			if c.tail {
				held++
			}
			if !c.requeued {
				fresh++
			}
		}
		if held < len(cs)-1 || fresh > 1 {
			t.Fatalf("producer %d seq %d delivered %d times (%d copies a killed consumer may have held, %d not marked requeued): %+v",
				k.id, k.seq, len(cs), held, fresh, cs)
		}
	}
	if requeuedSeen > maxHeld*consKills {
		t.Fatalf("%d requeued messages received, more than the %d that %d consumer kills can explain", requeuedSeen, maxHeld*consKills, consKills)
	}
	lost := 0
	checkProducer := func(id uint32, committed uint64, exact bool) {
		if _, any := maxSeq[id]; any && maxSeq[id]+1 > committed {
			if exact {
				t.Fatalf("producer %d committed %d messages, seq %d delivered", id, committed, maxSeq[id])
			}
			// A delivered message was committed, and so was every
			// earlier one.
			committed = maxSeq[id] + 1
		}
		for seq := uint64(0); seq < committed; seq++ {
			if copies[msgKey{id, seq}] == nil {
				if lost++; lost <= 20 {
					t.Logf("producer %d seq %d (of %d committed) not delivered", id, seq, committed)
				}
			}
		}
	}
	committedTotal := uint64(0)
	for i, n := range longCommitted {
		checkProducer(uint32(i), n, true)
		committedTotal += n
	}
	for _, v := range vprods {
		checkProducer(v.id, v.committed, false)
	}
	for k := range copies {
		if k.id >= nLong && (k.id < 100 || k.id >= 100+uint32(iters)) {
			t.Fatalf("delivered a message of unknown producer %d", k.id)
		}
	}
	if lost > 0 {
		t.Fatalf("%d committed messages lost", lost)
	}
	t.Logf("%d iterations in %v: %d producer and %d consumer processes SIGKILLed (%d before they reported ready; "+
		"%d victim producers' counters lost to a victim consumer that took their entry over); "+
		"0 hangs, 0 panics, 0 lost; %d messages delivered (%d committed by long-lived producers), %d duplicates, "+
		"%d requeued messages received (%d out of per-producer order; %d received by long-lived consumers); "+
		"long-lived producers and the filler requeued %d messages; long-lived consumers skipped %d dead producers' slots",
		iters, loopTime.Round(time.Millisecond), prodKills, consKills, earlyKills, reusedEntries, delivered, committedTotal, duplicates,
		requeuedSeen, stepBacks, redelivered, requeued, skipped)
}

// recvHeld is Recv for a victim consumer: it waits with PeekWait and hands
// the message to fn while it holds it, so that a kill never falls between
// the release of a message and its record.
func recvHeld(ctx context.Context, c *Consumer, fn func([]byte) error) error {
	m, err := c.PeekWait(ctx)
	if err != nil {
		return err
	}
	if err := fn(m); err != nil {
		return err
	}
	return c.Release()
}

// klProc is a kill-loop helper process, with its stdout collected line by
// line.
type klProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser // nil for victims
	first chan string    // the first line, or closed without one
	mu    sync.Mutex
	all   []string
	done  chan struct{}
	err   error // of Wait, once done is closed
}

func startKL(q *Queue, role string, withStdin bool, env ...string) (*klProc, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{"MPMC_HELPER=" + role}, env...)...)
	cmd.ExtraFiles = []*os.File{q.Segment().File()}
	cmd.Stderr = os.Stderr
	p := &klProc{cmd: cmd, first: make(chan string, 1), done: make(chan struct{})}
	var err error
	if withStdin {
		if p.stdin, err = cmd.StdinPipe(); err != nil {
			return nil, err
		}
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			p.mu.Lock()
			p.all = append(p.all, s.Text())
			n := len(p.all)
			p.mu.Unlock()
			if n == 1 {
				p.first <- s.Text()
			}
		}
		close(p.first)
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// ready waits for the helper's first line, which it prints once attached,
// and returns when it came.
func (p *klProc) ready(timeout time.Duration) (time.Time, error) {
	select {
	case line, ok := <-p.first:
		if !ok {
			return time.Time{}, fmt.Errorf("exited before it was ready: %v", p.wait(timeout))
		}
		if !strings.HasPrefix(line, "ready") {
			return time.Time{}, fmt.Errorf("said %q", line)
		}
		return time.Now(), nil
	case <-time.After(timeout):
		p.kill()
		return time.Time{}, fmt.Errorf("not ready after %v: hang", timeout)
	}
}

// lines returns every line the helper printed; call it once it exited.
func (p *klProc) lines() []string {
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.all
}

func (p *klProc) last() string {
	l := p.lines()
	if len(l) == 0 {
		return ""
	}
	return l[len(l)-1]
}

func (p *klProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits up to timeout for the helper to exit and returns Wait's
// error; a helper still running then is killed and reported as hung.
func (p *klProc) wait(timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return p.err
	case <-t.C:
		p.kill()
		return fmt.Errorf("still running after %v: hang", timeout)
	}
}

func (p *klProc) kill() {
	if !p.exited() {
		p.cmd.Process.Kill()
		<-p.done
	}
}

// killAndReap SIGKILLs a victim and checks that it died of that signal,
// not of a failure of its own.
func (p *klProc) killAndReap(timeout time.Duration) error {
	if p.exited() {
		return fmt.Errorf("exited before it was killed: %v", p.err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	if err := p.wait(timeout); err == nil {
		return errors.New("exited cleanly before it was killed")
	}
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		return fmt.Errorf("exited before it was killed: %v", p.err)
	}
	return nil
}

// killLoopProducer sends numbered, checksummed messages as producer
// MPMC_ID through Send, SendBatch, TrySend and Reserve/Commit. A long-lived
// one runs until its stdin is closed and then prints "done <committed>
// <requeued>"; a victim (MPMC_VICTIM set) prints its registry entry, the
// entry's message counter as it found it and its generation, and runs
// until killed, sometimes holding reservations for a while.
func killLoopProducer() error {
	q, err := openInherited()
	if err != nil {
		return err
	}
	defer q.Close()
	p, err := q.Producer()
	if err != nil {
		return err
	}
	id := uint32(envInt("MPMC_ID"))
	victim := os.Getenv("MPMC_VICTIM") != ""
	var stop atomic.Bool
	if victim {
		info, err := q.Segment().Entry(p.Index())
		if err != nil {
			return err
		}
		fmt.Printf("ready %d %d %d\n", p.Index(), info.Messages, info.Gen)
	} else {
		fmt.Println("ready")
		go func() {
			io.Copy(io.Discard, os.Stdin)
			stop.Store(true)
		}()
	}
	rng := rand.New(rand.NewPCG(uint64(id), uint64(os.Getpid())))
	maxLen := q.MaxMessage()
	buf := make([]byte, 4*maxLen)
	size := func() int { return stressHeader + rng.IntN(maxLen-stressHeader+1) }
	hold := func() {
		if victim && rng.IntN(2) == 0 {
			time.Sleep(time.Duration(rng.IntN(500)) * time.Microsecond)
		}
	}
	giveUp := time.Now().Add(killLoopVictimLife)
	seq := uint64(0)
	for !stop.Load() {
		if victim && time.Now().After(giveUp) {
			return errors.New("victim not killed")
		}
		ctx, cancel := context.WithTimeout(context.Background(), killLoopOpTimeout)
		switch r := rng.IntN(8); r {
		case 0: // Reserve up to 3, fill, maybe hold, Commit
			n := size()
			var b []byte
			for b, err = p.Reserve(n); err == ErrFull && ctx.Err() == nil; b, err = p.Reserve(n) {
				time.Sleep(20 * time.Microsecond)
			}
			if err != nil {
				break
			}
			stressMessage(b, id, seq, n)
			k, want := uint64(1), uint64(1+rng.IntN(3))
			for ; k < want; k++ {
				// No waiting here: our first reservation holds back the
				// consumers, so the ring may stay full behind it.
				n := size()
				b, err := p.Reserve(n)
				if err != nil {
					break
				}
				stressMessage(b, id, seq+k, n)
			}
			hold()
			err = p.Commit()
			seq += k
		case 1: // a batch of up to 4
			var msgs [][]byte
			for k := 0; k < 1+rng.IntN(4); k++ {
				msgs = append(msgs, stressMessage(buf[k*maxLen:], id, seq+uint64(k), size()))
			}
			err = p.SendBatch(ctx, msgs)
			seq += uint64(len(msgs))
		case 2: // TrySend, retried
			m := stressMessage(buf, id, seq, size())
			for err = p.TrySend(m); err == ErrFull && ctx.Err() == nil; err = p.TrySend(m) {
				time.Sleep(20 * time.Microsecond)
			}
			seq++
		default:
			err = p.Send(ctx, stressMessage(buf, id, seq, size()))
			seq++
		}
		if err == ErrFull {
			err = ctx.Err()
		}
		cancel()
		if err != nil {
			return fmt.Errorf("producer %d near seq %d: %w", id, seq, err)
		}
		if rng.IntN(4) == 0 {
			time.Sleep(50 * time.Microsecond)
		}
	}
	fmt.Printf("done %d %d\n", seq, p.Requeued())
	return p.Close()
}

// Kill-loop consumer records: u32 producer id, u32 sequence number, u32 1
// if the message arrived marked as requeued (Consumer.wasRequeued).
const klRecordSize = 12

// maxHeld is the most messages a kill-loop consumer holds at once (its
// Peek/Release rounds), and so the most a killed one leaves requeued.
const maxHeld = 3

// fillerID marks the parent's filler messages, which consumers drop.
const fillerID = sentinelID - 1

// killLoopConsumer receives through Recv (recvHeld for a victim),
// Peek/Release (up to maxHeld held) and TryRecvBatch, checks checksums,
// and appends a record of each message to MPMC_OUT (the parent checks order
// and duplicates). A long-lived one stops at a sentinel and prints "done
// <received> <skipped> <redelivered>". A victim (MPMC_VICTIM set) writes
// each record as soon as it holds the message, unbuffered, so a message it
// held when killed is among its last maxHeld records, or unrecorded; it
// sometimes holds peeked messages for a while, and runs until killed.
func killLoopConsumer() error {
	q, err := openInherited()
	if err != nil {
		return err
	}
	defer q.Close()
	c, err := q.Consumer()
	if err != nil {
		return err
	}
	victim := os.Getenv("MPMC_VICTIM") != ""
	f, err := os.Create(os.Getenv("MPMC_OUT"))
	if err != nil {
		return err
	}
	defer f.Close()
	var w io.Writer = f
	bw := bufio.NewWriter(f)
	if !victim {
		w = bw
	}
	fmt.Println("ready")
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 4))
	received := 0
	record := func(m []byte) (done bool, err error) {
		id, seq, err := checkStressMessage(m)
		if err != nil {
			return false, err
		}
		if id == sentinelID || id == fillerID {
			if victim {
				return false, errors.New("victim got a sentinel or filler")
			}
			return id == sentinelID, nil
		}
		var rec [klRecordSize]byte
		binary.LittleEndian.PutUint32(rec[0:], id)
		binary.LittleEndian.PutUint32(rec[4:], uint32(seq))
		if c.wasRequeued {
			binary.LittleEndian.PutUint32(rec[8:], 1)
		}
		_, err = w.Write(rec[:])
		received++
		return false, err
	}
	errDone := errors.New("done")
	buf := make([]byte, q.MaxMessage())
	giveUp := time.Now().Add(killLoopVictimLife)
	for done := false; !done; {
		if victim && time.Now().After(giveUp) {
			return errors.New("victim not killed")
		}
		ctx, cancel := context.WithTimeout(context.Background(), killLoopOpTimeout)
		switch r := rng.IntN(6); {
		case r == 0: // Peek up to maxHeld, maybe hold, Release
			k := 1 + rng.IntN(maxHeld)
			for got := 0; got < k && !done; got++ {
				m, perr := c.Peek()
				if perr == ErrEmpty {
					if got > 0 {
						break
					}
					if perr = ctx.Err(); perr == nil {
						time.Sleep(20 * time.Microsecond)
						got--
						continue
					}
				}
				if perr != nil {
					err = perr
					break
				}
				if done, err = record(m); err != nil {
					break
				}
			}
			if err == nil {
				if victim && rng.IntN(2) == 0 {
					time.Sleep(time.Duration(rng.IntN(500)) * time.Microsecond)
				}
				err = c.Release()
			}
		case r == 1: // a batch of up to 4
			_, err = c.TryRecvBatch(1+rng.IntN(4), func(m []byte) error {
				d, err := record(m)
				if err == nil && d {
					done = true
					return errDone // keep the sentinel, and nothing after it
				}
				return err
			})
			if done {
				// The sentinel is kept as the batch's failing message:
				// take it.
				_, err = c.TryRecv(buf)
			} else if err == ErrEmpty {
				if err = ctx.Err(); err == nil {
					time.Sleep(20 * time.Microsecond)
				}
			}
		case victim:
			// Recv would release the message before it could be recorded.
			err = recvHeld(ctx, c, func(m []byte) error {
				_, err := record(m)
				return err
			})
		default:
			var n int
			if n, err = c.Recv(ctx, buf); err == nil {
				done, err = record(buf[:n])
			}
		}
		cancel()
		if err != nil {
			return fmt.Errorf("consumer after %d messages: %w", received, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	fmt.Printf("done %d %d %d\n", received, c.Skipped(), c.Redelivered())
	return c.Close()
}
