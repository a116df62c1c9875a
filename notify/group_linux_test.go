package notify

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmq/shmq/internal/futex"
	"github.com/shmq/shmq/internal/gate"
	"github.com/shmq/shmq/internal/shmtest"
)

// Group members in a shared test file: member i has a 64-byte block at
// memberBase+64*i holding its sequence word (u32 at +0), a data word (u32
// at +4: a message is there while it is not 0) and a one-word waiter set
// (u64 at +8), in which it registers as entry memberEntry.
const (
	memberBase  = 512
	memberEntry = 5
	maxTestMems = 8
)

// testMember is a Waiter over one block of a shared test file.
type testMember struct {
	g    *gate.Gate
	line Line
	be   Backend
	data *atomic.Uint32

	checks   atomic.Int32
	checkErr atomic.Pointer[error] // reported by Check when set
	retry    atomic.Bool           // Check asks for a retry
	period   time.Duration         // Check's delay to the next check; 0 means 5ms
}

func memberWords(mem []byte, i int) (seq, data *atomic.Uint32, set WaiterSet) {
	base := (memberBase + 64*i) / 4
	return shmtest.Word(mem, base), shmtest.Word(mem, base+1),
		NewWaiterSet([]*atomic.Uint64{shmtest.Word64(mem, base/2+1)})
}

func newTestMember(mem []byte, i int, be Backend) *testMember {
	seq, data, set := memberWords(mem, i)
	return &testMember{g: gate.New(), line: NewLine(seq, set), be: be, data: data}
}

func (m *testMember) Waiter() Waiter { return m }
func (m *testMember) Enter() error {
	if !m.g.Enter() {
		return net.ErrClosed
	}
	return nil
}
func (m *testMember) Exit() { m.g.Exit() }
func (m *testMember) Bind(ctx context.Context) (context.Context, context.CancelFunc) {
	return m.g.Bind(ctx)
}
func (m *testMember) Line() (Line, int, Backend) { return m.line, memberEntry, m.be }
func (m *testMember) Ready() (bool, error)       { return m.data.Load() != 0, nil }
func (m *testMember) Check() (bool, time.Duration, error) {
	m.checks.Add(1)
	if p := m.checkErr.Load(); p != nil {
		return false, 0, *p
	}
	if m.period == 0 {
		return m.retry.Load(), 5 * time.Millisecond, nil
	}
	return m.retry.Load(), m.period, nil
}
func (m *testMember) Fault(uintptr) error { return nil }

// publish is a producer's half: store the message, then wake if waiting.
func publish(mem []byte, i int, be Backend) {
	seq, data, set := memberWords(mem, i)
	data.Store(1)
	Line{Seq: seq, Waiters: set}.WakeIfWaiting(be)
}

// groupModes runs f with groups that park with futex_waitv (where the
// kernel has it) and with groups that poll.
func groupModes(t *testing.T, f func(t *testing.T, parks bool)) {
	t.Run("waitv", func(t *testing.T) {
		if !futex.WaitVSupported() {
			t.Skip("no futex_waitv on this kernel")
		}
		f(t, true)
	})
	t.Run("poll", func(t *testing.T) {
		forcePoll.Store(true)
		defer forcePoll.Store(false)
		f(t, false)
	})
}

func newTestGroup(t *testing.T, cfg GroupConfig, ms ...*testMember) *Group {
	t.Helper()
	g := NewGroup(cfg)
	t.Cleanup(func() { g.Close() })
	for i, m := range ms {
		k, err := g.Add(m)
		if err != nil || k != i {
			t.Fatalf("Add: key %d, %v; want %d", k, err, i)
		}
	}
	return g
}

func testMembers(mem []byte, n int, be Backend) []*testMember {
	var ms []*testMember
	for i := range n {
		ms = append(ms, newTestMember(mem, i, be))
	}
	return ms
}

// TestGroupWakesOnAnyMember: a Wait parked on four members returns the one
// published to, registered in every member's set while parked (futex_waitv)
// or in none (polling), and in none once it returns.
func TestGroupWakesOnAnyMember(t *testing.T) {
	groupModes(t, func(t *testing.T, parks bool) {
		_, mem := shmtest.MapNew(t)
		be := NewFutex()
		ms := testMembers(mem, 4, be)
		for _, m := range ms {
			// No check is due while the group waits: a park that a
			// check ended would find the message without the wake,
			// which then finds no waiter and makes no system call.
			m.period = time.Hour
		}
		g := newTestGroup(t, GroupConfig{Spin: -1}, ms...)
		for _, target := range []int{2, 0, 3} {
			done := make(chan [2]any, 1)
			go func() {
				k, err := g.Wait(context.Background())
				done <- [2]any{k, err}
			}()
			if parks {
				waitRegistered(t, ms...)
			} else {
				time.Sleep(parkDelay) // a polling group never registers: give it time to do it wrong
			}
			for i, m := range ms {
				if reg := m.line.Waiters.Has(memberEntry); reg != parks {
					t.Fatalf("member %d registered = %v while the group waits, want %v", i, reg, parks)
				}
			}
			publish(mem, target, be)
			var r [2]any
			select {
			case r = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Wait did not return after a publish")
			}
			if r[0] != target || r[1] != nil {
				t.Fatalf("Wait = %v, %v; want %d, nil", r[0], r[1], target)
			}
			ms[target].data.Store(0)
			for i, m := range ms {
				if m.line.Waiters.Any() {
					t.Fatalf("member %d still registered after Wait returned", i)
				}
			}
		}
		if parks && be.Stats().WakeSyscalls != 3 {
			t.Fatalf("%d wake system calls for 3 publishes to a parked group", be.Stats().WakeSyscalls)
		}
	})
}

func init() { helpers["group-publish"] = helperGroupPublish }

// helperGroupPublish publishes to members 0..maxTestMems-1 in a fixed
// order, each once the parent has taken the one before.
func helperGroupPublish(_ string, mem []byte) int {
	be := NewFutex()
	for _, i := range groupOrder {
		for k := range maxTestMems {
			deadline := time.Now().Add(10 * time.Second)
			for _, data, _ := memberWords(mem, k); data.Load() != 0; {
				if time.Now().After(deadline) {
					return 3
				}
				time.Sleep(100 * time.Microsecond)
			}
		}
		time.Sleep(time.Millisecond) // let the parent park
		publish(mem, i, be)
	}
	return 0
}

var groupOrder = []int{3, 7, 0, 0, 5, 1, 6, 2, 4, 7}

// TestGroupCrossProcess: another process publishes to members in turn, and
// the group reports each, in order.
func TestGroupCrossProcess(t *testing.T) {
	groupModes(t, func(t *testing.T, parks bool) {
		path, mem := shmtest.MapNew(t)
		ms := testMembers(mem, maxTestMems, NewFutex())
		g := newTestGroup(t, GroupConfig{}, ms...)
		cmd := helperEnv.Start(t, "group-publish", path)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for n, want := range groupOrder {
			k, err := g.Wait(ctx)
			if err != nil || k != want {
				t.Fatalf("Wait %d = %d, %v; want %d", n, k, err, want)
			}
			ms[k].data.Store(0)
		}
		shmtest.WaitExit(t, cmd, 10*time.Second)
	})
}

// waitRegistered waits until every member in ms has the group registered
// in its waiter set, as a Wait that parks with futex_waitv does first; a
// fixed sleep is too short for a goroutine that a loaded machine starts
// late.
func waitRegistered(t *testing.T, ms ...*testMember) {
	t.Helper()
	for _, m := range ms {
		for deadline := time.Now().Add(10 * time.Second); !m.line.Waiters.Has(memberEntry); time.Sleep(100 * time.Microsecond) {
			if time.Now().After(deadline) {
				t.Fatal("the group never registered in a member's waiter set")
			}
		}
	}
}

// waitResult is what a Wait returned.
type waitResult struct {
	key int
	err error
}

// waitIn runs g.Wait(ctx) in a goroutine.
func waitIn(ctx context.Context, g *Group) <-chan waitResult {
	ch := make(chan waitResult, 1)
	go func() {
		k, err := g.Wait(ctx)
		ch <- waitResult{k, err}
	}()
	return ch
}

// await fails t unless ch delivers within d.
func await(t *testing.T, ch <-chan waitResult, d time.Duration) waitResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(d):
		t.Fatalf("Wait did not return within %v", d)
		panic("unreachable")
	}
}

// TestGroupCloseUnblocksWait: Close from another goroutine ends a parked
// Wait with ErrGroupClosed (net.ErrClosed), and later calls fail alike.
func TestGroupCloseUnblocksWait(t *testing.T) {
	groupModes(t, func(t *testing.T, parks bool) {
		_, mem := shmtest.MapNew(t)
		g := newTestGroup(t, GroupConfig{}, testMembers(mem, 2, NewFutex())...)
		ch := waitIn(context.Background(), g)
		time.Sleep(parkDelay)
		within(t, 5*time.Second, func() error { return g.Close() })
		r := await(t, ch, 5*time.Second)
		if r.key != -1 || !errors.Is(r.err, ErrGroupClosed) || !errors.Is(r.err, net.ErrClosed) {
			t.Fatalf("Wait = %d, %v; want -1, ErrGroupClosed", r.key, r.err)
		}
		if _, err := g.Wait(context.Background()); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Wait after Close: %v", err)
		}
		if _, err := g.Add(newTestMember(mem, 3, NewFutex())); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Add after Close: %v", err)
		}
		if g.Len() != 0 {
			t.Fatalf("Len after Close = %d", g.Len())
		}
	})
}

// TestGroupMemberCloseUnblocksWait: closing a member's handle while the
// group waits on it (which counts as a call in flight on it) ends the
// Wait with that member's error, and the handle's Close returns.
func TestGroupMemberCloseUnblocksWait(t *testing.T) {
	groupModes(t, func(t *testing.T, parks bool) {
		_, mem := shmtest.MapNew(t)
		ms := testMembers(mem, 3, NewFutex())
		g := newTestGroup(t, GroupConfig{}, ms...)
		ch := waitIn(context.Background(), g)
		time.Sleep(parkDelay)
		within(t, 5*time.Second, func() bool { return ms[1].g.Close(nil) })
		r := await(t, ch, 5*time.Second)
		if r.key != 1 || !errors.Is(r.err, net.ErrClosed) {
			t.Fatalf("Wait = %d, %v; want 1, net.ErrClosed", r.key, r.err)
		}
		// It stays a member, and says so again, until removed.
		if k, err := g.Wait(context.Background()); k != 1 || !errors.Is(err, net.ErrClosed) {
			t.Fatalf("second Wait = %d, %v", k, err)
		}
		if err := g.Remove(1); err != nil {
			t.Fatal(err)
		}
		publish(mem, 2, ms[2].be)
		if k, err := g.Wait(context.Background()); k != 2 || err != nil {
			t.Fatalf("Wait after Remove = %d, %v; want 2", k, err)
		}
	})
}

// TestGroupContext: a Wait ends with ctx's error when ctx is cancelled or
// its deadline passes.
func TestGroupContext(t *testing.T) {
	groupModes(t, func(t *testing.T, parks bool) {
		_, mem := shmtest.MapNew(t)
		g := newTestGroup(t, GroupConfig{}, testMembers(mem, 2, NewFutex())...)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		r := await(t, waitIn(ctx, g), 5*time.Second)
		if r.key != -1 || !errors.Is(r.err, context.DeadlineExceeded) {
			t.Fatalf("Wait = %d, %v; want -1, DeadlineExceeded", r.key, r.err)
		}
		ctx, cancel = context.WithCancel(context.Background())
		ch := waitIn(ctx, g)
		time.Sleep(parkDelay)
		cancel()
		if r := await(t, ch, 5*time.Second); !errors.Is(r.err, context.Canceled) {
			t.Fatalf("Wait = %d, %v; want Canceled", r.key, r.err)
		}
	})
}

// TestGroupTakesTurns: members that stay ready are reported in turn.
func TestGroupTakesTurns(t *testing.T) {
	_, mem := shmtest.MapNew(t)
	ms := testMembers(mem, 4, NewFutex())
	g := newTestGroup(t, GroupConfig{}, ms...)
	ms[1].data.Store(1)
	ms[3].data.Store(1)
	var got []int
	for range 4 {
		k, err := g.Wait(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, k)
	}
	if got[0] == got[1] || got[0] != got[2] || got[1] != got[3] {
		t.Fatalf("keys %v: want members 1 and 3 alternating", got)
	}
}

// TestGroupArguments: bad arguments give errors matching fs.ErrInvalid.
func TestGroupArguments(t *testing.T) {
	_, mem := shmtest.MapNew(t)
	g := newTestGroup(t, GroupConfig{})
	if _, err := g.Wait(context.Background()); !errors.Is(err, ErrGroupEmpty) || !errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("Wait on an empty group: %v", err)
	}
	if _, err := g.Add(nil); !errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("Add(nil): %v", err)
	}
	m := newTestMember(mem, 0, NewFutex())
	if _, err := g.Add(m); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Add(newTestMember(mem, 0, NewFutex())); !errors.Is(err, ErrGroupDuplicate) {
		t.Fatalf("Add of the same line and entry twice: %v", err)
	}
	for _, k := range []int{-1, 1, 500} {
		if err := g.Remove(k); !errors.Is(err, ErrGroupNoMember) || !errors.Is(err, fs.ErrInvalid) {
			t.Fatalf("Remove(%d): %v", k, err)
		}
	}
	// Members on distinct lines (one set word per member block, entries
	// 0..63 of it) up to the limit.
	for i := 1; g.Len() < MaxGroupMembers; i++ {
		seq, _, set := memberWords(mem, i%maxTestMems)
		fm := &testMember{g: gate.New(), line: Line{Seq: seq, Waiters: set}, be: NewFutex(), data: new(atomic.Uint32)}
		fm.line.Seq = new(atomic.Uint32) // distinct lines
		if _, err := g.Add(fm); err != nil {
			t.Fatalf("Add #%d: %v", g.Len()+1, err)
		}
	}
	if _, err := g.Add(newTestMember(mem, 1, NewFutex())); !errors.Is(err, ErrGroupFull) {
		t.Fatalf("Add beyond %d members: %v", MaxGroupMembers, err)
	}
	if err := g.Remove(0); err != nil {
		t.Fatal(err)
	}
	if k, err := g.Add(m); k != 0 || err != nil {
		t.Fatalf("Add after Remove(0) = %d, %v; want key 0 again", k, err)
	}
	m.g.Close(nil)
	if _, err := NewGroup(GroupConfig{}).Add(m); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Add of a closed handle: %v", err)
	}
	var zero Group
	if _, err := zero.Wait(context.Background()); !errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("Wait on a zero Group: %v", err)
	}
}

// TestGroupCheck: between parks the group runs each member's Check, and
// reports the member when Check asks for a retry or fails, messages first.
func TestGroupCheck(t *testing.T) {
	groupModes(t, func(t *testing.T, parks bool) {
		_, mem := shmtest.MapNew(t)
		ms := testMembers(mem, 2, NewFutex())
		g := newTestGroup(t, GroupConfig{}, ms...)
		ms[1].retry.Store(true)
		r := await(t, waitIn(context.Background(), g), 5*time.Second)
		if r.key != 1 || r.err != nil {
			t.Fatalf("Wait = %d, %v; want 1, nil (a retry)", r.key, r.err)
		}
		ms[1].retry.Store(false)
		dead := error(io.ErrUnexpectedEOF)
		ms[0].checkErr.Store(&dead)
		r = await(t, waitIn(context.Background(), g), 5*time.Second)
		if r.key != 0 || r.err != dead {
			t.Fatalf("Wait = %d, %v; want 0, %v", r.key, r.err, dead)
		}
		if ms[0].checks.Load() == 0 || ms[1].checks.Load() == 0 {
			t.Fatal("Check not called")
		}
	})
}

// TestGroupPollsOtherBackends: a member whose backend is not a futex (a
// polling one here, whose Wake does nothing) is polled, and never
// registered, while the futex members are parked on.
func TestGroupPollsOtherBackends(t *testing.T) {
	if !futex.WaitVSupported() {
		t.Skip("no futex_waitv on this kernel")
	}
	_, mem := shmtest.MapNew(t)
	f, p := NewFutex(), NewPoll(PollConfig{})
	ms := []*testMember{newTestMember(mem, 0, f), newTestMember(mem, 1, p)}
	g := newTestGroup(t, GroupConfig{Spin: -1}, ms...)
	for _, target := range []int{1, 0} {
		ch := waitIn(context.Background(), g)
		waitRegistered(t, ms[0])
		if !ms[0].line.Waiters.Has(memberEntry) || ms[1].line.Waiters.Has(memberEntry) {
			t.Fatal("want the futex member registered and the polled one not")
		}
		publish(mem, target, ms[target].be)
		if r := await(t, ch, 5*time.Second); r.key != target || r.err != nil {
			t.Fatalf("Wait = %d, %v; want %d", r.key, r.err, target)
		}
		ms[target].data.Store(0)
	}
}

// TestGroupIdleUsesNoCPU: a group parked on idle members uses under 4% of
// a CPU.
func TestGroupIdleUsesNoCPU(t *testing.T) {
	if !futex.WaitVSupported() {
		t.Skip("no futex_waitv on this kernel")
	}
	_, mem := shmtest.MapNew(t)
	ms := testMembers(mem, maxTestMems, NewFutex())
	for _, m := range ms {
		m.period = 100 * time.Millisecond // as an SPSC consumer's liveness check
	}
	g := newTestGroup(t, GroupConfig{}, ms...)
	shmtest.CheckIdleRecv(t, func(ctx context.Context) error {
		_, err := g.Wait(ctx)
		return err
	})
}

// TestGroupPollBacksOff: a polling group's sleeps double up to MaxSleep,
// so an idle one wakes about idle/MaxSleep times (its CPU cost depends on
// the machine: see Group).
func TestGroupPollBacksOff(t *testing.T) {
	forcePoll.Store(true)
	defer forcePoll.Store(false)
	_, mem := shmtest.MapNew(t)
	ms := testMembers(mem, maxTestMems, NewFutex())
	for _, m := range ms {
		m.period = 100 * time.Millisecond
	}
	g := newTestGroup(t, GroupConfig{Spin: -1, MaxSleep: 5 * time.Millisecond}, ms...)
	const idle = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), idle)
	defer cancel()
	if _, err := g.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
	// 10 µs doubling to 5 ms is 10 sleeps, then one per 5 ms; checks every
	// 100 ms may split a few.
	t.Logf("%d sleeps in %v", g.parks, idle)
	if max := uint64(10 + idle/(5*time.Millisecond) + 10); g.parks > max {
		t.Fatalf("%d sleeps in %v, want at most %d", g.parks, idle, max)
	}
}
