package main

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"

	"github.com/shmq/shmq/cmd/shmq-demo/internal/payload"
	"github.com/shmq/shmq/mpmc"
	"github.com/shmq/shmq/ring"
)

// The MPMC phase's peers, run as child processes: a producer sends its
// messages once the go byte arrives; a consumer receives until it takes a
// stop message, checks each producer's numbers and the filler, and
// reports per producer a bitmap of the numbers it received.

// The peers' hidden commands.
const (
	mpmcProducerPeer = "__mpmc-producer"
	mpmcConsumerPeer = "__mpmc-consumer"
)

// runMPMCProducer sends -count producer payloads of -size bytes with
// producer id -id, in batches, once the go byte arrives.
func runMPMCProducer(args []string) int {
	var name string
	var id, count uint64
	var size int
	fs := newFlags(mpmcProducerPeer)
	fs.StringVar(&name, "queue", "", "")
	fs.Uint64Var(&id, "id", 0, "")
	fs.Uint64Var(&count, "count", 0, "")
	fs.IntVar(&size, "size", 0, "")
	if err := parseFlags(fs, args); err != nil {
		return childReport("", err)
	}
	if size < payload.MinProducer {
		return childReport("", fmt.Errorf("-size %d is below %d", size, payload.MinProducer))
	}
	ctx, cancel, start := childGoContext()
	defer cancel()

	q, err := mpmc.Open(ctx, ring.Shm(name), nil)
	if err != nil {
		return childReport("", err)
	}
	defer q.Close()
	p, err := q.Producer()
	if err != nil {
		return childReport("", err)
	}
	defer p.Close()
	select {
	case <-start:
	case <-ctx.Done():
		return childReport("", fmt.Errorf("no go byte: %w", ctx.Err()))
	}

	const batch = 64
	msgs := make([][]byte, batch)
	for i := range msgs {
		msgs[i] = make([]byte, size)
	}
	var sent payload.Tally
	for seq := uint64(0); seq < count; {
		k := min(batch, count-seq)
		for j, m := range msgs[:k] {
			payload.PutProducer(m, id, seq+uint64(j))
			sent.Add(m)
		}
		if err := p.SendBatch(ctx, msgs[:k]); err != nil {
			return childReport("", fmt.Errorf("after %d messages: %w", seq, err))
		}
		seq += k
	}
	if err := p.Close(); err != nil {
		return childReport("", err)
	}
	return childReport(sent.String(), nil)
}

// runMPMCConsumer receives until it takes a stop message. The producers'
// ids are below -producers and their numbers below -count; every message
// must have -size bytes.
func runMPMCConsumer(args []string) int {
	var name string
	var producers, count uint64
	var size int
	fs := newFlags(mpmcConsumerPeer)
	fs.StringVar(&name, "queue", "", "")
	fs.Uint64Var(&producers, "producers", 0, "")
	fs.Uint64Var(&count, "count", 0, "")
	fs.IntVar(&size, "size", 0, "")
	if err := parseFlags(fs, args); err != nil {
		return childReport("", err)
	}
	ctx, cancel := childContext()
	defer cancel()

	q, err := mpmc.Open(ctx, ring.Shm(name), nil)
	if err != nil {
		return childReport("", err)
	}
	defer q.Close()
	c, err := q.Consumer()
	if err != nil {
		return childReport("", err)
	}
	defer c.Close()

	chk := payload.NewProducerChecker(q.MaxMessage(), producers, count)
	got, wrongSize, err := receiveUntilStop(ctx, c, chk, size, q.MaxMessage())
	if err != nil {
		return childReport("", err)
	}
	if err := c.Close(); err != nil {
		return childReport("", err)
	}
	if _, repeats := chk.Totals(); repeats > 0 || chk.Corrupt > 0 || chk.Short > 0 || wrongSize > 0 {
		return childReport("", fmt.Errorf("%s: %d repeated or out-of-order, %d corrupt or out of range, %d short, %d of the wrong size",
			chk.Summary(0), repeats, chk.Corrupt, chk.Short, wrongSize))
	}
	for _, s := range chk.Streams() {
		fmt.Printf("%s bitmap=%s\n", s, encodeBitmap(s.Seen))
	}
	return childReport(got.String(), nil)
}

// receiveUntilStop receives messages into chk until a stop message, and
// returns their tally and how many had other than size bytes.
func receiveUntilStop(ctx context.Context, c *mpmc.Consumer, chk *payload.ProducerChecker, size, maxMessage int) (payload.Tally, uint64, error) {
	var got payload.Tally
	var wrongSize uint64
	stopped := false
	accept := func(m []byte) error {
		if len(m) >= payload.MinProducer && payload.ID(m) == payload.StopID {
			stopped = true
			return nil
		}
		if len(m) != size {
			wrongSize++
		}
		chk.Add(m)
		got.Add(m)
		return nil
	}
	buf := make([]byte, maxMessage)
	for !stopped {
		_, err := c.TryRecvBatch(256, accept)
		if err == mpmc.ErrEmpty {
			var k int
			if k, err = c.Recv(ctx, buf); err == nil {
				accept(buf[:k])
			}
		}
		if err != nil {
			return got, wrongSize, fmt.Errorf("after %d messages: %w", got.Messages, err)
		}
	}
	return got, wrongSize, nil
}

// encodeBitmap and decodeBitmap carry a bitmap on a report line.
func encodeBitmap(bm []uint64) string {
	b := make([]byte, 0, 8*len(bm))
	for _, w := range bm {
		b = binary.LittleEndian.AppendUint64(b, w)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func decodeBitmap(s string, words int) ([]uint64, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != 8*words {
		return nil, fmt.Errorf("bad bitmap of %d bytes (want %d): %v", len(b), 8*words, err)
	}
	bm := make([]uint64, words)
	for i := range bm {
		bm[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return bm, nil
}
