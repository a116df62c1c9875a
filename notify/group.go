package notify

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/shmq/shmq/internal/gate"
)

// A Waiter is one waiting side of a queue (a consumer) as a Group sees it:
// the Line its owner parks on, and how to tell whether the owner's next
// non-blocking call may find something. spsc.Consumer and mpmc.Consumer
// provide one (their Waiter method); its methods are for Group and are
// called by the goroutine that waits, which must be the only one using the
// handle meanwhile, as for the handle's own blocking calls.
type Waiter interface {
	// Enter admits the group's use of the handle as a call on it, keeping
	// its mapping in place until Exit; it fails, with an error matching
	// net.ErrClosed, once the handle is closed.
	Enter() error
	// Exit ends what Enter admitted.
	Exit()
	// Bind returns a context that ends when ctx does or the handle closes,
	// and the function that releases it.
	Bind(ctx context.Context) (context.Context, context.CancelFunc)
	// Line returns the line the handle's owner parks on, the registry
	// entry it registers as in the line's waiter set, and the backend
	// through which the handle's publishers wake it.
	Line() (Line, int, Backend)
	// Ready reports, with a few loads and no system call, whether the
	// owner's next non-blocking call may find a message (true, nil) or
	// whether the handle has nothing more to give (true and why, io.EOF
	// at the end of a stream). It may report true spuriously.
	Ready() (bool, error)
	// Check runs between parks, no more often than the delay it returned
	// the time before asks; it may make system calls. It reports whether
	// the owner should try its non-blocking call now although Ready says
	// no (a slot held by a claimant that may have died, which only that
	// call moves past), an error that ends waiting for the handle (a dead
	// peer), and when to check again.
	Check() (retry bool, next time.Duration, err error)
	// Fault turns a fault at addr into the error to report, if addr lies
	// in the handle's mapping (a shared file truncated by another
	// process), and returns nil otherwise.
	Fault(addr uintptr) error
}

// A Waitable is a queue handle that a Group can wait on.
type Waitable interface {
	Waiter() Waiter
}

// MaxGroupMembers is the most handles one Group waits on: futex_waitv
// takes at most 128 words, and the group keeps one for itself.
const MaxGroupMembers = 127

// DefaultGroupMaxSleep caps the sleep of a Group that polls (see Group).
const DefaultGroupMaxSleep = 2 * time.Millisecond

// GroupConfig tunes a Group. The zero value suits most uses.
type GroupConfig struct {
	// Spin is how long Wait checks its members before parking, as
	// Policy.Spin: 0 adapts, a positive value is fixed, a negative one
	// parks at once, a very large one never parks.
	Spin time.Duration
	// MaxSleep caps the doubling sleep of a Group that polls; 0 means
	// DefaultGroupMaxSleep.
	MaxSleep time.Duration
}

// Group waits on several queue handles at once, in one goroutine: Wait
// returns as soon as any member has a message, without a goroutine or a
// spinning loop per member.
//
// Wait checks every member, spins for a while (Config.Spin), and then
// parks on all of them together: it adds each member's registry entry to
// its line's waiter set, checks every member again, and parks on all their
// sequence words at once with futex_waitv (Linux 5.16 and later), plus a
// word of its own that Close and the end of ctx wake. A publisher wakes it
// exactly as it would wake the member's own blocking call, so an idle
// group uses no CPU and a publisher to a member pays a wake system call
// only while the group is parked.
//
// Where futex_waitv is missing (older kernels, other systems, seccomp
// filters), and for members whose backend is not a Futex (an eventfd,
// socket or polling backend), Wait polls instead: it checks those members
// after a sleep that starts at 10 µs and doubles up to Config.MaxSleep, so
// a message that arrives at an idle member is seen up to MaxSleep (2 ms by
// default) late, and an idle group wakes 500 times a second (about 2% of a
// CPU on a small virtual machine; a smaller MaxSleep costs more). Polled
// members are not registered in their waiter sets, so their publishers
// make no wake calls for the group. Members whose backend is a Futex are
// still parked on with futex_waitv when it is there, and wake the group at
// once.
//
// A Group is not safe for concurrent use, except that Close may be called
// from any goroutine. Its members must not be used by other goroutines
// while Wait runs: Wait counts as a blocking call on each of them.
type Group struct {
	cfg     GroupConfig
	g       *gate.Gate
	kick    *atomic.Uint32 // bumped, then woken, by whatever must end a park: Close, a member closing, ctx
	kickCh  chan struct{}  // the same, where a polling wait sleeps on a timer
	members []*member      // nil where a member was removed
	count   int
	next    int // where the next scan starts, so that no member starves the others
	spin    *spinState
	park    parker // platform part: the futex_waitv array
	parks   uint64 // parks and polling sleeps, for tests
}

// member is one handle of a Group.
type member struct {
	w       Waiter
	line    Line
	entry   int
	futex   bool        // its backend is a Futex: parked on with futex_waitv
	closing atomic.Bool // set when the handle closes
	stop    func() bool // stops the callback that sets closing
	release context.CancelFunc
	check   time.Time // when Check is due
}

// NewGroup returns an empty group.
func NewGroup(cfg GroupConfig) *Group {
	if cfg.MaxSleep <= 0 {
		cfg.MaxSleep = DefaultGroupMaxSleep
	}
	return &Group{
		cfg: cfg, g: gate.New(), kick: new(atomic.Uint32), kickCh: make(chan struct{}, 1),
		spin: newSpinState(),
	}
}

// Errors of Group, matching fs.ErrInvalid (a bad argument) or
// net.ErrClosed (a closed group).
var (
	ErrGroupFull      = fmt.Errorf("notify: group has %d members already: %w", MaxGroupMembers, fs.ErrInvalid)
	ErrGroupEmpty     = fmt.Errorf("notify: group has no members: %w", fs.ErrInvalid)
	ErrGroupDuplicate = fmt.Errorf("notify: handle is a member of the group already: %w", fs.ErrInvalid)
	ErrGroupNoMember  = fmt.Errorf("notify: no such group member: %w", fs.ErrInvalid)
	ErrGroupClosed    = fmt.Errorf("notify: group closed: %w", net.ErrClosed)
	errNilGroup       = fmt.Errorf("notify: nil or zero Group (use NewGroup): %w", fs.ErrInvalid)
	errNilWaiter      = fmt.Errorf("notify: nil Waitable or Waiter: %w", fs.ErrInvalid)
)

func (g *Group) enter() error {
	if g == nil || g.g == nil {
		return errNilGroup
	}
	if !g.g.Enter() {
		return ErrGroupClosed
	}
	return nil
}

// Add makes w a member and returns its key, the smallest not in use; the
// key is what Wait reports for w until Remove. w must stay open until it
// is removed (closing it makes Wait report ErrClosed for it). A handle can
// be a member of one group at a time, once.
func (g *Group) Add(w Waitable) (int, error) {
	if err := g.enter(); err != nil {
		return -1, err
	}
	defer g.g.Exit()
	if w == nil {
		return -1, errNilWaiter
	}
	wt := w.Waiter()
	if wt == nil {
		return -1, errNilWaiter
	}
	if g.count >= MaxGroupMembers {
		return -1, ErrGroupFull
	}
	if err := wt.Enter(); err != nil {
		return -1, err
	}
	defer wt.Exit()
	line, entry, be := wt.Line()
	if line.Seq == nil {
		return -1, errNilWaiter
	}
	for _, m := range g.members {
		if m != nil && m.line.Seq == line.Seq && m.entry == entry {
			return -1, ErrGroupDuplicate
		}
	}
	m := &member{w: wt, line: line, entry: entry, futex: isFutex(be), check: time.Now()}
	ctx, release := wt.Bind(context.Background())
	m.release = release
	m.stop = context.AfterFunc(ctx, func() {
		m.closing.Store(true)
		g.wake()
	})
	k := 0
	for k < len(g.members) && g.members[k] != nil {
		k++
	}
	if k == len(g.members) {
		g.members = append(g.members, nil)
	}
	g.members[k] = m
	g.count++
	return k, nil
}

// Remove takes the member of key k out of the group.
func (g *Group) Remove(k int) error {
	if err := g.enter(); err != nil {
		return err
	}
	defer g.g.Exit()
	if k < 0 || k >= len(g.members) || g.members[k] == nil {
		return fmt.Errorf("%w: key %d", ErrGroupNoMember, k)
	}
	g.members[k].unbind()
	g.members[k] = nil
	g.count--
	return nil
}

// Len returns the number of members.
func (g *Group) Len() int {
	if g.enter() != nil {
		return 0
	}
	defer g.g.Exit()
	return g.count
}

func (m *member) unbind() {
	m.stop()
	m.release()
}

// Close ends a Wait in progress (it returns ErrGroupClosed) and forgets
// the members; it closes none of them. Later calls fail with
// ErrGroupClosed.
func (g *Group) Close() error {
	if g == nil || g.g == nil {
		return errNilGroup
	}
	// Closing the gate ends the context a Wait in progress bound, which
	// wakes it.
	g.g.Close(func() {
		for k, m := range g.members {
			if m != nil {
				m.unbind()
				g.members[k] = nil
			}
		}
		g.count = 0
	})
	return nil
}

// wake ends a park of Wait in progress, or makes the next one return at
// once.
func (g *Group) wake() {
	g.kick.Add(1)
	wakeKick(g.kick)
	select {
	case g.kickCh <- struct{}{}:
	default:
	}
}

// Wait blocks until a member may have a message, and returns its key: the
// member's next non-blocking receive (TryRecv, TryRecvBatch) may find it.
// Wait may report a member spuriously (another consumer of an MPMC queue
// took the message first, or the member should retry to get past a dead
// producer's slot): its non-blocking receive then finds the queue empty,
// and the caller waits again. Members are checked in turn, starting after
// the one reported last, so a busy member does not starve the others.
//
// Wait also reports, with the member's key, why a member has nothing more
// to give: io.EOF at the end of a stream (an SPSC producer closed and every
// message was received, and a new producer would start a new stream; or an
// MPMC consumer's EndOfStream), an error matching the queue package's
// ErrPeerDead when a peer died, or one matching net.ErrClosed when the
// member's handle was closed. A member stays in the group until Remove,
// and reports the same again at the next Wait.
//
// Wait returns key -1 and an error wrapping ctx's error when ctx ends,
// ErrGroupClosed when the group is closed, and ErrGroupEmpty if it has no
// members.
func (g *Group) Wait(ctx context.Context) (key int, err error) {
	if err := g.enter(); err != nil {
		return -1, err
	}
	defer g.g.Exit()
	if g.count == 0 {
		return -1, ErrGroupEmpty
	}
	for k, m := range g.members {
		if m == nil {
			continue
		}
		if err := m.w.Enter(); err != nil {
			g.exitMembers(k)
			return k, err
		}
	}
	defer g.exitMembers(len(g.members))
	defer g.catchFault(&key, &err, debug.SetPanicOnFault(true))

	if k, ok, err := g.scan(); ok {
		return k, err
	}
	var (
		found      bool
		fk         int
		ferr       error
		readyCheck = func() bool {
			fk, found, ferr = g.scan()
			return found
		}
	)
	switch {
	case g.cfg.Spin > 0:
		spinFor(g.cfg.Spin, false, readyCheck)
	case g.cfg.Spin == 0:
		g.spin.spin(readyCheck)
	}
	if found {
		return fk, ferr
	}
	return g.wait(ctx)
}

// exitMembers exits the members entered, those before key n.
func (g *Group) exitMembers(n int) {
	for _, m := range g.members[:n] {
		if m != nil {
			m.w.Exit()
		}
	}
}

// scan checks each member once, starting after the one reported last, and
// returns the first that is ready or closing.
func (g *Group) scan() (int, bool, error) {
	n := len(g.members)
	for i := range n {
		k := (g.next + i) % n
		m := g.members[k]
		if m == nil {
			continue
		}
		if m.closing.Load() {
			g.next = k + 1
			return k, true, m.closedErr()
		}
		if ok, err := m.w.Ready(); ok {
			g.next = k + 1
			return k, true, err
		}
	}
	return 0, false, nil
}

// closedErr returns the error of a handle that closed.
func (m *member) closedErr() error {
	if err := m.w.Enter(); err != nil {
		return err
	}
	m.w.Exit()
	return ErrGroupClosed // not reached: the handle's gate is closed before its context ends
}

// checks runs Check on the members that are due at now. It returns a
// member to report, if any, and else when the next check is due.
func (g *Group) checks(now time.Time) (int, bool, time.Time, error) {
	var due time.Time
	for k, m := range g.members {
		if m == nil {
			continue
		}
		if !now.Before(m.check) {
			retry, next, err := m.w.Check()
			m.check = now.Add(max(next, time.Millisecond))
			if err != nil {
				// Messages committed before the end come first.
				if ok, rerr := m.w.Ready(); ok && rerr == nil {
					g.next = k + 1
					return k, true, due, nil
				}
				g.next = k + 1
				return k, true, due, err
			}
			if retry {
				g.next = k + 1
				return k, true, due, nil
			}
		}
		if due.IsZero() || m.check.Before(due) {
			due = m.check
		}
	}
	return 0, false, due, nil
}

// wait parks until a member is ready. Members with a Futex backend are
// registered in their waiter sets and parked on with futex_waitv when the
// kernel has it; the others are polled, with a doubling sleep.
func (g *Group) wait(ctx context.Context) (int, error) {
	gctx, release := g.g.Bind(ctx)
	defer release()
	stop := context.AfterFunc(gctx, g.wake)
	defer stop()

	parked := g.park.supported()
	polled := !parked
	if parked {
		for _, m := range g.members {
			if m == nil {
				continue
			}
			if !m.futex {
				polled = true
				continue
			}
			m.line.Waiters.Add(m.entry)
			defer m.unregister()
		}
	}
	sleep := 10 * time.Microsecond
	for {
		kick := g.kick.Load()
		if parked {
			g.park.reset()
			for _, m := range g.members {
				if m != nil && m.futex {
					g.park.add(m.line.Seq, m.line.arm())
				}
			}
		}
		if k, ok, err := g.scan(); ok {
			return k, err
		}
		if gctx.Err() != nil {
			if g.g.Closed() {
				return -1, ErrGroupClosed
			}
			return -1, fmt.Errorf("notify: group: wait: %w", ctx.Err())
		}
		now := time.Now()
		k, ok, due, err := g.checks(now)
		if ok {
			return k, err
		}
		d := due.Sub(now)
		if polled {
			d = min(d, sleep)
			sleep = min(2*sleep, g.cfg.MaxSleep)
		}
		g.parks++
		if parked {
			err = g.park.wait(g.kick, kick, d)
		} else {
			err = g.park.sleep(g.kick, kick, d, g.kickCh)
		}
		if err != nil {
			return -1, fmt.Errorf("notify: group: wait: %w", err)
		}
	}
}

// unregister removes the member from its waiter set. It runs while Wait
// returns, maybe because of a fault in another member's mapping, and must
// not stop on a fault in its own.
func (m *member) unregister() {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(interface{ Addr() uintptr }); !ok {
				panic(r)
			}
		}
	}()
	m.line.Waiters.Remove(m.entry)
}

// catchFault is deferred by Wait, with the previous
// debug.SetPanicOnFault setting as old: it turns a fault in a member's
// mapping into that member's error, and lets any other panic go on.
func (g *Group) catchFault(key *int, err *error, old bool) {
	debug.SetPanicOnFault(old)
	r := recover()
	if r == nil {
		return
	}
	if f, ok := r.(interface{ Addr() uintptr }); ok {
		for k, m := range g.members {
			if m == nil {
				continue
			}
			if ferr := m.w.Fault(f.Addr()); ferr != nil {
				*key, *err = k, ferr
				return
			}
		}
	}
	panic(r)
}
