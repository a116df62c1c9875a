package relay

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shmq/shmq/bridge/internal/jsconn"
	"github.com/shmq/shmq/bridge/internal/localq"
)

// ErrLocalTooSmall: a message from JetStream does not fit the local queue.
var ErrLocalTooSmall = errors.New("message larger than the local queue accepts")

// InConfig configures In.
type InConfig struct {
	Sink    localq.Sink
	Conn    *nats.Conn
	Stream  jsconn.StreamOptions
	Durable string
	// Batch is how many messages the client pulls ahead. 0 means 256.
	Batch int
	// AckWait is the consumer's acknowledgement timeout: a message not
	// acknowledged in that time is delivered again. While the local queue
	// is full the bridge tells JetStream the message is in progress every
	// AckWait/3. 0 means 30 s.
	AckWait time.Duration
	// DrainTimeout bounds how long, once ctx ends, In keeps committing the
	// messages it has already pulled. 0 means 10 s.
	DrainTimeout time.Duration
	// Remember is how many recently committed message ids In keeps, to
	// drop a redelivery of a message it committed. 0 means 65536.
	Remember int
	Stats    *Stats
	Logf     func(format string, args ...any)
}

// In consumes cfg.Stream.Subject through the durable pull consumer
// cfg.Durable (created or updated; the stream is created if missing and
// allowed) and commits each message into cfg.Sink, acknowledging it to
// JetStream only after the commit. A full local queue blocks the commit,
// and so the pulling: nothing is dropped. A message redelivered after a
// crash between commit and acknowledgement is committed again (at least
// once); one redelivered while this process remembers committing it (by its
// Nats-Msg-Id, or its stream sequence) is acknowledged and dropped. When ctx
// ends, In stops pulling, commits what it has pulled (bounded by
// cfg.DrainTimeout) and returns nil.
func In(ctx context.Context, cfg InConfig) error {
	if cfg.Batch <= 0 {
		cfg.Batch = 256
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 10 * time.Second
	}
	if cfg.Remember <= 0 {
		cfg.Remember = 1 << 16
	}
	if cfg.Stats == nil {
		cfg.Stats = new(Stats)
	}
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	js, err := jetstream.New(cfg.Conn)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	stream, err := jsconn.EnsureStream(sctx, js, cfg.Stream)
	if err != nil {
		return err
	}
	cons, err := js.CreateOrUpdateConsumer(sctx, stream, jetstream.ConsumerConfig{
		Durable:       cfg.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxAckPending: 4 * cfg.Batch,
		FilterSubject: cfg.Stream.Subject,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("durable consumer %s on stream %s: %w", cfg.Durable, stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(cfg.Batch))
	if err != nil {
		return err
	}
	// commitCtx ends DrainTimeout after ctx: a commit blocked on a full
	// queue then gives up, and its message is delivered again later.
	commitCtx, stopCommits := context.WithCancel(context.Background())
	defer stopCommits()
	go func() {
		select {
		case <-ctx.Done():
		case <-commitCtx.Done():
			return
		}
		it.Drain()
		select {
		case <-time.After(cfg.DrainTimeout):
			stopCommits()
			it.Stop()
		case <-commitCtx.Done():
		}
	}()

	c := &inRelay{cfg: cfg, stats: cfg.Stats, logf: logf, seen: newRecent(cfg.Remember)}
	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("consumer %s: %w", cfg.Durable, err)
			}
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				it.Stop()
				return fmt.Errorf("durable consumer %s on stream %s is gone: %w", cfg.Durable, stream, err)
			}
			logf("pulling from %s: %v", stream, err)
			continue
		}
		if err := c.commit(commitCtx, msg); err != nil {
			if commitCtx.Err() != nil {
				return nil
			}
			it.Stop()
			return err
		}
	}
}

type inRelay struct {
	cfg   InConfig
	stats *Stats
	logf  func(string, ...any)
	seen  *recent
}

func (c *inRelay) commit(ctx context.Context, msg jetstream.Msg) error {
	c.stats.Received.Add(1)
	md, err := msg.Metadata()
	if err != nil {
		return fmt.Errorf("message without JetStream metadata: %w", err)
	}
	key := msg.Headers().Get(jetstream.MsgIDHeader)
	if key == "" {
		key = "seq:" + strconv.FormatUint(md.Sequence.Stream, 10)
	}
	if c.seen.has(key) {
		c.stats.Duplicates.Add(1)
		c.ack(msg)
		return nil
	}
	if md.NumDelivered > 1 {
		c.stats.Redelivered.Add(1)
	}
	data := msg.Data()
	if len(data) > c.cfg.Sink.MaxMessage() || len(data) == 0 {
		return fmt.Errorf("%w: stream sequence %d has %d bytes, the local queue takes 1 to %d; it stays in JetStream",
			ErrLocalTooSmall, md.Sequence.Stream, len(data), c.cfg.Sink.MaxMessage())
	}
	err = c.cfg.Sink.TrySend(data)
	if err == localq.ErrFull {
		c.stats.Full.Add(1)
		err = c.sendBlocking(ctx, msg, data)
	}
	if err != nil {
		return err
	}
	c.seen.add(key)
	c.stats.Committed.Add(1)
	c.ack(msg)
	return nil
}

// sendBlocking waits for room in the local queue, telling JetStream every
// AckWait/3 that the message is in progress, so it is not delivered again
// while it waits.
func (c *inRelay) sendBlocking(ctx context.Context, msg jetstream.Msg, data []byte) error {
	for {
		sctx, cancel := context.WithTimeout(ctx, c.cfg.AckWait/3)
		err := c.cfg.Sink.Send(sctx, data)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		if err := msg.InProgress(); err != nil {
			c.logf("in-progress signal: %v", err)
		}
	}
}

func (c *inRelay) ack(msg jetstream.Msg) {
	// Acknowledgements are not confirmed (DoubleAck would cost a round
	// trip per message); a lost one makes JetStream deliver the message
	// again, which seen drops while it remembers the id.
	if err := msg.Ack(); err != nil {
		c.logf("acknowledging: %v", err)
		return
	}
	c.stats.Acked.Add(1)
}

// recent is a set of the last n keys added.
type recent struct {
	set  map[string]struct{}
	ring []string
	next int
}

func newRecent(n int) *recent {
	return &recent{set: make(map[string]struct{}, n), ring: make([]string, n)}
}

func (r *recent) has(k string) bool { _, ok := r.set[k]; return ok }

func (r *recent) add(k string) {
	if old := r.ring[r.next]; old != "" {
		delete(r.set, old)
	}
	r.ring[r.next] = k
	r.set[k] = struct{}{}
	r.next = (r.next + 1) % len(r.ring)
}
