package pubsub

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmq/shmq/ring"
)

// The test binary doubles as the publisher and subscriber processes. With
// SHMQ_PUBSUB_HELPER set, TestMain runs the named helper instead of the
// tests; the helper reports one line on stdout, last, and exits.
func TestMain(m *testing.M) {
	if mode := os.Getenv("SHMQ_PUBSUB_HELPER"); mode != "" {
		line, err := helper(mode)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(line)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func envUint(name string) uint64 {
	n, _ := strconv.ParseUint(os.Getenv(name), 10, 64)
	return n
}

// helper runs one process of the multi-process tests on the queue named by
// SHMQ_QUEUE. Messages are numbered by their sequence numbers in the queue,
// so a publisher that takes over after a kill continues the numbering, and
// a subscriber checks every byte of every message and every gap.
func helper(mode string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	q, err := Open(ctx, ring.Shm(os.Getenv("SHMQ_QUEUE")), nil)
	if err != nil {
		return "", err
	}
	defer q.Close()
	switch mode {
	case "publish":
		until, forever := envUint("SHMQ_UNTIL"), os.Getenv("SHMQ_UNTIL") == ""
		return publishHelper(ctx, q, until, forever, envUint("SHMQ_BATCH"))
	case "subscribe":
		return subscribeHelper(ctx, q, Start(envUint("SHMQ_START")), envUint("SHMQ_UNTIL"), os.Getenv("SHMQ_SLOW") != "")
	}
	return "", fmt.Errorf("unknown helper %q", mode)
}

// publishHelper publishes messages until the queue's sequence number
// reaches until (or until it is killed, if forever), in batches of up to
// batch reserved messages (0: Send), then closes cleanly: the end of the
// stream.
func publishHelper(ctx context.Context, q *Queue, until uint64, forever bool, batch uint64) (string, error) {
	var p *Publisher
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		// A predecessor killed a moment ago may still hold the role until
		// the kernel has closed its descriptors.
		if p, err = q.Publisher(); err == nil || !errors.Is(err, ErrRoleTaken) || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		return "", err
	}
	first := p.Seq()
	max := q.MaxMessage()
	buf := make([]byte, max)
	r := rand.New(rand.NewPCG(uint64(os.Getpid()), 1))
	for forever || p.Seq() != until {
		if batch > 0 {
			k := 1 + r.Uint64N(batch)
			for i := uint64(0); i < k && (forever || p.Seq() != until); i++ {
				seq := p.Seq()
				b, err := p.ReserveWait(ctx, sizeOf(seq, max))
				if errors.Is(err, ErrFull) {
					break // lossy: the batch would overwrite itself
				}
				if err != nil {
					return "", fmt.Errorf("reserve %d: %w", seq, err)
				}
				fill(b, seq)
			}
			p.Commit()
			continue
		}
		seq := p.Seq()
		m := buf[:sizeOf(seq, max)]
		fill(m, seq)
		if err := p.Send(ctx, m); err != nil {
			return "", fmt.Errorf("send %d: %w", seq, err)
		}
	}
	if err := p.Close(); err != nil {
		return "", err
	}
	return fmt.Sprintf("ok first=%d until=%d", first, until), nil
}

// subscribeHelper receives until the stream ends (io.EOF) or, if until is
// not 0, sequence number until is reached, checking every message and every loss, and
// reports what it received: the first sequence number, how many it
// received and lost, and the CRC32-C of the messages in order. It waits
// out a publisher that died (ErrPeerDead): another takes over.
func subscribeHelper(ctx context.Context, q *Queue, from Start, until uint64, slow bool) (string, error) {
	s, err := q.Subscriber(from)
	if err != nil {
		return "", err
	}
	fmt.Fprintln(os.Stderr, "subscribed")
	first := s.Seq()
	buf := make([]byte, q.MaxMessage())
	var received, lost uint64
	crc := uint32(0)
	for until == 0 || s.Seq() != until {
		want := s.Seq()
		n, err := s.Recv(ctx, buf)
		var le *LostError
		switch {
		case err == nil:
			if n != sizeOf(want, q.MaxMessage()) {
				return "", fmt.Errorf("message %d has %d bytes, want %d", want, n, sizeOf(want, q.MaxMessage()))
			}
			if err := verify(buf[:n], want); err != nil {
				return "", err
			}
			received++
			crc = crc32.Update(crc, castagnoli, buf[:n])
			if slow && received%512 == 0 {
				time.Sleep(time.Millisecond)
			}
		case errors.As(err, &le):
			if !q.Lossy() {
				return "", fmt.Errorf("loss in a back-pressure queue: %w", err)
			}
			if s.Seq() != want+le.Count {
				return "", fmt.Errorf("lost %d after %d, but resumes at %d", le.Count, want, s.Seq())
			}
			lost += le.Count
		case err == io.EOF:
			return fmt.Sprintf("ok first=%d next=%d received=%d lost=%d crc=%08x", first, s.Seq(), received, lost, crc), nil
		case errors.Is(err, ErrPeerDead):
			time.Sleep(time.Millisecond)
		default:
			return "", fmt.Errorf("after %d messages: %w", received, err)
		}
	}
	return fmt.Sprintf("ok first=%d next=%d received=%d lost=%d crc=%08x", first, s.Seq(), received, lost, crc), nil
}

// proc is a helper process.
type proc struct {
	cmd  *exec.Cmd
	out  *strings.Builder
	done chan error
}

func startHelper(t *testing.T, mode, queue string, env ...string) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), "SHMQ_PUBSUB_HELPER="+mode, "SHMQ_QUEUE="+queue), env...)
	out := &strings.Builder{}
	cmd.Stdout = out
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, out: out, done: make(chan error, 1)}
	subscribed := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if sc.Text() == "subscribed" {
				close(subscribed)
				continue
			}
			fmt.Fprintf(os.Stderr, "helper pid %d: %s\n", cmd.Process.Pid, sc.Text())
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	if mode == "subscribe" {
		select {
		case <-subscribed:
		case err := <-p.done:
			t.Fatalf("subscriber pid %d exited before attaching: %v: %s", cmd.Process.Pid, err, out.String())
		case <-time.After(10 * time.Second):
			t.Fatalf("subscriber pid %d did not attach", cmd.Process.Pid)
		}
	}
	return p
}

// result waits for the helper to exit and returns its report as a map.
func (p *proc) result(t *testing.T, d time.Duration) map[string]string {
	t.Helper()
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("helper pid %d: %v: %s", p.cmd.Process.Pid, err, p.out.String())
		}
	case <-time.After(d):
		p.cmd.Process.Kill()
		t.Fatalf("helper pid %d did not finish within %v: %s", p.cmd.Process.Pid, d, p.out.String())
	}
	kv := map[string]string{}
	for _, f := range strings.Fields(p.out.String()) {
		if k, v, ok := strings.Cut(f, "="); ok {
			kv[k] = v
		}
	}
	return kv
}

func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func queueName(t *testing.T, tag string) string {
	name := fmt.Sprintf("shmq-ps-%s-%d", tag, os.Getpid())
	t.Cleanup(func() { ring.Unlink(ring.Shm(name)) })
	return name
}

// TestProcessFanOut: subscriber processes attached before a publisher
// process each receive every message, byte for byte, and report the same
// checksum; positions and sequence numbers start near 2^64 and wrap.
func TestProcessFanOut(t *testing.T) {
	for _, lossy := range []bool{false, true} {
		t.Run(policyName(lossy), func(t *testing.T) {
			name := queueName(t, "fan")
			const count = 100_000
			startSeq := ^uint64(0) - count/2
			q, err := Create(ring.Shm(name), Config{Capacity: 1 << 16, MaxMessage: 256, Lossy: lossy, Subscribers: 8,
				StartPosition: ^uint64(1<<20 - 1), StartSeq: startSeq})
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			until := "SHMQ_UNTIL=" + strconv.FormatUint(startSeq+count, 10)
			var subs []*proc
			for i := range 6 {
				env := []string{until, "SHMQ_START=" + strconv.Itoa(i%3)}
				if lossy && i%2 == 1 {
					env = append(env, "SHMQ_SLOW=1")
				}
				subs = append(subs, startHelper(t, "subscribe", name, env...))
			}
			batch := "SHMQ_BATCH=0"
			if lossy {
				batch = "SHMQ_BATCH=8"
			}
			pub := startHelper(t, "publish", name, until, batch)
			pub.result(t, time.Minute)
			var crc string
			for i, s := range subs {
				r := s.result(t, time.Minute)
				received, _ := strconv.ParseUint(r["received"], 10, 64)
				lost, _ := strconv.ParseUint(r["lost"], 10, 64)
				if r["first"] != strconv.FormatUint(startSeq, 10) || received+lost != count {
					t.Fatalf("subscriber %d: %v", i, r)
				}
				if !lossy && lost != 0 {
					t.Fatalf("subscriber %d lost messages under back-pressure: %v", i, r)
				}
				if lost == 0 {
					if crc == "" {
						crc = r["crc"]
					} else if r["crc"] != crc {
						t.Fatalf("subscriber %d checksum %s, another's %s", i, r["crc"], crc)
					}
				}
				t.Logf("subscriber %d: %v", i, r)
			}
		})
	}
}

// TestKillLoop kills the publisher and subscriber processes with SIGKILL
// at random points while subscribers that are never killed receive. Under
// back-pressure those subscribers receive every committed message (each
// killed publisher's successor continues after the last one committed,
// and dead subscribers do not wedge the publisher); in a lossy queue every
// message is received whole or counted lost. SHMQ_PUBSUB_KILL_ROUNDS sets
// the number of rounds (default 8; 4 with -short).
func TestKillLoop(t *testing.T) {
	rounds := 8
	if testing.Short() {
		rounds = 4
	}
	if n, err := strconv.Atoi(os.Getenv("SHMQ_PUBSUB_KILL_ROUNDS")); err == nil {
		rounds = n
	}
	for _, lossy := range []bool{false, true} {
		t.Run(policyName(lossy), func(t *testing.T) {
			name := queueName(t, "kill")
			startSeq := ^uint64(0) - 5000
			q, err := Create(ring.Shm(name), Config{Capacity: 1 << 14, MaxMessage: 256, Lossy: lossy, Subscribers: 16,
				StartPosition: ^uint64(1<<16 - 1), StartSeq: startSeq})
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			var stable []*proc
			for i := range 3 {
				env := []string{}
				if lossy && i == 2 {
					env = append(env, "SHMQ_SLOW=1")
				}
				stable = append(stable, startHelper(t, "subscribe", name, env...))
			}
			r := rand.New(rand.NewPCG(uint64(os.Getpid()), 2))
			var victims []*proc
			for round := range rounds {
				pub := startHelper(t, "publish", name, "SHMQ_BATCH="+strconv.Itoa(round%3*4))
				victims = append(victims, startHelper(t, "subscribe", name, "SHMQ_START="+strconv.Itoa(round%3)))
				time.Sleep(time.Duration(5+r.IntN(40)) * time.Millisecond)
				// Kill one at random now and then, and always once 8 are
				// alive: the registry has room for 16 subscribers.
				if len(victims) > 0 && (r.IntN(2) == 0 || len(victims) > 8) {
					k := r.IntN(len(victims))
					victims[k].kill()
					victims = append(victims[:k], victims[k+1:]...)
				}
				time.Sleep(time.Duration(r.IntN(20)) * time.Millisecond)
				pub.kill()
			}
			for _, v := range victims {
				v.kill()
			}
			st, err := q.Stats()
			if err != nil {
				t.Fatal(err)
			}
			until := st.NextSeq + 20_000
			pub := startHelper(t, "publish", name, "SHMQ_UNTIL="+strconv.FormatUint(until, 10))
			pub.result(t, time.Minute)
			for i, s := range stable {
				res := s.result(t, time.Minute)
				first, _ := strconv.ParseUint(res["first"], 10, 64)
				received, _ := strconv.ParseUint(res["received"], 10, 64)
				lost, _ := strconv.ParseUint(res["lost"], 10, 64)
				if res["next"] != strconv.FormatUint(until, 10) || received+lost != until-first || !lossy && lost != 0 {
					t.Fatalf("stable subscriber %d: %v; the stream ended at %d", i, res, until)
				}
				t.Logf("stable subscriber %d: %v (%d rounds)", i, res, rounds)
			}
		})
	}
}
