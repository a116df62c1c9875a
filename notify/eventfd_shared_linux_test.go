package notify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmq/shmq/internal/shmtest"
)

// One backend value, or one eventfd, serving two wake lines with sleepers
// on both at once, as a queue's two lines share its Policy.Backend and two
// queues of a ping-pong share a backend. Two players trade a token: each
// parks on its own line until it is its turn, then passes the turn and
// wakes the other's line, so every wake is aimed at one line. A bystander
// parks on each line as well, for the whole game, and re-checks (and parks
// again) on every wake that reaches it. Every park is unbounded: a wake
// that does not reach the player it is aimed at stops the game for good,
// and the stall watchdog fails the test.

func init() { helpers["eventfd-shared"] = helperEventfdShared }

// Shared words of the game.
const (
	wGameSeq0   = 0 // 32-bit words: the lines' sequence words
	wGameSeq1   = 1
	wGameStop   = 2 // set when the bystanders should leave
	wGameRounds = 3
	wGameSet0   = 2 // 64-bit words: the lines' waiter sets
	wGameSet1   = 3
	wGameTurn   = 4 // even: player 0's turn, odd: player 1's
)

// gameStall is how long the game may go without a move before it counts
// as hung. A move takes microseconds, so only a lost wake (with unbounded
// parks, which stays lost) comes near it, however loaded the machine.
const gameStall = 10 * time.Second

type sharedGame struct {
	lines  [2]Line
	turn   *atomic.Uint64
	stop   *atomic.Uint32
	rounds int
}

func newSharedGame(mem []byte) *sharedGame {
	return &sharedGame{
		lines: [2]Line{
			{Seq: shmtest.Word(mem, wGameSeq0), Waiters: NewWaiterSet([]*atomic.Uint64{shmtest.Word64(mem, wGameSet0)}), SleeperBit: true},
			{Seq: shmtest.Word(mem, wGameSeq1), Waiters: NewWaiterSet([]*atomic.Uint64{shmtest.Word64(mem, wGameSet1)}), SleeperBit: true},
		},
		turn:   shmtest.Word64(mem, wGameTurn),
		stop:   shmtest.Word(mem, wGameStop),
		rounds: int(shmtest.Word(mem, wGameRounds).Load()),
	}
}

// Registry entries: player i is entry i on line i; the bystander on line l
// is entry 2+l.
func (g *sharedGame) play(ctx context.Context, b Backend, me int) error {
	p := Policy{Backend: b, Spin: -1}
	for r := range g.rounds {
		want := uint64(2*r + me)
		if _, err := g.lines[me].Park(ctx, p, me, time.Hour, func() bool { return g.turn.Load() == want }, nil); err != nil {
			return fmt.Errorf("player %d waiting for move %d (turn %d): %w", me, want, g.turn.Load(), err)
		}
		g.turn.Add(1)
		if _, err := g.lines[1-me].WakeIfWaiting(b); err != nil {
			return err
		}
	}
	return nil
}

func (g *sharedGame) idle(ctx context.Context, b Backend, l int) error {
	p := Policy{Backend: b, Spin: -1}
	if _, err := g.lines[l].Park(ctx, p, 2+l, time.Hour, func() bool { return g.stop.Load() != 0 }, nil); err != nil {
		return fmt.Errorf("bystander on line %d: %w", l, err)
	}
	return nil
}

// end sends the bystanders away.
func (g *sharedGame) end(b Backend) error {
	g.stop.Store(1)
	return errors.Join(func() error { _, err := g.lines[0].WakeIfWaiting(b); return err }(),
		func() error { _, err := g.lines[1].WakeIfWaiting(b); return err }())
}

// watch cancels the returned context once the game has made no move for
// gameStall.
func (g *sharedGame) watch(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	go func() {
		last, since := g.turn.Load(), time.Now()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if now := g.turn.Load(); now != last {
				last, since = now, time.Now()
			} else if time.Since(since) > gameStall {
				cancel(fmt.Errorf("no move for %v at turn %d: a lost wake", gameStall, now))
				return
			}
		}
	}()
	return ctx, func() { cancel(nil) }
}

// run plays the game in this process: the players and bystanders are
// given by who (player 0, player 1, bystander on line 0, bystander on line
// 1), each with its backend; a nil backend leaves that part to another
// process. It ends the bystanders it runs once its players are done.
func (g *sharedGame) run(ctx context.Context, who [4]Backend) error {
	ctx, stop := g.watch(ctx)
	defer stop()
	players, bystanders := make(chan error, 2), make(chan error, 2)
	np, nb := 0, 0
	for i, b := range who {
		if b == nil {
			continue
		}
		if i < 2 {
			np++
			go func() { players <- g.play(ctx, b, i) }()
		} else {
			nb++
			go func() { bystanders <- g.idle(ctx, b, i-2) }()
		}
	}
	var errs []error
	for range np {
		errs = append(errs, <-players)
	}
	// The player that moves last ends the game for everyone.
	if who[1] != nil {
		errs = append(errs, g.end(who[1]))
	}
	for range nb {
		errs = append(errs, <-bystanders)
	}
	err := errors.Join(errs...)
	if cause := context.Cause(ctx); err != nil && cause != nil {
		err = fmt.Errorf("%v:\n%w", cause, err)
	}
	return err
}

func gameRounds() uint32 {
	if testing.Short() {
		return 20000
	}
	return 50000
}

// dupEventfd returns a second Eventfd on e's eventfd, through a descriptor
// of its own, as another process would have.
func dupEventfd(t *testing.T, e *Eventfd) *Eventfd {
	t.Helper()
	fd := -1
	var derr error
	if err := e.rc.Control(func(f uintptr) { fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) }); err != nil || derr != nil {
		t.Fatal(err, derr)
	}
	e2, err := EventfdFromFD(fd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e2.Close() })
	return e2
}

func newTestEventfd(t *testing.T) *Eventfd {
	t.Helper()
	e, err := NewEventfd()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// TestSharedBackendTwoLines: one backend value serves both lines and every
// waiter (eventfd, socket, and the futex for reference); and, as two
// processes would, two Eventfd values on one eventfd, each serving a player
// and the bystander on the other player's line.
func TestSharedBackendTwoLines(t *testing.T) {
	cases := []struct {
		name string
		who  func(t *testing.T) [4]Backend
	}{
		{"futex", func(t *testing.T) [4]Backend {
			f := NewFutex()
			return [4]Backend{f, f, f, f}
		}},
		{"eventfd", func(t *testing.T) [4]Backend {
			e := newTestEventfd(t)
			return [4]Backend{e, e, e, e}
		}},
		{"eventfd-dup", func(t *testing.T) [4]Backend {
			a := newTestEventfd(t)
			b := dupEventfd(t, a)
			return [4]Backend{a, b, b, a}
		}},
		{"socket", func(t *testing.T) [4]Backend {
			p := filepath.Join(t.TempDir(), "s")
			s, err := NewSocket(SocketConfig{Listen: p, Peer: p})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return [4]Backend{s, s, s, s}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, mem := shmtest.MapNew(t)
			shmtest.Word(mem, wGameRounds).Store(gameRounds())
			g := newSharedGame(mem)
			if err := g.run(context.Background(), c.who(t)); err != nil {
				t.Fatal(err)
			}
			if got, want := g.turn.Load(), uint64(2*g.rounds); got != want {
				t.Fatalf("turn %d after the game, want %d", got, want)
			}
		})
	}
}

// helperEventfdShared plays player 1 and the bystander on line 0 through
// the eventfd inherited as descriptor 3.
func helperEventfdShared(_ string, mem []byte) int {
	e, err := EventfdFromFD(3)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer e.Close()
	if err := newSharedGame(mem).run(context.Background(), [4]Backend{nil, e, e, nil}); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 3
	}
	return 0
}

// TestEventfdSharedAcrossProcesses: the game between two processes, each
// with a player and the bystander on the other's line, on one eventfd
// inherited by the child.
func TestEventfdSharedAcrossProcesses(t *testing.T) {
	path, mem := shmtest.MapNew(t)
	shmtest.Word(mem, wGameRounds).Store(gameRounds())
	e := newTestEventfd(t)
	f, err := e.Dup()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv.Mode+"=eventfd-shared", helperEnv.Path+"="+path)
	cmd.Stderr = os.Stderr
	cmd.ExtraFiles = []*os.File{f}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	g := newSharedGame(mem)
	if err := g.run(context.Background(), [4]Backend{e, nil, nil, e}); err != nil {
		t.Error(err)
	}
	shmtest.WaitExit(t, cmd, 2*gameStall)
}

// TestEventfdCloseEndsAllWaits: Close ends every Wait parked on the Eventfd,
// whatever its word, with ErrClosed; a Wait after Close fails alike.
func TestEventfdCloseEndsAllWaits(t *testing.T) {
	e, err := NewEventfd()
	if err != nil {
		t.Fatal(err)
	}
	var words [3]atomic.Uint32
	done := make(chan error, len(words))
	for i := range words {
		go func() { done <- e.Wait(context.Background(), &words[i], 0) }()
	}
	for deadline := time.Now().Add(2 * time.Second); e.Stats().Waits < uint64(len(words)) && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	e.Close()
	for range words {
		select {
		case err := <-done:
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("parked Wait after Close: %v, want ErrClosed", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("Close left a Wait parked")
		}
	}
	if err := e.Wait(context.Background(), &words[0], 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Wait after Close: %v, want ErrClosed", err)
	}
}
