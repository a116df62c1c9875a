package localq

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/mpmc"
	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/spsc"
)

// SPSC ids are record positions, across padding at the wrap, and a released
// prefix leaves the rest held in order.
func TestSPSCSourceIDsAndPrefix(t *testing.T) {
	ctx := context.Background()
	loc := ring.File(filepath.Join(t.TempDir(), "q"))
	const capacity = 256
	q, err := spsc.Create(loc, spsc.Config{Capacity: capacity})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	p, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	src, err := Kinds["spsc"].OpenSource(ctx, loc, "q", Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()

	var want []uint64 // positions of the records sent and not yet handed out
	var tail uint64
	send := func(n int, fill byte) {
		t.Helper()
		pos := tail
		if room := capacity - tail%capacity; layout.RecordSize(n) > room {
			pos += room // a padding record first
		}
		if err := p.TrySend(bytes.Repeat([]byte{fill}, n)); err != nil {
			t.Fatal(err)
		}
		tail = pos + layout.RecordSize(n)
		want = append(want, pos)
	}
	next := func(n int, fill byte) MsgID {
		t.Helper()
		m, id, err := src.Next(nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m, bytes.Repeat([]byte{fill}, n)) {
			t.Fatalf("message %q, want %d bytes of %d", m, n, fill)
		}
		if id.Pos != want[0] || id.Queue != "q" || id.Created != q.Segment().Header().CreatedNano {
			t.Fatalf("id %+v, want position %d", id, want[0])
		}
		want = want[1:]
		return id
	}

	for lap := 0; lap < 6; lap++ {
		// Three messages of 40 bytes (48-byte records) leave a gap at the
		// end of the ring that the next one does not fit.
		for i := 0; i < 3; i++ {
			send(40+lap, byte(10*lap+i))
		}
		next(40+lap, byte(10*lap))
		next(40+lap, byte(10*lap+1))
		if ok, err := src.ReleasePrefix(1); !ok || err != nil {
			t.Fatalf("ReleasePrefix(1) = %v, %v", ok, err)
		}
		if src.Held() != 1 {
			t.Fatalf("held %d after releasing 1 of 2", src.Held())
		}
		st, _ := q.Stats()
		if st.Head == st.Tail {
			t.Fatal("release freed held messages")
		}
		next(40+lap, byte(10*lap+2))
		if ok, err := src.ReleasePrefix(2); !ok || err != nil {
			t.Fatalf("ReleasePrefix(2) = %v, %v", ok, err)
		}
		if st, _ := q.Stats(); st.Head != st.Tail {
			t.Fatalf("head %d, tail %d after releasing everything", st.Head, st.Tail)
		}
	}
	if _, _, err := src.Next(nil); err != ErrEmpty {
		t.Fatalf("Next on an empty queue: %v", err)
	}

	// A new consumer after a Close with held messages gets them again with
	// the same ids.
	send(10, 1)
	send(10, 2)
	first, _, err := src.Next(nil)
	if err != nil || first[0] != 1 {
		t.Fatal(first, err)
	}
	src.Close()
	src, err = Kinds["spsc"].OpenSource(ctx, loc, "q", Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	next(10, 1)
	next(10, 2)
}

// MPMC ids are slot positions, across laps of the ring.
func TestMPMCSourceIDs(t *testing.T) {
	ctx := context.Background()
	loc := ring.File(filepath.Join(t.TempDir(), "q"))
	q, err := mpmc.Create(loc, mpmc.Config{Slots: 4, StartPosition: 1<<40 - 3})
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
	defer src.Close()
	pos := uint64(1<<40 - 3)
	for round := 0; round < 5; round++ {
		for i := 0; i < 3; i++ {
			if err := p.TrySend([]byte{byte(round), byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 3; i++ {
			m, id, err := src.Next(nil)
			if err != nil {
				t.Fatal(err)
			}
			if m[0] != byte(round) || m[1] != byte(i) || id.Pos != pos {
				t.Fatalf("message %v id %d, want [%d %d] at %d", m, id.Pos, round, i, pos)
			}
			pos++
			if i == 1 {
				if ok, _ := src.ReleasePrefix(1); ok {
					t.Fatal("MPMC released a strict prefix")
				}
			}
		}
		if ok, err := src.ReleasePrefix(3); !ok || err != nil {
			t.Fatalf("ReleasePrefix(all) = %v, %v", ok, err)
		}
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestMsgIDString(t *testing.T) {
	if got := (MsgID{Queue: "jobs", Created: 0x1f, Pos: 4096}).String(); got != "shmq:jobs:1f:4096" {
		t.Fatal(got)
	}
}
