package notify

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// PollConfig tunes a Poll backend. Zero fields take the defaults.
type PollConfig struct {
	Spins    int           // checks of the word, yielding the P between them, before sleeping (default 64)
	MinSleep time.Duration // first sleep (default 10µs)
	MaxSleep time.Duration // cap of the doubling sleep (default 1ms)
}

// Poll is a Backend that needs no kernel object: Wait re-reads the word,
// first spinning (yielding the processor between reads), then sleeping for a
// doubling interval capped at MaxSleep. Wake does nothing, so a change to the
// word is seen at most MaxSleep late. Wait selects on ctx.Done() while it
// sleeps, so cancellation is seen at once.
type Poll struct {
	stats
	cfg       PollConfig
	closeOnce sync.Once
	closed    chan struct{} // closed by Close
}

// NewPoll returns a polling backend.
func NewPoll(cfg PollConfig) *Poll {
	if cfg.Spins <= 0 {
		cfg.Spins = 64
	}
	if cfg.MinSleep <= 0 {
		cfg.MinSleep = 10 * time.Microsecond
	}
	if cfg.MaxSleep <= 0 {
		cfg.MaxSleep = time.Millisecond
	}
	cfg.MinSleep = min(cfg.MinSleep, cfg.MaxSleep)
	return &Poll{cfg: cfg, closed: make(chan struct{})}
}

// Wait implements Backend. It returns only when the word differs from old,
// ctx is done or the backend is closed.
func (p *Poll) Wait(ctx context.Context, word *atomic.Uint32, old uint32) error {
	if word.Load() != old {
		return nil
	}
	p.waits.Add(1)
	for range p.cfg.Spins {
		runtime.Gosched()
		if word.Load() != old {
			return nil
		}
	}
	sleep := p.cfg.MinSleep
	t := time.NewTimer(sleep)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctxErr(ctx)
		case <-p.closed:
			return fmt.Errorf("notify: poll wait: %w", ErrClosed)
		case <-t.C:
		}
		if word.Load() != old {
			return nil
		}
		sleep = min(2*sleep, p.cfg.MaxSleep)
		t.Reset(sleep)
	}
}

// Wake implements Backend; it makes no system call.
func (p *Poll) Wake(word *atomic.Uint32, n int) error {
	if n > 0 {
		p.wakes.Add(1)
	}
	return nil
}

// Close implements Backend; waiters return ErrClosed.
func (p *Poll) Close() error {
	p.closeOnce.Do(func() { close(p.closed) })
	return nil
}
