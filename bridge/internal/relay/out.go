package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shmq/shmq/bridge/internal/jsconn"
	"github.com/shmq/shmq/bridge/internal/localq"
)

// ErrMessageTooLarge: the stream refuses a message for its size; it stays
// in the local queue.
var ErrMessageTooLarge = errors.New("message too large for the stream")

// OutConfig configures Out.
type OutConfig struct {
	Source localq.Source
	Conn   *nats.Conn
	Stream jsconn.StreamOptions
	// Window bounds the messages published and not yet acknowledged; they
	// are all held in the local queue. 0 means 1024.
	Window int
	// AckTimeout is how long a publish waits for its acknowledgement before
	// it is sent again. 0 means 5 s.
	AckTimeout time.Duration
	// DrainTimeout bounds the wait for outstanding acknowledgements once
	// ctx ends. 0 means 10 s.
	DrainTimeout time.Duration
	Stats        *Stats
	Logf         func(format string, args ...any)
}

// outEntry is one message held in the local queue and published.
type outEntry struct {
	id       string
	buf      []byte
	acked    bool
	sent     time.Time // last publish; zero while a resend waits for retryAt
	retryAt  time.Time
	attempts int
}

// pubResult is the outcome of one publish, from nats.go's callbacks.
type pubResult struct {
	id  string
	ack *jetstream.PubAck
	err error
}

// outRelay is Out's state, owned by its goroutine.
type outRelay struct {
	cfg     OutConfig
	js      jetstream.JetStream
	results chan pubResult
	window  []*outEntry // held messages, in queue order
	byID    map[string]*outEntry
	free    []*outEntry
	stats   *Stats
	logf    func(string, ...any)

	lastStreamCheck time.Time
}

// Out reads messages from cfg.Source and publishes each to JetStream on
// cfg.Stream.Subject with its message id, releasing a message from the local
// queue only after JetStream acknowledged it. Up to cfg.Window messages are
// in flight; acknowledgements may come back in any order, and the
// acknowledged prefix of the held messages is released (all of them, for a
// queue kind that can release only everything at once). A failed or
// timed-out publish is sent again with the same id after a jittered
// back-off, so JetStream stores it once. When ctx ends, Out stops reading,
// waits up to cfg.DrainTimeout for the acknowledgements outstanding,
// releases what was acknowledged and returns nil; what is not acknowledged
// stays in the queue.
func Out(ctx context.Context, cfg OutConfig) error {
	if cfg.Window <= 0 {
		cfg.Window = 1024
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 5 * time.Second
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 10 * time.Second
	}
	if cfg.Stats == nil {
		cfg.Stats = new(Stats)
	}
	r := &outRelay{
		cfg:   cfg,
		byID:  make(map[string]*outEntry, cfg.Window),
		stats: cfg.Stats,
		logf:  cfg.Logf,
		// Every publish has exactly one outcome, and at most Window are
		// outstanding, so the callbacks never block on a full channel.
		results: make(chan pubResult, cfg.Window+64),
	}
	if r.logf == nil {
		r.logf = func(string, ...any) {}
	}
	send := func(m *nats.Msg, ack *jetstream.PubAck, err error) {
		select {
		case r.results <- pubResult{id: m.Header.Get(jetstream.MsgIDHeader), ack: ack, err: err}:
		default: // only after Out returned; the entry's own timeout covers the rest
		}
	}
	js, err := jetstream.New(cfg.Conn,
		jetstream.WithPublishAsyncMaxPending(cfg.Window+64),
		jetstream.WithPublishAsyncTimeout(cfg.AckTimeout),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, m *nats.Msg, ack *jetstream.PubAck) { send(m, ack, nil) }),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) { send(m, nil, err) }),
	)
	if err != nil {
		return err
	}
	r.js = js
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = jsconn.EnsureStream(sctx, js, cfg.Stream)
	cancel()
	if err != nil {
		return err
	}
	return r.run(ctx)
}

func (r *outRelay) run(ctx context.Context) error {
	src := r.cfg.Source
	poll := time.NewTimer(time.Hour)
	defer poll.Stop()
	var deadline <-chan time.Time // set once draining
	draining := false
	for {
		if err := r.release(); err != nil {
			return err
		}
		if draining && len(r.window) == 0 {
			return nil
		}
		if !draining {
			if err := ctx.Err(); err != nil {
				draining = true
				deadline = time.After(r.cfg.DrainTimeout)
				continue
			}
			if len(r.window) == 0 {
				// Nothing held: park on the queue until a message comes.
				if err := src.Wait(ctx); err != nil {
					if ctx.Err() != nil {
						continue
					}
					return err
				}
			}
			if err := r.fill(); err != nil {
				return err
			}
		}
		if err := r.resendDue(); err != nil {
			return err
		}
		// Wait for an outcome; while the window has room, look at the
		// queue again soon, as the consumer APIs cannot wake us for both.
		wait := time.Hour
		if !draining && len(r.window) < r.cfg.Window {
			wait = 500 * time.Microsecond
		}
		if next := r.nextRetry(); !next.IsZero() {
			wait = min(wait, max(time.Until(next), 0))
		}
		poll.Reset(wait)
		done := ctx.Done()
		if draining {
			done = nil
		}
		select {
		case res := <-r.results:
			if err := r.outcome(res); err != nil {
				return err
			}
			// Take every outcome already there before releasing.
			for more := true; more; {
				select {
				case res := <-r.results:
					if err := r.outcome(res); err != nil {
						return err
					}
				default:
					more = false
				}
			}
		case <-poll.C:
			r.expire()
		case <-done:
			// Noticed at the top of the loop.
		case <-deadline:
			r.logf("drain: %d message(s) not acknowledged in %v stay in the queue", r.unacked(), r.cfg.DrainTimeout)
			return r.release()
		}
	}
}

// fill takes messages from the queue and publishes them while the window
// has room.
func (r *outRelay) fill() error {
	src := r.cfg.Source
	for len(r.window) < r.cfg.Window {
		e := r.newEntry()
		buf, id, err := src.Next(e.buf)
		if err != nil {
			r.free = append(r.free, e)
			if err == localq.ErrEmpty {
				break
			}
			return err
		}
		e.buf, e.id = buf, id.String()
		r.window = append(r.window, e)
		r.byID[e.id] = e
		r.stats.InFlight.Add(1)
		r.stats.Published.Add(1)
		if err := r.publish(e); err != nil {
			return err
		}
	}
	r.stats.Redelivered.Store(src.Redelivered())
	return nil
}

func (r *outRelay) newEntry() *outEntry {
	if n := len(r.free); n > 0 {
		e := r.free[n-1]
		r.free = r.free[:n-1]
		*e = outEntry{buf: e.buf[:0]}
		return e
	}
	return &outEntry{}
}

// publish sends e asynchronously; a synchronous failure (connection closed,
// reconnect buffer full) schedules a resend.
func (r *outRelay) publish(e *outEntry) error {
	m := &nats.Msg{Subject: r.cfg.Stream.Subject, Data: e.buf, Header: nats.Header{jetstream.MsgIDHeader: []string{e.id}}}
	e.attempts++
	if _, err := r.js.PublishMsgAsync(m); err != nil {
		if errors.Is(err, nats.ErrConnectionClosed) {
			return err
		}
		r.retryLater(e, err)
		return nil
	}
	e.sent, e.retryAt = time.Now(), time.Time{}
	return nil
}

func (r *outRelay) retryLater(e *outEntry, err error) {
	e.sent = time.Time{}
	e.retryAt = time.Now().Add(jsconn.Backoff(e.attempts, 20*time.Millisecond, 2*time.Second))
	if e.attempts == 1 || e.attempts%20 == 0 {
		r.logf("publish of %s failed (attempt %d): %v; sending again", e.id, e.attempts, err)
	}
}

// outcome records the result of one publish.
func (r *outRelay) outcome(res pubResult) error {
	e := r.byID[res.id]
	if e == nil || e.acked || e.sent.IsZero() {
		return nil // an outcome of a publish already given up on (expire)
	}
	if res.err == nil {
		e.acked = true
		r.stats.Acked.Add(1)
		r.stats.InFlight.Add(-1)
		if res.ack.Duplicate {
			r.stats.Duplicates.Add(1)
		}
		return nil
	}
	var apiErr *jetstream.APIError
	if errors.As(res.err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum {
		return fmt.Errorf("%w: message %s of %d bytes: %v (it stays in the local queue)", ErrMessageTooLarge, e.id, len(e.buf), res.err)
	}
	if errors.Is(res.err, jetstream.ErrNoStreamResponse) || errors.Is(res.err, nats.ErrNoResponders) {
		r.checkStream()
	}
	r.retryLater(e, res.err)
	return nil
}

// checkStream makes sure a stream still captures the subject, creating it
// again if allowed, at most once a second.
func (r *outRelay) checkStream() {
	if time.Since(r.lastStreamCheck) < time.Second {
		return
	}
	r.lastStreamCheck = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := jsconn.EnsureStream(ctx, r.js, r.cfg.Stream); err != nil {
		r.logf("no stream answers for subject %q: %v", r.cfg.Stream.Subject, err)
	}
}

// expire treats publishes whose outcome is overdue (lost by the client) as
// failed.
func (r *outRelay) expire() {
	limit := 2*r.cfg.AckTimeout + time.Second
	now := time.Now()
	for _, e := range r.window {
		if !e.acked && !e.sent.IsZero() && now.Sub(e.sent) > limit {
			r.retryLater(e, errors.New("no acknowledgement"))
		}
	}
}

// resendDue publishes again the entries whose back-off has passed.
func (r *outRelay) resendDue() error {
	now := time.Now()
	for _, e := range r.window {
		if !e.acked && e.sent.IsZero() && !e.retryAt.After(now) {
			r.stats.Resent.Add(1)
			if err := r.publish(e); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *outRelay) nextRetry() time.Time {
	var next time.Time
	for _, e := range r.window {
		if !e.acked && e.sent.IsZero() && (next.IsZero() || e.retryAt.Before(next)) {
			next = e.retryAt
		}
	}
	return next
}

func (r *outRelay) unacked() int {
	n := 0
	for _, e := range r.window {
		if !e.acked {
			n++
		}
	}
	return n
}

// release frees the acknowledged prefix of the held messages: all of it
// when everything is acknowledged, otherwise once it is a quarter of the
// window (SPSC re-peeks the rest, so freeing small prefixes costs).
func (r *outRelay) release() error {
	n := 0
	for n < len(r.window) && r.window[n].acked {
		n++
	}
	if n == 0 || n < len(r.window) && n < r.cfg.Window/4 {
		return nil
	}
	ok, err := r.cfg.Source.ReleasePrefix(n)
	if err != nil || !ok {
		return err
	}
	for _, e := range r.window[:n] {
		delete(r.byID, e.id)
		r.free = append(r.free, e)
	}
	r.window = append(r.window[:0], r.window[n:]...)
	return nil
}
