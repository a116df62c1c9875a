//go:build unix

package mpmc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/shmq/shmq/internal/shmtest"
	"github.com/shmq/shmq/notify"
	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/spsc"
)

// Tests of notify.Group over queues of both kinds. The helper processes
// inherit the queues as descriptors 3, 4, ...: first the SPSC ones, then
// the MPMC ones.

func init() {
	helpers["group-sender"] = groupSender
	helpers["group-hold-spsc"] = groupHoldSPSC
}

// receiver is what the tests need of either kind of consumer.
type receiver interface {
	notify.Waitable
	TryRecvBatch(max int, fn func([]byte) error) (int, error)
	Close() error
}

// groupQueues makes ns SPSC and nm MPMC queues, with a consumer on each,
// in that order, and returns the queues' files for helpers.
type groupQueues struct {
	spsc  []*spsc.Queue
	mpmc  []*Queue
	cons  []receiver
	files []*os.File
}

func newGroupQueues(t testing.TB, ns, nm int, mcfg Config) *groupQueues {
	t.Helper()
	gq := &groupQueues{}
	for i := range ns {
		q, err := spsc.Create(ring.Memfd(fmt.Sprintf("group-spsc-%d", i)), spsc.Config{Capacity: 4096, Wait: mcfg.Wait})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
		c, err := q.Consumer()
		if err != nil {
			t.Fatal(err)
		}
		gq.spsc = append(gq.spsc, q)
		gq.cons = append(gq.cons, c)
		gq.files = append(gq.files, q.Segment().File())
	}
	for range nm {
		q := newTestQueue(t, mcfg)
		gq.mpmc = append(gq.mpmc, q)
		gq.cons = append(gq.cons, mustConsumer(t, q))
		gq.files = append(gq.files, q.Segment().File())
	}
	return gq
}

// group makes a group of every consumer, keys in order.
func (gq *groupQueues) group(t testing.TB) *notify.Group {
	t.Helper()
	return gq.groupWith(t, notify.GroupConfig{})
}

func (gq *groupQueues) groupWith(t testing.TB, cfg notify.GroupConfig) *notify.Group {
	t.Helper()
	g := notify.NewGroup(cfg)
	t.Cleanup(func() { g.Close() })
	for i, c := range gq.cons {
		if k, err := g.Add(c); err != nil || k != i {
			t.Fatalf("Add: %d, %v", k, err)
		}
	}
	return g
}

// Group messages: u32 sender, u32 queue index, u64 sequence number of the
// sender on that queue.
const groupMsgSize = 16

// groupSender sends MPMC_COUNT messages to random queues: the SPSC queues
// GROUP_SPSC_FROM..GROUP_SPSC_TO-1 (whose producer role it takes) and all
// GROUP_MPMC MPMC queues, pausing now and then so that the receiver parks.
// It closes its producers at the end, which ends its SPSC streams.
func groupSender() error {
	id, count := envInt("MPMC_ID"), envInt("MPMC_COUNT")
	from, to, nm := envInt("GROUP_SPSC_FROM"), envInt("GROUP_SPSC_TO"), envInt("GROUP_MPMC")
	ns := envInt("GROUP_SPSC")
	type sender interface {
		Send(context.Context, []byte) error
		Close() error
	}
	var w Wait // the backends of both sides must reach each other
	if os.Getenv("GROUP_POLL") != "" {
		w.Backend = notify.NewPoll(notify.PollConfig{})
	}
	var targets []sender
	var index []int
	for i := from; i < to; i++ {
		q, err := spsc.Open(context.Background(), ring.FD(3+i), &spsc.Options{Wait: w})
		if err != nil {
			return err
		}
		defer q.Close()
		p, err := q.Producer()
		if err != nil {
			return err
		}
		targets, index = append(targets, p), append(index, i)
	}
	for i := range nm {
		q, err := Open(context.Background(), ring.FD(3+ns+i), &Options{Wait: w})
		if err != nil {
			return err
		}
		defer q.Close()
		p, err := q.Producer()
		if err != nil {
			return err
		}
		targets, index = append(targets, p), append(index, ns+i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rng := rand.New(rand.NewPCG(uint64(id), 7))
	seqs := make([]uint64, len(targets))
	msg := make([]byte, groupMsgSize)
	for n := 0; n < count; n++ {
		if rng.IntN(64) == 0 {
			time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
		}
		t := rng.IntN(len(targets))
		binary.LittleEndian.PutUint32(msg[0:], uint32(id))
		binary.LittleEndian.PutUint32(msg[4:], uint32(index[t]))
		binary.LittleEndian.PutUint64(msg[8:], seqs[t])
		seqs[t]++
		if err := targets[t].Send(ctx, msg); err != nil {
			return err
		}
	}
	for _, p := range targets {
		if err := p.Close(); err != nil {
			return err
		}
	}
	return nil
}

// TestGroupMixedQueuesAcrossProcesses: two processes send to random queues
// among 6 SPSC and 6 MPMC queues (each SPSC queue has one of them as its
// producer, each MPMC queue both); one goroutine with a notify.Group
// receives every message exactly once, in each sender's order per queue,
// and sees each SPSC stream end. The receiving handles park on futexes
// (the group parks with futex_waitv), or poll (the group polls them).
func TestGroupMixedQueuesAcrossProcesses(t *testing.T) {
	t.Run("futex", func(t *testing.T) { testGroupMixed(t, false) })
	t.Run("polled", func(t *testing.T) { testGroupMixed(t, true) })
}

func testGroupMixed(t *testing.T, poll bool) {
	var w Wait
	env := "GROUP_POLL="
	if poll {
		w.Backend = notify.NewPoll(notify.PollConfig{})
		env += "1"
	}
	const ns, nm, count = 6, 6, 20000
	gq := newGroupQueues(t, ns, nm, Config{Slots: 16, MaxMessage: groupMsgSize, Wait: w})
	g := gq.group(t)
	var cmds []*exec.Cmd
	for id := range 2 {
		cmd := helper(t, gq.mpmc[0], "group-sender",
			fmt.Sprintf("MPMC_ID=%d", id), fmt.Sprintf("MPMC_COUNT=%d", count),
			fmt.Sprintf("GROUP_SPSC_FROM=%d", id*ns/2), fmt.Sprintf("GROUP_SPSC_TO=%d", (id+1)*ns/2),
			fmt.Sprintf("GROUP_SPSC=%d", ns), fmt.Sprintf("GROUP_MPMC=%d", nm), env)
		cmd.ExtraFiles = gq.files
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				cmd.Process.Kill()
				cmd.Wait()
			}
		})
		cmds = append(cmds, cmd)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	next := map[[2]uint32]uint64{} // (sender, queue) -> next sequence number
	got, ended, spurious := 0, 0, 0
	for got < 2*count || ended < ns {
		k, err := g.Wait(ctx)
		if err == io.EOF && k < ns {
			ended++
			if err := g.Remove(k); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Wait after %d messages: %d, %v", got, k, err)
		}
		n, err := gq.cons[k].TryRecvBatch(64, func(m []byte) error {
			if len(m) != groupMsgSize {
				return fmt.Errorf("message of %d bytes", len(m))
			}
			key := [2]uint32{binary.LittleEndian.Uint32(m), binary.LittleEndian.Uint32(m[4:])}
			if int(key[1]) != k {
				return fmt.Errorf("message for queue %d from queue %d", key[1], k)
			}
			if seq := binary.LittleEndian.Uint64(m[8:]); seq != next[key] {
				return fmt.Errorf("sender %d queue %d: sequence %d, want %d", key[0], key[1], seq, next[key])
			}
			next[key]++
			return nil
		})
		if err == ErrEmpty {
			spurious++
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got += n
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("sender: %v", err)
		}
	}
	t.Logf("%d messages, %d spurious reports", got, spurious)
	total := uint64(0)
	for _, n := range next {
		total += n
	}
	if total != 2*count {
		t.Fatalf("received %d messages, want %d", total, 2*count)
	}
}

// TestGroupIdleUsesNoCPU: a group parked on idle queues of both kinds uses
// under 4% of a CPU.
func TestGroupIdleUsesNoCPU(t *testing.T) {
	g := newGroupQueues(t, 4, 4, Config{Slots: 16, MaxMessage: 64}).group(t)
	shmtest.CheckIdleRecv(t, func(ctx context.Context) error {
		_, err := g.Wait(ctx)
		return err
	})
}

// TestGroupNoWakePerMessage: producers streaming to queues whose only
// receiver is a group make no wake system call per message while the
// group does not park (it spins here, as the queues' own streaming tests
// do: a woken waiter that has not run yet stays registered, and on a
// loaded machine a fast producer then wakes it per message until it runs,
// with or without a group).
func TestGroupNoWakePerMessage(t *testing.T) {
	const count = 100000
	gq := newGroupQueues(t, 2, 2, Config{Slots: 256, MaxMessage: 64})
	g := gq.groupWith(t, notify.GroupConfig{Spin: time.Second})
	var wakes []notify.Backend
	var send []func(context.Context, []byte) error
	for _, q := range gq.spsc {
		f := notify.Default()
		wakes = append(wakes, f)
		q2, err := spsc.Open(context.Background(), ring.FD(q.Segment().Fd()), &spsc.Options{Wait: spsc.Wait{Backend: f}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q2.Close() })
		p, err := q2.Producer()
		if err != nil {
			t.Fatal(err)
		}
		send = append(send, p.Send)
	}
	for _, q := range gq.mpmc {
		f := notify.Default()
		wakes = append(wakes, f)
		q2, err := Open(context.Background(), ring.FD(q.Segment().Fd()), &Options{Wait: Wait{Backend: f}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q2.Close() })
		send = append(send, mustProducer(t, q2).Send)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		msg := make([]byte, 64)
		for i := range count {
			if err := send[i%len(send)](ctx, msg); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for got := 0; got < count; {
		k, err := g.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n, err := gq.cons[k].TryRecvBatch(256, func([]byte) error { return nil })
		if err != nil && err != ErrEmpty {
			t.Fatal(err)
		}
		got += n
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	n := uint64(0)
	for _, f := range wakes {
		n += f.Stats().WakeSyscalls
	}
	t.Logf("%d messages, %d wake system calls by the producers", count, n)
	if n > count/100 {
		t.Fatalf("%d wake system calls for %d messages: the producers wake per message", n, count)
	}
}

// TestGroupMemberClosedWhileWaiting: closing a member's consumer, or its
// queue, while a group waits on it ends the Wait with that member's
// ErrClosed, which also matches net.ErrClosed.
func TestGroupMemberClosedWhileWaiting(t *testing.T) {
	gq := newGroupQueues(t, 2, 2, Config{Slots: 16, MaxMessage: 64})
	g := gq.group(t)
	for _, tc := range []struct {
		key   int
		close func() error
	}{
		{0, gq.cons[0].Close},
		{1, gq.spsc[1].Close},
		{2, gq.cons[2].Close},
		{3, gq.mpmc[1].Close},
	} {
		type result struct {
			k   int
			err error
		}
		ch := make(chan result, 1)
		go func() {
			k, err := g.Wait(context.Background())
			ch <- result{k, err}
		}()
		time.Sleep(20 * time.Millisecond)
		closed := make(chan error, 1)
		go func() { closed <- tc.close() }()
		var r result
		select {
		case r = <-ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("member %d closed: Wait did not return", tc.key)
		}
		if r.k != tc.key || !errors.Is(r.err, ErrClosed) || !errors.Is(r.err, net.ErrClosed) {
			t.Fatalf("member %d closed: Wait = %d, %v", tc.key, r.k, r.err)
		}
		select {
		case <-closed:
		case <-time.After(5 * time.Second):
			t.Fatalf("member %d: Close did not return", tc.key)
		}
		if err := g.Remove(tc.key); err != nil {
			t.Fatal(err)
		}
	}
}

// TestGroupEndOfStream: a group reports an SPSC consumer's end of stream
// after its messages, and an MPMC consumer's when it opted in.
func TestGroupEndOfStream(t *testing.T) {
	gq := newGroupQueues(t, 1, 1, Config{Slots: 16, MaxMessage: 64})
	g := gq.group(t)
	sp, err := gq.spsc[0].Producer()
	if err != nil {
		t.Fatal(err)
	}
	mp := mustProducer(t, gq.mpmc[0])
	gq.cons[1].(*Consumer).EndOfStream(20 * time.Millisecond)
	for _, s := range []func(context.Context, []byte) error{sp.Send, mp.Send} {
		if err := s(context.Background(), []byte("last")); err != nil {
			t.Fatal(err)
		}
	}
	sp.Close()
	mp.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msgs, eofs := 0, map[int]bool{}
	for len(eofs) < 2 {
		k, err := g.Wait(ctx)
		if err == io.EOF {
			if n, _ := gq.cons[k].TryRecvBatch(1, func([]byte) error { return nil }); n != 0 {
				t.Fatalf("member %d: io.EOF before its last message", k)
			}
			eofs[k] = true
			g.Remove(k)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		n, _ := gq.cons[k].TryRecvBatch(8, func([]byte) error { return nil })
		msgs += n
	}
	if msgs != 2 {
		t.Fatalf("%d messages before the ends of the streams, want 2", msgs)
	}
}

// TestGroupLockedMember: a group parks on a locked-mode queue's filled
// semaphore, and its release wakes it.
func TestGroupLockedMember(t *testing.T) {
	gq := newGroupQueues(t, 1, 1, Config{Slots: 4, MaxMessage: 64, Locked: true})
	g := gq.group(t)
	p := mustProducer(t, gq.mpmc[0])
	go func() {
		time.Sleep(30 * time.Millisecond)
		p.Send(context.Background(), []byte("locked"))
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	k, err := g.Wait(ctx)
	if k != 1 || err != nil {
		t.Fatalf("Wait = %d, %v; want 1", k, err)
	}
	var got string
	if _, err := gq.cons[1].TryRecvBatch(1, func(m []byte) error { got = string(m); return nil }); err != nil || got != "locked" {
		t.Fatalf("TryRecvBatch: %q, %v", got, err)
	}
}

// groupHoldSPSC attaches the producer of the SPSC queue at descriptor 3,
// says so, and waits to be killed.
func groupHoldSPSC() error {
	q, err := spsc.Open(context.Background(), ring.FD(3), nil)
	if err != nil {
		return err
	}
	if _, err := q.Producer(); err != nil {
		return err
	}
	fmt.Println("ready")
	time.Sleep(time.Minute)
	return errors.New("not killed")
}

// TestGroupDeadPeers: a group reports an SPSC producer killed while
// attached (ErrPeerDead), and moves an MPMC consumer past the slot of a
// producer killed while writing it (spurious reports until TryRecv
// tombstones it), within a bounded time.
func TestGroupDeadPeers(t *testing.T) {
	gq := newGroupQueues(t, 1, 1, Config{Slots: 4, SlotSize: 64})
	g := gq.group(t)

	hs := helper(t, gq.mpmc[0], "group-hold-spsc")
	hs.ExtraFiles = gq.files[:1]
	startAndWaitReady(t, hs)
	hm := helper(t, gq.mpmc[0], "hang-reserve")
	startAndWaitReady(t, hm)
	if err := mustProducer(t, gq.mpmc[0]).TrySend([]byte("after")); err != nil {
		t.Fatal(err)
	}
	killHelper(t, hs.Process.Pid, hs.Wait)
	killHelper(t, hm.Process.Pid, hm.Wait)
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	peerDead, after := false, false
	for !peerDead || !after {
		k, err := g.Wait(ctx)
		switch {
		case k == 0 && errors.Is(err, ErrPeerDead):
			peerDead = true
			g.Remove(0)
		case k == 1 && err == nil:
			gq.cons[1].TryRecvBatch(1, func(m []byte) error {
				after = string(m) == "after"
				return nil
			})
		default:
			t.Fatalf("Wait = %d, %v", k, err)
		}
	}
	t.Logf("dead peers handled after %v", time.Since(begin))
	if c := gq.cons[1].(*Consumer); c.Skipped() != 1 {
		t.Fatalf("skipped %d slots, want 1", c.Skipped())
	}
}

// TestGroupTruncatedMember: a member whose file another process truncates
// is reported with an error matching ErrTruncated, found before parking or
// while parked, and the other members go on working.
func TestGroupTruncatedMember(t *testing.T) {
	for _, parked := range []bool{false, true} {
		t.Run(fmt.Sprintf("parked=%v", parked), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "q")
			sq, err := spsc.Create(ring.File(path), spsc.Config{Capacity: 4096})
			if err != nil {
				t.Fatal(err)
			}
			defer sq.Close()
			sc, err := sq.Consumer()
			if err != nil {
				t.Fatal(err)
			}
			// An attached producer: the consumer's liveness check reads the
			// registry between parks.
			if _, err := sq.Producer(); err != nil {
				t.Fatal(err)
			}
			mq := newTestQueue(t, Config{Slots: 4, MaxMessage: 64})
			mc := mustConsumer(t, mq)
			g := notify.NewGroup(notify.GroupConfig{})
			defer g.Close()
			for _, c := range []notify.Waitable{sc, mc} {
				if _, err := g.Add(c); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if parked {
				go func() {
					time.Sleep(30 * time.Millisecond)
					os.Truncate(path, 0)
				}()
			} else if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
			k, err := g.Wait(ctx)
			if k != 0 || !errors.Is(err, ring.ErrTruncated) {
				t.Fatalf("Wait = %d, %v; want 0, ErrTruncated", k, err)
			}
			if err := g.Remove(0); err != nil {
				t.Fatal(err)
			}
			if err := mustProducer(t, mq).TrySend([]byte("on")); err != nil {
				t.Fatal(err)
			}
			if k, err := g.Wait(ctx); k != 1 || err != nil {
				t.Fatalf("Wait after removing the truncated member = %d, %v", k, err)
			}
		})
	}
}
