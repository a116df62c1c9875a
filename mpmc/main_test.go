package mpmc

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/shmq/shmq/ring"
)

// Helper processes: the test binary re-executes itself with MPMC_HELPER
// set to one of these roles. The queue is inherited as file descriptor 3.
var helpers = map[string]func() error{
	"stress-producer": stressProducer,
	"stress-consumer": stressConsumer,
	"hang-reserve":    hangReserve,
	"hang-peek":       hangPeek,
	"recv-park":       recvPark,
	"send-park":       sendPark,
	"bench-producer":  benchProducer,
	"bench-consumer":  benchConsumer,
}

func TestMain(m *testing.M) {
	if role := os.Getenv("MPMC_HELPER"); role != "" {
		fn := helpers[role]
		if fn == nil {
			fmt.Fprintf(os.Stderr, "unknown helper %q\n", role)
			os.Exit(2)
		}
		if err := fn(); err != nil {
			fmt.Fprintf(os.Stderr, "helper %s: %v\n", role, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// helper starts the test binary as a helper process of role with the queue
// q as its descriptor 3 and env added to its environment.
func helper(t testing.TB, q *Queue, role string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{"MPMC_HELPER=" + role}, env...)...)
	cmd.ExtraFiles = []*os.File{q.Segment().File()}
	cmd.Stderr = os.Stderr
	return cmd
}

func envInt(name string) int {
	v, err := strconv.Atoi(os.Getenv(name))
	if err != nil {
		panic(fmt.Sprintf("%s: %v", name, err))
	}
	return v
}

func openInherited() (*Queue, error) {
	return Open(context.Background(), ring.FD(3), nil)
}

// Stress messages: u32 producer id, u64 sequence number, u32 CRC-32 of the
// rest of the message, then filler derived from id and sequence number.
const (
	stressHeader = 16
	sentinelID   = ^uint32(0)
)

func stressMessage(buf []byte, id uint32, seq uint64, n int) []byte {
	m := buf[:n]
	binary.LittleEndian.PutUint32(m[0:], id)
	binary.LittleEndian.PutUint64(m[4:], seq)
	for i := stressHeader; i < n; i++ {
		m[i] = byte(uint64(i)*7 + seq*31 + uint64(id))
	}
	binary.LittleEndian.PutUint32(m[12:], stressCRC(m))
	return m
}

func stressCRC(m []byte) uint32 {
	h := crc32.NewIEEE()
	h.Write(m[:12])
	h.Write(m[16:])
	return h.Sum32()
}

func checkStressMessage(m []byte) (id uint32, seq uint64, err error) {
	if len(m) < stressHeader {
		return 0, 0, fmt.Errorf("message of %d bytes", len(m))
	}
	id = binary.LittleEndian.Uint32(m[0:])
	seq = binary.LittleEndian.Uint64(m[4:])
	if crc := binary.LittleEndian.Uint32(m[12:]); crc != stressCRC(m) {
		return 0, 0, fmt.Errorf("message from %d seq %d: checksum mismatch", id, seq)
	}
	return id, seq, nil
}

// stressProducer sends MPMC_COUNT messages as producer MPMC_ID, mixing
// Send, Reserve/Commit and SendBatch.
func stressProducer() error {
	q, err := openInherited()
	if err != nil {
		return err
	}
	defer q.Close()
	p, err := q.Producer()
	if err != nil {
		return err
	}
	id, count := uint32(envInt("MPMC_ID")), uint64(envInt("MPMC_COUNT"))
	rng := rand.New(rand.NewPCG(uint64(id), 1))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	maxLen := q.MaxMessage()
	buf := make([]byte, 8*maxLen)
	size := func() int { return stressHeader + rng.IntN(maxLen-stressHeader+1) }
	for seq := uint64(0); seq < count; {
		switch r := rng.IntN(10); {
		case r == 0 && !q.Locked(): // Reserve and Commit, retried while full.
			n := size()
			for {
				b, err := p.Reserve(n)
				if err == ErrFull {
					if err := ctx.Err(); err != nil {
						return err
					}
					time.Sleep(10 * time.Microsecond)
					continue
				}
				if err != nil {
					return err
				}
				stressMessage(b, id, seq, n)
				break
			}
			if err := p.Commit(); err != nil {
				return err
			}
			seq++
		case r == 1 && count-seq >= 4: // a batch of four
			var msgs [][]byte
			for k := 0; k < 4; k++ {
				msgs = append(msgs, stressMessage(buf[k*maxLen:], id, seq+uint64(k), size()))
			}
			if err := p.SendBatch(ctx, msgs); err != nil {
				return err
			}
			seq += 4
		default:
			if err := p.Send(ctx, stressMessage(buf, id, seq, size())); err != nil {
				return err
			}
			seq++
		}
	}
	return p.Close()
}

// stressConsumer receives until it gets a sentinel, checking checksums and
// per-producer order, and writes (id, seq) pairs to MPMC_OUT.
func stressConsumer() error {
	q, err := openInherited()
	if err != nil {
		return err
	}
	defer q.Close()
	c, err := q.Consumer()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	f, err := os.Create(os.Getenv("MPMC_OUT"))
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	last := map[uint32]uint64{}
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 2))
	buf := make([]byte, q.MaxMessage())
	record := func(m []byte) (done bool, err error) {
		id, seq, err := checkStressMessage(m)
		if err != nil {
			return false, err
		}
		if id == sentinelID {
			return true, nil
		}
		if l, ok := last[id]; ok && seq <= l {
			return false, fmt.Errorf("producer %d: seq %d after %d", id, seq, l)
		}
		last[id] = seq
		var rec [8]byte
		binary.LittleEndian.PutUint32(rec[0:], id)
		binary.LittleEndian.PutUint32(rec[4:], uint32(seq))
		_, err = w.Write(rec[:])
		return false, err
	}
	errDone := errors.New("done")
	for {
		var done bool
		switch r := rng.IntN(10); {
		case r == 0 && !q.Locked(): // Peek and Release
			m, err := c.Peek()
			if err == ErrEmpty {
				time.Sleep(10 * time.Microsecond)
				continue
			}
			if err != nil {
				return err
			}
			if done, err = record(m); err != nil {
				return err
			}
			if err := c.Release(); err != nil {
				return err
			}
		case r == 1: // a batch
			_, err := c.TryRecvBatch(8, func(m []byte) error {
				if done {
					// Locked mode: leave what follows the sentinel (the
					// other consumers' sentinels) at the head.
					return errDone
				}
				d, err := record(m)
				if err == nil && d {
					done = true
					if q.Locked() {
						return nil
					}
					return errDone
				}
				return err
			})
			if done {
				if !q.Locked() {
					// The sentinel was kept as the batch's failing message
					// (for this consumer); release it.
					if _, err := c.TryRecv(buf); err != nil {
						return err
					}
				}
				break
			}
			if err == ErrEmpty {
				time.Sleep(10 * time.Microsecond)
				continue
			}
			if err != nil {
				return err
			}
		default:
			n, err := c.Recv(ctx, buf)
			if err != nil {
				return err
			}
			if done, err = record(buf[:n]); err != nil {
				return err
			}
		}
		if done {
			if err := w.Flush(); err != nil {
				return err
			}
			return c.Close()
		}
	}
}

// hangReserve reserves a slot, says so on stdout and waits to be killed.
func hangReserve() error {
	q, err := openInherited()
	if err != nil {
		return err
	}
	p, err := q.Producer()
	if err != nil {
		return err
	}
	if _, err := p.Reserve(8); err != nil {
		return err
	}
	fmt.Println("ready")
	time.Sleep(time.Minute)
	return errors.New("not killed")
}

// hangPeek peeks a message, says so on stdout and waits to be killed.
func hangPeek() error {
	q, err := openInherited()
	if err != nil {
		return err
	}
	c, err := q.Consumer()
	if err != nil {
		return err
	}
	if _, err := c.Peek(); err != nil {
		return err
	}
	fmt.Println("ready")
	time.Sleep(time.Minute)
	return errors.New("not killed")
}

// startAndWaitReady starts cmd and waits for it to print a line.
func startAndWaitReady(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil && err != io.EOF || line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper said %q: %v", line, err)
	}
}

// recvPark attaches a consumer that parks at once in Recv on an empty
// queue, says so, and waits to be killed there.
func recvPark() error {
	q, err := Open(context.Background(), ring.FD(3), &Options{Wait: Wait{Spin: -1}})
	if err != nil {
		return err
	}
	c, err := q.Consumer()
	if err != nil {
		return err
	}
	fmt.Println("ready")
	_, err = c.Recv(context.Background(), make([]byte, q.MaxMessage()))
	return err
}

// sendPark attaches a producer, fills the queue, says so, and waits to be
// killed parked in Send.
func sendPark() error {
	q, err := Open(context.Background(), ring.FD(3), &Options{Wait: Wait{Spin: -1}})
	if err != nil {
		return err
	}
	p, err := q.Producer()
	if err != nil {
		return err
	}
	for p.TrySend([]byte("fill")) == nil {
	}
	fmt.Println("ready")
	return p.Send(context.Background(), []byte("more"))
}
