package spsc

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmq/shmq/ring"
)

// The test binary doubles as the peer process. With SHMQ_SPSC_HELPER set,
// TestMain runs the named helper instead of the tests; the helper reports
// on stdout and exits.
func TestMain(m *testing.M) {
	if mode := os.Getenv("SHMQ_SPSC_HELPER"); mode != "" {
		if err := helper(mode); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// fill writes message seq of n bytes: the sequence number, then bytes
// derived from it, so a receiver can check every byte.
func fill(b []byte, seq uint64) {
	binary.LittleEndian.PutUint64(b, seq)
	for i := 8; i < len(b); i++ {
		b[i] = byte(seq) ^ byte(i*7)
	}
}

// verify checks that b is message seq as fill wrote it.
func verify(b []byte, seq uint64) error {
	if len(b) < 8 {
		return fmt.Errorf("message of %d bytes", len(b))
	}
	if got := binary.LittleEndian.Uint64(b); got != seq {
		return fmt.Errorf("got sequence %d, want %d", got, seq)
	}
	for i := 8; i < len(b); i++ {
		if b[i] != byte(seq)^byte(i*7) {
			return fmt.Errorf("message %d: byte %d is %#x", seq, i, b[i])
		}
	}
	return nil
}

// sizeOf is the size of message seq in streams of varying sizes.
func sizeOf(seq uint64, max int) int { return 8 + int(seq*2654435761%uint64(max-7)) }

func helperLoc() ring.Location {
	q := os.Getenv("SHMQ_QUEUE")
	if fd, ok := strings.CutPrefix(q, "fd:"); ok {
		n, _ := strconv.Atoi(fd)
		return ring.FD(n)
	}
	return ring.Shm(q)
}

// helperWait is the wait configuration named by SHMQ_WAIT: "spin" never
// parks, "park" parks at once, anything else is the default.
func helperWait() Wait {
	switch os.Getenv("SHMQ_WAIT") {
	case "spin":
		return Wait{Spin: time.Hour}
	case "park":
		return Wait{Spin: -1}
	}
	return Wait{}
}

func envInt(name string) uint64 {
	n, _ := strconv.ParseUint(os.Getenv(name), 10, 64)
	return n
}

func helper(mode string) error {
	ctx := context.Background()
	q, err := Open(ctx, helperLoc(), &Options{Wait: helperWait()})
	if err != nil {
		return err
	}
	defer q.Close()
	count, first := envInt("SHMQ_COUNT"), envInt("SHMQ_FIRST")
	switch mode {
	case "consume": // receive and verify count messages, report their checksum
		c, err := q.Consumer()
		if err != nil {
			return err
		}
		buf := make([]byte, q.MaxMessage())
		crc := uint32(0)
		for seq := uint64(0); seq < count; seq++ {
			n, err := c.Recv(ctx, buf)
			if err != nil {
				return fmt.Errorf("message %d: %w", seq, err)
			}
			if err := verify(buf[:n], seq); err != nil {
				return err
			}
			crc = crc32.Update(crc, castagnoli, buf[:n])
		}
		fmt.Printf("ok %d %08x\n", count, crc)
	case "produce": // send messages first, first+1, ... until killed or count reached
		p, err := q.Producer()
		if err != nil {
			return err
		}
		fmt.Println("attached")
		buf := make([]byte, q.MaxMessage())
		size := int(envInt("SHMQ_SIZE"))
		for seq := first; count == 0 || seq < first+count; seq++ {
			b := buf[:size]
			fill(b, seq)
			if err := p.Send(ctx, b); err != nil {
				return err
			}
		}
		fmt.Println("done")
	case "consume-log": // receive forever, printing each batch's sequence numbers before releasing it
		c, err := attachConsumer(ctx, q)
		if err != nil {
			return err
		}
		fmt.Println("attached")
		out := bufio.NewWriter(os.Stdout)
		for {
			m, err := c.Peek()
			if err == ErrEmpty {
				time.Sleep(50 * time.Microsecond)
				continue
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%d", binary.LittleEndian.Uint64(m))
			for i := 0; i < 63; i++ {
				if m, err = c.Peek(); err != nil {
					break
				}
				fmt.Fprintf(out, " %d", binary.LittleEndian.Uint64(m))
			}
			fmt.Fprintln(out)
			out.Flush() // reported before released: a kill in between redelivers, never loses
			if err := c.Release(); err != nil {
				return err
			}
		}
	case "peek": // peek count messages, release the first, then wait to be killed
		c, err := q.Consumer()
		if err != nil {
			return err
		}
		for i := uint64(0); i < count; i++ {
			m, err := c.Peek()
			if err != nil {
				return err
			}
			if err := verify(m, i); err != nil {
				return err
			}
			if i == 0 {
				c.Release()
			}
		}
		fmt.Println("peeked")
		time.Sleep(time.Minute)
	case "echo": // send back each of count messages from the request queue
		out, err := Open(ctx, ring.Shm(os.Getenv("SHMQ_REPLY")), &Options{Wait: helperWait()})
		if err != nil {
			return err
		}
		defer out.Close()
		c, err := q.Consumer()
		if err != nil {
			return err
		}
		p, err := out.Producer()
		if err != nil {
			return err
		}
		fmt.Println("attached")
		buf := make([]byte, q.MaxMessage())
		for i := uint64(0); i < count; i++ {
			n, err := c.Recv(ctx, buf)
			if err != nil {
				return err
			}
			if err := p.Send(ctx, buf[:n]); err != nil {
				return err
			}
		}
		fmt.Println("ok")
	case "recv-park": // attach as the consumer and block in Recv until killed
		c, err := q.Consumer()
		if err != nil {
			return err
		}
		fmt.Println("attached")
		_, err = c.Recv(ctx, make([]byte, q.MaxMessage()))
		return err
	case "send-park": // attach as the producer, fill the ring and block in Send until killed
		p, err := q.Producer()
		if err != nil {
			return err
		}
		for p.TrySend(make([]byte, 8)) == nil {
		}
		fmt.Println("attached")
		return p.Send(ctx, make([]byte, 8))
	case "example-child": // Example_memfdChild's worker: receive until the end of the stream
		c, err := q.Consumer()
		if err != nil {
			return err
		}
		buf := make([]byte, q.MaxMessage())
		for {
			n, err := c.Recv(ctx, buf)
			if err != nil {
				fmt.Println("child done:", err)
				return nil
			}
			fmt.Printf("child got %s\n", buf[:n])
		}
	case "bench": // receive count messages as fast as possible
		c, err := q.Consumer()
		if err != nil {
			return err
		}
		fmt.Println("attached")
		buf := make([]byte, q.MaxMessage())
		for seq := uint64(0); seq < count; seq++ {
			n, err := c.Recv(ctx, buf)
			if err != nil {
				return err
			}
			if n != 64 || binary.LittleEndian.Uint64(buf) != seq {
				return fmt.Errorf("message %d: %d bytes, sequence %d", seq, n, binary.LittleEndian.Uint64(buf))
			}
		}
		fmt.Println("ok")
	default:
		return fmt.Errorf("unknown helper %q", mode)
	}
	return nil
}

// attachConsumer takes the consumer role, waiting while a killed holder's
// lock is still being released.
func attachConsumer(ctx context.Context, q *Queue) (*Consumer, error) {
	for i := 0; ; i++ {
		c, err := q.Consumer()
		if !errors.Is(err, ErrRoleTaken) || i == 1000 {
			return c, err
		}
		time.Sleep(time.Millisecond)
	}
}

// peer is a running helper process.
type peer struct {
	cmd *exec.Cmd
	out *bufio.Scanner
}

func startHelper(t testing.TB, mode, queue string, env map[string]string, files ...*os.File) *peer {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SHMQ_SPSC_HELPER="+mode, "SHMQ_QUEUE="+queue)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.ExtraFiles = files
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return &peer{cmd: cmd, out: bufio.NewScanner(out)}
}

// expect reads the helper's next line and fails unless it starts with want.
func (p *peer) expect(t testing.TB, want string) string {
	t.Helper()
	if !p.out.Scan() {
		t.Fatalf("helper exited before saying %q: %v", want, p.cmd.Wait())
	}
	line := p.out.Text()
	if !strings.HasPrefix(line, want) {
		t.Fatalf("helper said %q, want %q", line, want)
	}
	return line
}

func (p *peer) kill() {
	p.cmd.Process.Kill()
	p.cmd.Wait()
}

var shmSeq int

func tempShm(t testing.TB) ring.Location {
	shmSeq++
	loc := ring.Shm(fmt.Sprintf("shmq-st-%d-%d", os.Getpid(), shmSeq))
	ring.Unlink(loc)
	t.Cleanup(func() { ring.Unlink(loc) })
	return loc
}

func queueName(loc ring.Location) string { return strings.TrimPrefix(loc.String(), "shm:") }

// TestCrossProcessStream streams messages of varying sizes through a small
// ring to a consumer process, which checks every byte and the order.
func TestCrossProcessStream(t *testing.T) {
	count := uint64(300000)
	if testing.Short() {
		count = 50000
	}
	loc := tempShm(t)
	q, err := Create(loc, Config{Capacity: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	c := startHelper(t, "consume", queueName(loc), map[string]string{"SHMQ_COUNT": fmt.Sprint(count)})
	p, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	// A hang guard, not a speed limit: each message that fills the small
	// ring is a park and a wake, which on a loaded 2-core machine (busy
	// neighbours, another package's tests) took the 300k messages 38 to
	// over 60 s.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	buf := make([]byte, q.MaxMessage())
	crc := uint32(0)
	for seq := uint64(0); seq < count; seq++ {
		b := buf[:sizeOf(seq, q.MaxMessage())]
		fill(b, seq)
		crc = crc32.Update(crc, castagnoli, b)
		if err := p.Send(ctx, b); err != nil {
			t.Fatalf("send %d: %v", seq, err)
		}
	}
	c.expect(t, fmt.Sprintf("ok %d %08x", count, crc))
	st, _ := q.Stats()
	if st.Producer.Messages != count || st.Consumer.Messages != count || st.Used != 0 {
		t.Fatalf("stats after the stream: %+v", st)
	}
}

// TestCrossProcessMemfd shares an anonymous memfd segment with a child that
// inherits its descriptor.
func TestCrossProcessMemfd(t *testing.T) {
	q, err := Create(ring.Memfd("inherit"), Config{Capacity: 1 << 12})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	c := startHelper(t, "consume", "fd:3", map[string]string{"SHMQ_COUNT": "20000"}, q.Segment().File())
	p, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	crc := uint32(0)
	buf := make([]byte, 64)
	for seq := uint64(0); seq < 20000; seq++ {
		fill(buf, seq)
		crc = crc32.Update(crc, castagnoli, buf)
		if err := p.Send(context.Background(), buf); err != nil {
			t.Fatal(err)
		}
	}
	c.expect(t, fmt.Sprintf("ok 20000 %08x", crc))
}

// TestProducerDeathAndRestart: a producer process is killed mid-stream. The
// consumer receives every committed message in order, is told the producer
// died, and a new producer process continues the queue.
func TestProducerDeathAndRestart(t *testing.T) {
	loc := tempShm(t)
	q, err := Create(loc, Config{Capacity: 1 << 12})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	c, err := q.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	p1 := startHelper(t, "produce", queueName(loc), map[string]string{"SHMQ_SIZE": "40"})
	p1.expect(t, "attached")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	buf := make([]byte, 64)
	seq := uint64(0)
	for ; seq < 5000; seq++ {
		n, err := c.Recv(ctx, buf)
		if err != nil {
			t.Fatal(err)
		}
		if err := verify(buf[:n], seq); err != nil {
			t.Fatal(err)
		}
	}
	p1.kill()
	// Drain what it committed before it died; then the queue reports the death.
	for {
		n, err := c.Recv(ctx, buf)
		if errors.Is(err, ErrPeerDead) {
			break
		}
		if err != nil {
			t.Fatalf("after producer death: %v", err)
		}
		if err := verify(buf[:n], seq); err != nil {
			t.Fatal(err)
		}
		seq++
	}
	p2 := startHelper(t, "produce", queueName(loc), map[string]string{
		"SHMQ_SIZE": "40", "SHMQ_FIRST": fmt.Sprint(seq), "SHMQ_COUNT": "1000"})
	p2.expect(t, "attached")
	for end := seq + 1000; seq < end; seq++ {
		n, err := c.Recv(ctx, buf)
		if err != nil {
			t.Fatalf("from the restarted producer: %v", err)
		}
		if err := verify(buf[:n], seq); err != nil {
			t.Fatal(err)
		}
	}
	p2.expect(t, "done")
}

// TestConsumerCrashRedelivers: messages a consumer peeked and did not
// release before it was killed are delivered to the next consumer.
func TestConsumerCrashRedelivers(t *testing.T) {
	loc := tempShm(t)
	q, err := Create(loc, Config{Capacity: 1 << 12})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	p, err := q.Producer()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 32)
	for seq := uint64(0); seq < 10; seq++ {
		fill(buf, seq)
		if err := p.TrySend(buf); err != nil {
			t.Fatal(err)
		}
	}
	h := startHelper(t, "peek", queueName(loc), map[string]string{"SHMQ_COUNT": "5"})
	h.expect(t, "peeked")
	if _, err := q.Consumer(); !errors.Is(err, ErrRoleTaken) {
		t.Fatalf("consumer while the helper holds the role: %v", err)
	}
	h.kill()
	c, err := q.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq < 10; seq++ { // message 0 was released
		n, err := c.TryRecv(buf)
		if err != nil {
			t.Fatal(err)
		}
		if err := verify(buf[:n], seq); err != nil {
			t.Fatal(err)
		}
	}
}
