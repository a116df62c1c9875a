//go:build unix

package mpmc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/shmq/shmq/sem"
)

func init() {
	helpers["lk-producer"] = lkProducer
	helpers["lk-consumer"] = lkConsumer
	helpers["lk-hog"] = lkHog
}

// TestLockedKillLoop is the kill loop of locked mode, on queues of 1, 2 and
// 64 slots. Two long-lived producer and two long-lived consumer processes
// run throughout; in each iteration a victim producer, a victim consumer
// and, two times in three, a "hog" that keeps taking the producers' or the
// consumers' mutex and holding it for 2-20 ms are started and SIGKILLed at
// random points: before they attach, while they wait for a mutex the hog
// holds (having taken a semaphore unit), parked on a semaphore, inside a
// critical section, between a cursor store and its releases. Every process
// logs every message into a file mapping, which a SIGKILL cannot undo.
//
// During the loop no process may wedge: every call of a long-lived helper
// has a deadline, and the long-lived consumers must keep receiving. Then
// the long-lived producers stop, one sentinel per long-lived consumer
// follows, and the test checks:
//
//   - no wedge: the sentinels are sent and received, and a final drain
//     finds the ring empty;
//   - no stranded message: nothing committed stays in the ring unreceivable;
//   - nobody left registered in any waiter set, with nobody attached;
//   - after a fresh attach no units are recorded and the semaphore counts
//     are exactly what the cursors imply (free = Slots-used, filled = used);
//   - capacity intact: a fresh producer fills exactly Slots messages, which
//     drain in order;
//   - delivery: every message a producer confirmed is delivered, except at
//     most one per consumer kill (a Recv or TryRecv killed after its head
//     store and before it returned: the documented loss); a message is
//     delivered twice only if a killed consumer's batch callback had logged
//     it (killed before the batch's head store: delivered again); no
//     consumer receives a message twice or a producer's messages out of
//     order; nothing is delivered that was not sent.
//
// MPMC_LOCKED_KILL_ITERS sets the number of iterations per queue shape (10
// by default, 4 under -short, which CI runs with the race detector).
func TestLockedKillLoop(t *testing.T) {
	iters := 10
	if testing.Short() {
		iters = 4
	}
	if os.Getenv("MPMC_LOCKED_KILL_ITERS") != "" {
		iters = envInt("MPMC_LOCKED_KILL_ITERS")
	}
	for _, slots := range []uint64{1, 2, 64} {
		t.Run(fmt.Sprintf("slots=%d", slots), func(t *testing.T) {
			lockedKillLoop(t, slots, iters)
		})
	}
}

// lkMaxBatch is the largest batch a kill-loop helper sends or receives.
const lkMaxBatch = 4

// lkWedge is how long the long-lived consumers may go without receiving
// anything before the loop calls it a wedge.
const lkWedge = 5 * time.Second

// lkAtKill counts what victims were doing when they were killed, from a
// look at the shared words just before the SIGKILL.
type lkAtKill struct {
	early       int // killed before it reported its registry entry
	mutexWait   int // registered as a waiter of a mutex
	mutexUnits  int // ... with semaphore units recorded: the window of issue 16 item 1
	semParked   int // registered as a waiter of a semaphore
	holding     int // owner of a mutex
	unitsLeft   int // units still recorded in its entry right after its death
	inRecv      int // consumers killed inside Recv or TryRecv (before they logged what it returned)
	inBatch     int // consumers killed inside TryRecvBatch
	hogHolding  int // hogs killed holding their mutex
	hogsStarted int
}

func lockedKillLoop(t *testing.T, slots uint64, iters int) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 16))
	q := newTestQueue(t, Config{Slots: slots, SlotSize: 64, Locked: true, StartPosition: ^uint64(0) - 100})
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
	newLog := func(name string, size int) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, int64(size)); err != nil {
			t.Fatal(err)
		}
		return path
	}

	const nLong = 2
	var longProds, longCons []*klProc
	var longConsLogs []*lkLog
	var consLogs []string // every consumer's log; victims' first
	for i := 0; i < nLong; i++ {
		path := newLog(fmt.Sprintf("c%d", i), 256<<20)
		l, err := mapLKLog(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.unmap)
		longConsLogs = append(longConsLogs, l)
		longCons = append(longCons, start("lk-consumer", false, "MPMC_LOG="+path))
		longProds = append(longProds, start("lk-producer", true, fmt.Sprintf("MPMC_ID=%d", i), "MPMC_LOG="+newLog(fmt.Sprintf("p%d", i), 4096)))
	}
	for _, p := range append(append([]*klProc{}, longCons...), longProds...) {
		if _, err := p.ready(killLoopOpTimeout); err != nil {
			t.Fatalf("long-lived helper: %v", err)
		}
	}
	dump := func() string { return lkDump(q) }
	longAlive := func(when string) {
		for _, p := range append(append([]*klProc{}, longCons...), longProds...) {
			if p.exited() {
				t.Fatalf("%s: a long-lived helper exited (%v): wedge or failure; %s", when, p.err, dump())
			}
		}
	}

	type victimProducer struct {
		id  uint32
		log string
	}
	var vprods []victimProducer
	var vconsLogs []string
	var at lkAtKill
	prodKills, consKills, hogKills := 0, 0, 0
	lastCount, lastProgress := uint64(0), time.Now()
	begin := time.Now()
	for it := 0; it < iters; it++ {
		id := uint32(100 + it)
		plog := newLog(fmt.Sprintf("vp%d", it), 4096)
		vprods = append(vprods, victimProducer{id, plog})
		vp := start("lk-producer", false, fmt.Sprintf("MPMC_ID=%d", id), "MPMC_VICTIM=1", "MPMC_LOG="+plog)
		clog := newLog(fmt.Sprintf("vc%d", it), 4<<20)
		vconsLogs = append(vconsLogs, clog)
		vc := start("lk-consumer", false, "MPMC_VICTIM=1", "MPMC_LOG="+clog)
		victims := []*klProc{vp, vc}
		var hog *klProc
		if k := rng.IntN(3); k < 2 {
			hog = start("lk-hog", false, "MPMC_MUTEX="+[]string{"p", "c"}[k])
			victims = append(victims, hog)
			at.hogsStarted++
		}
		t0 := time.Now()
		type plan struct {
			p   *klProc
			idx int // registry entry, -1 if not known
			at  time.Time
		}
		var plans []plan
		for _, v := range victims {
			if v != hog && rng.IntN(5) == 0 {
				// Kill it wherever it is: starting up, attaching, or
				// barely begun.
				plans = append(plans, plan{v, -1, t0.Add(time.Duration(rng.IntN(15000)) * time.Microsecond)})
				continue
			}
			readyAt, err := v.ready(killLoopOpTimeout)
			if err != nil {
				t.Fatalf("iteration %d: victim: %v; %s", it, err, dump())
			}
			var idx int
			if _, err := fmt.Sscanf(v.firstLine(), "ready %d", &idx); err != nil {
				t.Fatal(err)
			}
			life := 40000
			if v == hog {
				life = 60000 // outlive the others, usually
			}
			plans = append(plans, plan{v, idx, readyAt.Add(time.Duration(rng.IntN(life)) * time.Microsecond)})
		}
		for i := 1; i < len(plans); i++ {
			for j := i; j > 0 && plans[j].at.Before(plans[j-1].at); j-- {
				plans[j], plans[j-1] = plans[j-1], plans[j]
			}
		}
		for _, pl := range plans {
			time.Sleep(time.Until(pl.at))
			if pl.idx >= 0 {
				at.observe(q, pl.idx, pl.p.cmd.Process.Pid, pl.p == hog)
			} else {
				at.early++
			}
			if err := pl.p.killAndReap(killLoopOpTimeout); err != nil {
				t.Fatalf("iteration %d: victim: %v", it, err)
			}
			if pl.idx >= 0 && pl.p != hog {
				if u, _ := q.units(pl.idx); u.Load() != 0 {
					at.unitsLeft++
				}
			}
			switch pl.p {
			case vp:
				prodKills++
			case vc:
				consKills++
				switch in, _, err := readLKWords(clog); {
				case err != nil:
					t.Fatal(err)
				case in == lkInBatch:
					at.inBatch++
				case in != 0:
					at.inRecv++
				}
			default:
				hogKills++
			}
		}
		longAlive(fmt.Sprintf("iteration %d", it))
		n := uint64(0)
		for _, l := range longConsLogs {
			n += l.count()
		}
		if n != lastCount {
			lastCount, lastProgress = n, time.Now()
		} else if time.Since(lastProgress) > lkWedge {
			t.Fatalf("iteration %d: the long-lived consumers received nothing for %v: wedge; %s", it, lkWedge, dump())
		}
		time.Sleep(time.Duration(rng.IntN(5000)) * time.Microsecond)
	}
	loopTime := time.Since(begin)

	// Stop the long-lived producers; each reports what it committed.
	committed := map[uint32]uint64{}
	attempted := map[uint32]uint64{}
	for i, p := range longProds {
		p.stdin.Close()
		if err := p.wait(30 * time.Second); err != nil {
			t.Fatalf("long-lived producer %d: %v; %s", i, err, dump())
		}
		var n uint64
		if _, err := fmt.Sscanf(p.last(), "done %d", &n); err != nil {
			t.Fatalf("long-lived producer %d said %q", i, p.lines())
		}
		committed[uint32(i)], attempted[uint32(i)] = n, n
	}
	for _, v := range vprods {
		c, a, err := readLKWords(v.log)
		if err != nil {
			t.Fatal(err)
		}
		committed[v.id], attempted[v.id] = c, a
	}

	// Sentinels, through a fresh handle: a queue whose capacity leaked away
	// takes none.
	ctx, cancel := context.WithTimeout(context.Background(), killLoopOpTimeout)
	defer cancel()
	q2 := reopen(t, q)
	sp := mustProducer(t, q2)
	buf := make([]byte, q.MaxMessage())
	for range longCons {
		if err := sp.Send(ctx, stressMessage(buf, sentinelID, 0, stressHeader)); err != nil {
			t.Fatalf("sentinel: %v: wedge (no free slot); %s", err, dump())
		}
	}
	for i, p := range longCons {
		if err := p.wait(30 * time.Second); err != nil {
			t.Fatalf("long-lived consumer %d: %v: wedge or stranded messages; %s", i, err, dump())
		}
	}
	// Everything before the sentinels was received: the ring is empty.
	sc := mustConsumer(t, q2)
	stranded := uint64(0)
	for {
		st, err := q2.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.Used == 0 {
			break
		}
		dctx, dcancel := context.WithTimeout(ctx, 3*time.Second)
		n, err := sc.Recv(dctx, buf)
		dcancel()
		if err != nil {
			stranded = st.Used
			t.Fatalf("%d messages stranded after the drain: %v; %s", stranded, err, dump())
		}
		id, seq, _ := checkStressMessage(buf[:n])
		t.Fatalf("message %d/%d still queued after the sentinels", id, seq)
	}
	if _, err := sc.TryRecv(buf); err != ErrEmpty {
		t.Fatalf("drained queue: %v; %s", err, dump())
	}
	sp.Close()
	sc.Close()

	// Nobody is attached now: nobody may be registered as a waiter.
	for k, s := range q.lk.sets {
		if n := s.Count(); n != 0 {
			t.Errorf("waiter set %s: %d registered with nobody attached; %s", lkSetNames[k], n, dump())
		}
	}
	// A fresh attach recovers what dead processes recorded and reconciles.
	q3 := reopen(t, q)
	fp, fc := mustProducer(t, q3), mustConsumer(t, q3)
	units := 0
	for i := 0; i < int(q.hdr.RegistryCount); i++ {
		u, _ := q.units(i)
		if u.Load() != 0 {
			units++
		}
	}
	used := q.enq.Load() - q.deq.Load()
	free, filled := uint64(q.lk.free.Value()), uint64(q.lk.filled.Value())
	countsOK := units == 0 && free == slots-used && filled == used
	if !countsOK {
		t.Errorf("after a fresh attach: %d entries with units recorded, free %d filled %d, cursors imply %d and %d; %s",
			units, free, filled, slots-used, used, dump())
	}
	checkLockedConsistent(t, q3, fp, fc)

	// What was delivered, from every consumer's log.
	consLogs = append(consLogs, vconsLogs...)
	for i := range longCons {
		consLogs = append(consLogs, filepath.Join(dir, fmt.Sprintf("c%d", i)))
	}
	copies := map[uint32][]uint8{}
	for id, a := range attempted {
		copies[id] = make([]uint8, a)
	}
	type key struct {
		id  uint32
		seq uint64
	}
	tailOf := map[key]int{} // copies among the last lkMaxBatch records of a victim
	delivered := 0
	for fi, name := range consLogs {
		recs, err := readLKConsumerLog(name)
		if err != nil {
			t.Fatal(err)
		}
		victim := fi < len(vconsLogs)
		last := map[uint32]uint64{}
		for r, rec := range recs {
			id, seq := uint32(rec>>32), rec&0xffffffff
			c, ok := copies[id]
			if !ok || seq >= uint64(len(c)) {
				t.Fatalf("%s: producer %d seq %d was never sent (attempted %d)", filepath.Base(name), id, seq, len(c))
			}
			if l, ok := last[id]; ok && seq <= l {
				t.Fatalf("%s: producer %d seq %d after %d", filepath.Base(name), id, seq, l)
			}
			last[id] = seq
			c[seq]++
			if victim && r >= len(recs)-lkMaxBatch {
				tailOf[key{id, seq}]++
			}
			delivered++
		}
	}
	lost, duplicates, maybeDelivered, maybe := 0, 0, 0, 0
	var committedTotal uint64
	for id, c := range copies {
		committedTotal += committed[id]
		for seq, n := range c {
			switch {
			case uint64(seq) >= committed[id]:
				maybe++
				if n > 0 {
					maybeDelivered++
				}
			case n == 0:
				if lost++; lost <= 10 {
					t.Logf("producer %d seq %d (of %d confirmed) not delivered", id, seq, committed[id])
				}
			}
			if n > 1 {
				duplicates += int(n) - 1
				if int(n)-1 > tailOf[key{id, uint64(seq)}] {
					t.Errorf("producer %d seq %d delivered %d times, %d of them to a killed consumer's batch callback",
						id, seq, n, tailOf[key{id, uint64(seq)}])
				}
			}
		}
	}
	if lost > at.inRecv {
		t.Errorf("%d confirmed messages lost: more than the %d consumers killed inside Recv or TryRecv explain (one each)", lost, at.inRecv)
	}
	t.Logf("slots=%d: %d iterations in %v: SIGKILLed %d producers, %d consumers, %d hogs (%d hogs started); "+
		"at the kill: %d victims before they reported ready, %d waiting for a mutex (%d of them with units recorded), "+
		"%d parked on a semaphore, %d holding a mutex, %d hogs holding theirs; %d died with units recorded; "+
		"%d messages confirmed (%d delivered, %d of %d unconfirmed in-flight ones delivered); "+
		"lost by a consumer crash %d (%d consumers killed inside Recv or TryRecv), delivered twice %d (%d killed inside TryRecvBatch); stranded %d; wedges 0; "+
		"after a fresh attach counts equal the cursors: %v; capacity %d of %d",
		slots, iters, loopTime.Round(time.Millisecond), prodKills, consKills, hogKills, at.hogsStarted,
		at.early, at.mutexWait, at.mutexUnits, at.semParked, at.holding, at.hogHolding, at.unitsLeft,
		committedTotal, delivered, maybeDelivered, maybe, lost, at.inRecv, duplicates, at.inBatch, stranded, countsOK, slots, slots)
}

// observe records what the victim holding registry entry idx (pid pid) is
// doing, just before it is killed.
func (a *lkAtKill) observe(q *Queue, idx, pid int, hog bool) {
	l := q.lk
	holding := l.pmu.Owner() == uint32(pid) || l.cmu.Owner() == uint32(pid)
	if hog {
		if holding {
			a.hogHolding++
		}
		return
	}
	u, _ := q.units(idx)
	if l.sets[2].Has(idx) || l.sets[3].Has(idx) {
		a.mutexWait++
		if u.Load() != 0 {
			a.mutexUnits++
		}
	}
	if l.sets[0].Has(idx) || l.sets[1].Has(idx) {
		a.semParked++
	}
	if holding {
		a.holding++
	}
}

// lkSetNames names q.lk.sets.
var lkSetNames = []string{"free", "filled", "mutex P", "mutex C"}

// lkDump describes the locked-mode words of q, for a failure message.
func lkDump(q *Queue) string {
	l := q.lk
	var b strings.Builder
	tail, head := q.enq.Load(), q.deq.Load()
	fmt.Fprintf(&b, "tail-head %d, free %d, filled %d", tail-head, l.free.Value(), l.filled.Value())
	for k, s := range l.sets {
		fmt.Fprintf(&b, ", %s %d waiting", lkSetNames[k], s.Count())
	}
	fmt.Fprintf(&b, ", mutex P held %v (pid %d), mutex C held %v (pid %d)", l.pmu.Held(), l.pmu.Owner(), l.cmu.Held(), l.cmu.Owner())
	for i := 0; i < int(q.hdr.RegistryCount); i++ {
		u, _ := q.units(i)
		if n := u.Load(); n != 0 {
			info, _ := q.seg.Entry(i)
			fmt.Fprintf(&b, ", entry %d (alive %v) units %d", i, info.Alive, n)
		}
	}
	return b.String()
}

// firstLine returns the helper's first line, once ready has seen it.
func (p *klProc) firstLine() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.all) == 0 {
		return ""
	}
	return p.all[0]
}

// An lkLog is a record log in a shared file mapping, which survives its
// writer's SIGKILL: each store is in the page cache the moment it is made.
// Word 0 counts the records; a producer keeps its confirmed and attempted
// sequence bounds in words 1 and 2, a consumer in word 1 the kind of call
// it is in (lkInBatch, lkInTryRecv, lkInRecv; 0 outside calls and once the
// call's messages are logged); records (u32 producer id, u32 sequence
// number) start at word lkLogHeader.
type lkLog struct {
	b []byte
	w []atomic.Uint64
}

const lkLogHeader = 4

const (
	lkInBatch = 1 + iota
	lkInTryRecv
	lkInRecv
)

func mapLKLog(path string) (*lkLog, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	return &lkLog{b: b, w: unsafe.Slice((*atomic.Uint64)(unsafe.Pointer(&b[0])), len(b)/8)}, nil
}

func (l *lkLog) unmap() { syscall.Munmap(l.b) }

func (l *lkLog) count() uint64 { return l.w[0].Load() }

// add appends a record: the record first, then the count that covers it.
func (l *lkLog) add(id uint32, seq uint64) error {
	n := l.w[0].Load()
	if lkLogHeader+n >= uint64(len(l.w)) {
		return errors.New("log full")
	}
	l.w[lkLogHeader+n].Store(uint64(id)<<32 | seq&0xffffffff)
	l.w[0].Store(n + 1)
	return nil
}

func readLKConsumerLog(path string) ([]uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var hdr [8 * lkLogHeader]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint64(hdr[:])
	b := make([]byte, 8*n)
	if _, err := f.ReadAt(b, 8*lkLogHeader); err != nil {
		return nil, err
	}
	recs := make([]uint64, n)
	for i := range recs {
		recs[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return recs, nil
}

// readLKWords returns words 1 and 2 of a log.
func readLKWords(path string) (w1, w2 uint64, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	return binary.LittleEndian.Uint64(b[8:]), binary.LittleEndian.Uint64(b[16:]), nil
}

// lkProducer sends numbered, checksummed messages as producer MPMC_ID
// through Send, SendBatch, TrySend and TrySendBatch, keeping in its log
// (MPMC_LOG) how many messages it confirmed (the calls returned) and how
// many it attempted (the calls began). A long-lived one runs until its stdin
// is closed and then prints "done <confirmed>"; a victim (MPMC_VICTIM set)
// prints "ready <registry entry>" and runs until killed.
func lkProducer() error {
	q, err := openInherited()
	if err != nil {
		return err
	}
	defer q.Close()
	log, err := mapLKLog(os.Getenv("MPMC_LOG"))
	if err != nil {
		return err
	}
	p, err := q.Producer()
	if err != nil {
		return err
	}
	id := uint32(envInt("MPMC_ID"))
	victim := os.Getenv("MPMC_VICTIM") != ""
	var stop atomic.Bool
	fmt.Printf("ready %d\n", p.Index())
	if !victim {
		go func() {
			_, _ = os.Stdin.Read(make([]byte, 1)) // EOF when the parent closes it
			stop.Store(true)
		}()
	}
	rng := rand.New(rand.NewPCG(uint64(id), uint64(os.Getpid())))
	maxLen := q.MaxMessage()
	buf := make([]byte, lkMaxBatch*maxLen)
	size := func() int { return stressHeader + rng.IntN(maxLen-stressHeader+1) }
	giveUp := time.Now().Add(killLoopVictimLife)
	seq := uint64(0)
	for !stop.Load() {
		if victim && time.Now().After(giveUp) {
			return errors.New("victim not killed")
		}
		ctx, cancel := context.WithTimeout(context.Background(), killLoopOpTimeout)
		k := 1
		if r := rng.IntN(3); r < 2 {
			k = 1 + rng.IntN(lkMaxBatch)
		}
		var msgs [][]byte
		for j := 0; j < k; j++ {
			msgs = append(msgs, stressMessage(buf[j*maxLen:], id, seq+uint64(j), size()))
		}
		log.w[2].Store(seq + uint64(k))
		switch r := rng.IntN(4); r {
		case 0: // TrySendBatch (TrySend for one), retried for the rest
			sent := 0
			for sent < k {
				var n int
				if k == 1 {
					if err = p.TrySend(msgs[0]); err == nil {
						n = 1
					}
				} else {
					n, err = p.TrySendBatch(msgs[sent:])
				}
				sent += n
				log.w[1].Store(seq + uint64(sent))
				if err == ErrFull {
					if err = ctx.Err(); err == nil {
						time.Sleep(20 * time.Microsecond)
						continue
					}
				}
				if err != nil {
					break
				}
			}
		case 1: // SendBatch
			if err = p.SendBatch(ctx, msgs); err == nil {
				log.w[1].Store(seq + uint64(k))
			}
		default: // Send, one at a time
			for j := 0; j < k && err == nil; j++ {
				if err = p.Send(ctx, msgs[j]); err == nil {
					log.w[1].Store(seq + uint64(j) + 1)
				}
			}
		}
		cancel()
		if err != nil {
			return fmt.Errorf("producer %d near seq %d: %w", id, seq, err)
		}
		seq += uint64(k)
	}
	fmt.Printf("done %d\n", seq)
	return p.Close()
}

// lkConsumer receives through Recv, TryRecv and TryRecvBatch and logs each
// message into MPMC_LOG: after Recv and TryRecv return, and inside the
// batch callback (under the consumers' mutex, before the head store). A
// long-lived one stops at a sentinel (leaving anything after it in a batch
// at the head) and prints "done <received>"; a victim (MPMC_VICTIM set)
// prints "ready <registry entry>" and runs until killed.
func lkConsumer() error {
	q, err := openInherited()
	if err != nil {
		return err
	}
	defer q.Close()
	log, err := mapLKLog(os.Getenv("MPMC_LOG"))
	if err != nil {
		return err
	}
	c, err := q.Consumer()
	if err != nil {
		return err
	}
	victim := os.Getenv("MPMC_VICTIM") != ""
	fmt.Printf("ready %d\n", c.Index())
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 5))
	done := false
	record := func(m []byte) error {
		id, seq, err := checkStressMessage(m)
		if err != nil {
			return err
		}
		if id == sentinelID {
			if victim {
				return errors.New("victim got a sentinel")
			}
			done = true
			return nil
		}
		return log.add(id, seq)
	}
	errDone := errors.New("done")
	buf := make([]byte, q.MaxMessage())
	giveUp := time.Now().Add(killLoopVictimLife)
	for !done {
		if victim && time.Now().After(giveUp) {
			return errors.New("victim not killed")
		}
		ctx, cancel := context.WithTimeout(context.Background(), killLoopOpTimeout)
		r := rng.IntN(4)
		log.w[1].Store(uint64(min(r, 2)) + 1) // inside a call, until its messages are logged
		switch r {
		case 0: // a batch, logged in the callback
			_, err = c.TryRecvBatch(1+rng.IntN(lkMaxBatch), func(m []byte) error {
				if done {
					return errDone // leave the other consumers' sentinels
				}
				return record(m)
			})
			if err == errDone {
				err = nil
			} else if err == ErrEmpty {
				if err = ctx.Err(); err == nil {
					time.Sleep(20 * time.Microsecond)
				}
			}
		case 1: // TryRecv, retried
			var n int
			for n, err = c.TryRecv(buf); err == ErrEmpty && ctx.Err() == nil; n, err = c.TryRecv(buf) {
				time.Sleep(20 * time.Microsecond)
			}
			if err == ErrEmpty {
				err = ctx.Err()
			}
			if err == nil {
				err = record(buf[:n])
			}
		default:
			var n int
			if n, err = c.Recv(ctx, buf); err == nil {
				err = record(buf[:n])
			}
		}
		cancel()
		if err != nil {
			return fmt.Errorf("consumer after %d messages: %w", log.count(), err)
		}
		log.w[1].Store(0)
	}
	fmt.Printf("done %d\n", log.count())
	return c.Close()
}

// lkHog attaches a producer (MPMC_MUTEX=p) or a consumer (c) for a registry
// entry, prints "ready <entry>", and then keeps taking that side's mutex and
// holding it for 2-20 ms, with short gaps, until it is killed: callers that
// took a semaphore unit wait for the mutex meanwhile, where a kill used to
// leak the unit.
func lkHog() error {
	q, err := openInherited()
	if err != nil {
		return err
	}
	var me int
	var m *sem.Mutex
	switch os.Getenv("MPMC_MUTEX") {
	case "p":
		p, err := q.Producer()
		if err != nil {
			return err
		}
		me, m = p.Index(), q.lk.pmu
	case "c":
		c, err := q.Consumer()
		if err != nil {
			return err
		}
		me, m = c.Index(), q.lk.cmu
	default:
		return errors.New("MPMC_MUTEX must be p or c")
	}
	fmt.Printf("ready %d\n", me)
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 6))
	giveUp := time.Now().Add(killLoopVictimLife)
	for time.Now().Before(giveUp) {
		ctx, cancel := context.WithTimeout(context.Background(), killLoopOpTimeout)
		err := q.lock(ctx, m, me)
		cancel()
		if err != nil {
			return err
		}
		time.Sleep(2*time.Millisecond + time.Duration(rng.IntN(18000))*time.Microsecond)
		if err := m.Unlock(); err != nil {
			return err
		}
		time.Sleep(time.Duration(100+rng.IntN(2000)) * time.Microsecond)
	}
	return errors.New("hog not killed")
}
