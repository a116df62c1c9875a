package localq

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/mpmc"
	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/spsc"
)

// With SHMQ_LOCALQ_HOLDER=PATH the test binary opens an MPMC source on
// the queue at PATH, takes one message, prints its id and waits to be
// killed: a bridge that dies holding a message.
func TestMain(m *testing.M) {
	if path := os.Getenv("SHMQ_LOCALQ_HOLDER"); path != "" {
		src, err := Kinds["mpmc"].OpenSource(context.Background(), ring.File(path), "q", Config{})
		if err != nil {
			os.Exit(3)
		}
		_, id, err := src.Next(nil)
		if err != nil {
			os.Exit(4)
		}
		os.Stdout.WriteString(strconv.FormatUint(id.Pos, 10) + "\n")
		time.Sleep(time.Minute)
		os.Exit(5)
	}
	os.Exit(m.Run())
}

// SPSC Wait parks until a message is committed and leaves it for Next,
// with its id; with no producer attached (the last one closed) it waits
// for the next producer.
func TestSPSCWait(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	loc := ring.File(filepath.Join(t.TempDir(), "q"))
	q, err := spsc.Create(loc, spsc.Config{Capacity: 4096, StartPosition: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	src, err := Kinds["spsc"].OpenSource(ctx, loc, "q", Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	p, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	send := func(p *spsc.Producer, msg string) {
		time.Sleep(20 * time.Millisecond)
		if err := p.TrySend([]byte(msg)); err != nil {
			t.Error(err)
		}
	}
	go send(p, "first")
	if err := src.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	m, id, err := src.Next(nil)
	if err != nil || string(m) != "first" || id.Pos != 64 {
		t.Fatalf("Next after Wait: %q %+v %v; want first at 64", m, id, err)
	}
	if src.Held() != 1 {
		t.Fatalf("held %d", src.Held())
	}
	if ok, err := src.ReleasePrefix(1); !ok || err != nil {
		t.Fatal(ok, err)
	}

	// The producer closes: the stream ends, and Wait waits for another.
	p.Close()
	waited := make(chan error, 1)
	go func() { waited <- src.Wait(ctx) }()
	select {
	case err := <-waited:
		t.Fatalf("Wait returned %v with no producer", err)
	case <-time.After(100 * time.Millisecond):
	}
	p2, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	go send(p2, "second")
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	if m, id, err := src.Next(nil); err != nil || string(m) != "second" || id.Pos != 64+layout.RecordSize(5) {
		t.Fatalf("Next after the new producer: %q %+v %v", m, id, err)
	}
	if _, _, err := src.Next(nil); err != ErrEmpty {
		t.Fatalf("Next on an empty queue: %v", err)
	}

	// A cancelled Wait says so.
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer wcancel()
	src.ReleasePrefix(1)
	if err := src.Wait(wctx); wctx.Err() == nil || err == nil {
		t.Fatalf("Wait past its context: %v", err)
	}
}

// MPMC Wait takes a message and keeps it for Next; until Next hands it
// out, nothing can be released past it.
func TestMPMCWait(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	loc := ring.File(filepath.Join(t.TempDir(), "q"))
	q, err := mpmc.Create(loc, mpmc.Config{Slots: 8, StartPosition: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	p, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	src, err := Kinds["mpmc"].OpenSource(ctx, loc, "q", Config{})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		p.TrySend([]byte("first"))
		p.TrySend([]byte("second"))
	}()
	if err := src.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if src.Held() != 0 {
		t.Fatalf("held %d before Next", src.Held())
	}
	if err := src.Close(); err == nil {
		t.Fatal("Close with a message taken by Wait detached")
	}
	for i, want := range []string{"first", "second"} {
		m, id, err := src.Next(nil)
		for err == ErrEmpty { // "second" may still be on its way
			time.Sleep(time.Millisecond)
			m, id, err = src.Next(nil)
		}
		if err != nil || string(m) != want || id.Pos != uint64(1000+i) {
			t.Fatalf("Next: %q %+v %v; want %s at %d", m, id, err, want, 1000+i)
		}
	}
	if ok, err := src.ReleasePrefix(2); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
}

// A bridge that dies holding an MPMC message leaves it to be requeued, and
// its successor sends it with the same id, so JetStream drops the repeat.
func TestMPMCRequeuedKeepsID(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	path := filepath.Join(t.TempDir(), "q")
	q, err := mpmc.Create(ring.File(path), mpmc.Config{Slots: 4, StartPosition: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	p, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	// The successor attaches first, so the holder's entry stays free
	// after it dies and the requeue waits for no entry reuse.
	src, err := Kinds["mpmc"].OpenSource(ctx, ring.File(path), "q", Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if err := p.TrySend([]byte("held")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SHMQ_LOCALQ_HOLDER="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("holder: %v", err)
	}
	first, _ := strconv.ParseUint(strings.TrimSpace(line), 10, 64)
	if first != 1<<20 {
		t.Fatalf("the holder took position %d, want %d", first, 1<<20)
	}
	cmd.Process.Kill()
	cmd.Wait()

	// The producers' next lap requeues the held message.
	var got []MsgID
	for i := 0; len(got) < 5; i++ {
		if i < 4 {
			if err := p.Send(ctx, []byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
		m, id, err := src.Next(nil)
		if err == ErrEmpty {
			time.Sleep(time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if string(m) == "held" {
			if id.Pos != first {
				t.Fatalf("the requeued message has position %d, want its first, %d", id.Pos, first)
			}
			if src.Redelivered() != 1 {
				t.Fatalf("redelivered %d", src.Redelivered())
			}
		}
		got = append(got, id)
		if ok, err := src.ReleasePrefix(src.Held()); !ok || err != nil {
			t.Fatal(ok, err)
		}
		if ctx.Err() != nil {
			t.Fatalf("only %d messages arrived: %+v", len(got), got)
		}
	}
	seen := map[uint64]bool{}
	for _, id := range got {
		if seen[id.Pos] {
			t.Fatalf("two messages with position %d: %+v", id.Pos, got)
		}
		seen[id.Pos] = true
	}
	if !seen[first] {
		t.Fatalf("the requeued message did not arrive: %+v", got)
	}
}
