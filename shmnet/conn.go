package shmnet

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/spsc"
)

// Conn is a connection over a pair of SPSC queues: a net.Conn. Its methods
// are safe for concurrent use by multiple goroutines; concurrent Reads take
// turns, as do concurrent Writes, while a Read and a Write proceed in
// parallel.
type Conn struct {
	local, remote *Addr
	rd, wd        deadline
	r             reader
	w             writer
	closed        atomic.Bool
}

// reader is the receiving direction.
type reader struct {
	mu sync.Mutex // serializes Read and WriteTo
	m  mapping
	c  *spsc.Consumer
	// rest is the unread tail of the last message peeked: it stays in the
	// ring, not released, until a Read has copied it. Guarded by mu.
	rest []byte
}

// writer is the sending direction.
type writer struct {
	mu  sync.Mutex // serializes Write
	m   mapping
	p   *spsc.Producer
	max int // largest message the queue takes
}

func newConn(in *spsc.Queue, c *spsc.Consumer, out *spsc.Queue, p *spsc.Producer, local, remote *Addr) *Conn {
	cn := &Conn{local: local, remote: remote}
	cn.rd.init()
	cn.wd.init()
	cn.r.m.q, cn.r.c = in, c
	cn.w.m.q, cn.w.p, cn.w.max = out, p, out.MaxMessage()
	return cn
}

// peerCheckPeriod is how often a Write blocked on a full ring checks
// whether the reader has closed its end. (A reader that died is noticed by
// the queue itself, at the same period.)
const peerCheckPeriod = 100 * time.Millisecond

// Read reads up to len(b) bytes: the rest of a message a previous Read
// left, or the next messages, waiting for one while there is none. It
// returns io.EOF once the peer has closed its writing side and everything
// it wrote has been read.
func (c *Conn) Read(b []byte) (int, error) {
	r := &c.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.m.acquire() {
		return 0, c.opError("read", net.ErrClosed)
	}
	defer r.m.release()
	ctx := c.rd.context()
	if ctx.Err() != nil {
		return 0, c.opError("read", os.ErrDeadlineExceeded)
	}
	if len(b) == 0 {
		return 0, nil
	}
	n, whole := 0, 0 // bytes copied; messages copied whole, not yet released
	if len(r.rest) > 0 {
		n = copy(b, r.rest)
		if r.rest = r.rest[n:]; len(r.rest) > 0 {
			return n, nil
		}
		whole = 1
	}
	for n < len(b) {
		var m []byte
		var err error
		if n == 0 {
			m, err = r.c.PeekWait(ctx)
		} else {
			m, err = r.c.Peek()
		}
		if err != nil {
			if n > 0 {
				break // ErrEmpty, or an error that the next Read reports
			}
			return 0, c.ioError("read", err, ctx)
		}
		k := copy(b[n:], m)
		n += k
		if k < len(m) {
			if whole > 0 {
				m = r.releaseWhole(whole)
			}
			if len(m) >= k { // else closed meanwhile, or the peer rewrote the ring
				r.rest = m[k:]
			}
			return n, nil
		}
		whole++
	}
	if whole > 0 {
		r.c.Release()
	}
	return n, nil
}

// releaseWhole releases the first whole messages peeked since the last
// release, keeping the one peeked after them (which Read copied only in
// part), and returns that one again. Release frees everything peeked, so
// it rewinds and peeks the whole ones again: cheaper than releasing after
// every message, which stores to the cursor line the producer reads.
func (r *reader) releaseWhole(whole int) []byte {
	r.c.Rewind()
	for range whole {
		r.c.Peek()
	}
	r.c.Release()
	m, _ := r.c.Peek()
	return m
}

// WriteTo writes the stream to w until io.EOF, handing w slices of the
// ring rather than copying them into a buffer first, and is what io.Copy
// uses. Read deadlines apply to its waits. Like Read, it holds the reading
// side: Reads in other goroutines wait until it returns.
func (c *Conn) WriteTo(w io.Writer) (int64, error) {
	r := &c.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.m.acquire() {
		return 0, c.opError("read", net.ErrClosed)
	}
	defer r.m.release()
	ctx := c.rd.context()
	var total int64
	for {
		if ctx.Err() != nil {
			return total, c.opError("read", os.ErrDeadlineExceeded)
		}
		m := r.rest
		if len(m) == 0 {
			var err error
			if m, err = r.c.PeekWait(ctx); err == io.EOF {
				return total, nil
			} else if err != nil {
				return total, c.ioError("read", err, ctx)
			}
		}
		k, err := w.Write(m)
		total += int64(k)
		if k < len(m) {
			r.rest = m[k:]
			if err == nil {
				err = io.ErrShortWrite
			}
			return total, err
		}
		r.rest = nil
		r.c.Release()
		if err != nil {
			return total, err
		}
	}
}

// Write writes b as messages of at most the queue's MaxMessage bytes,
// waiting while the ring is full. On error it returns how many bytes of b
// went into messages that were sent.
func (c *Conn) Write(b []byte) (int, error) {
	w := &c.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.m.acquire() {
		return 0, c.opError("write", net.ErrClosed)
	}
	defer w.m.release()
	ctx := c.wd.context()
	if ctx.Err() != nil {
		return 0, c.opError("write", os.ErrDeadlineExceeded)
	}
	n := 0
	for n < len(b) {
		msg := b[n:min(len(b), n+w.max)]
		if err := w.send(ctx, msg); err != nil {
			return n, c.ioError("write", err, ctx)
		}
		n += len(msg)
	}
	return n, nil
}

func (w *writer) send(ctx context.Context, msg []byte) error {
	err := w.p.TrySend(msg)
	for err == spsc.ErrFull {
		// Wait in slices: a reader that closed cleanly is not dead, and
		// the queue would wait for it to come back.
		slice, cancel := context.WithTimeout(ctx, peerCheckPeriod)
		err = w.p.Send(slice, msg)
		expired := slice.Err() == context.DeadlineExceeded
		cancel()
		if err == nil || !expired || ctx.Err() != nil {
			return err
		}
		if err = w.peerGone(); err == nil {
			err = spsc.ErrFull
		}
	}
	return err
}

// peerGone reports whether the reader at the other end has closed or died.
func (w *writer) peerGone() error {
	info, err := w.m.q.Segment().Entry(layout.SPSCConsumerEntry)
	switch {
	case err != nil:
		return err
	case info.Dead():
		return ErrPeerDead
	case info.State != layout.EntryAttached:
		return ErrPeerClosed
	}
	return nil
}

// ioError turns an error of a queue call into the error of a net.Conn
// call.
func (c *Conn) ioError(op string, err error, ctx context.Context) error {
	switch {
	case err == io.EOF:
		return io.EOF
	case errors.Is(err, spsc.ErrClosed):
		err = net.ErrClosed
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		// The deadline's context, or a wait slice derived from it that
		// ran out at the same moment.
		err = os.ErrDeadlineExceeded
	}
	return c.opError(op, err)
}

func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: Network, Source: c.local, Addr: c.remote, Err: err}
}

// Close closes both directions. Calls blocked in other goroutines return
// an error matching net.ErrClosed; the peer reads what was written before
// Close, then io.EOF. The queues' memory is unmapped here, or by a call
// still using it (a WriteTo in its writer) when that returns.
func (c *Conn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return c.opError("close", net.ErrClosed)
	}
	c.closeRead()
	c.closeWrite()
	c.rd.stop()
	c.wd.stop()
	return nil
}

// CloseRead closes the reading side: Reads fail with net.ErrClosed, and
// the peer's Writes fail with ErrPeerClosed once the ring is full.
func (c *Conn) CloseRead() error {
	if c.closed.Load() || !c.closeRead() {
		return c.opError("close", net.ErrClosed)
	}
	return nil
}

// CloseWrite closes the writing side: the peer reads what was written,
// then io.EOF.
func (c *Conn) CloseWrite() error {
	if c.closed.Load() || !c.closeWrite() {
		return c.opError("close", net.ErrClosed)
	}
	return nil
}

func (c *Conn) closeRead() bool {
	if c.r.m.closed() {
		return false
	}
	c.r.c.Close() // unblocks a waiting Read or WriteTo
	return c.r.m.close()
}

func (c *Conn) closeWrite() bool {
	if c.w.m.closed() {
		return false
	}
	c.w.p.Close() // detaches: the peer's Read returns io.EOF once drained
	return c.w.m.close()
}

// LocalAddr returns this end's address: the listener's name and this
// process's pid.
func (c *Conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr returns the other end's address: the listener's name and the
// peer's pid.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	if c.closed.Load() {
		return c.opError("set", net.ErrClosed)
	}
	c.rd.set(t)
	c.wd.set(t)
	return nil
}

// SetReadDeadline sets the deadline of Read and WriteTo, including calls
// blocked now; the zero time removes it.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if c.closed.Load() {
		return c.opError("set", net.ErrClosed)
	}
	c.rd.set(t)
	return nil
}

// SetWriteDeadline sets the deadline of Write, including calls blocked
// now; the zero time removes it.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	if c.closed.Load() {
		return c.opError("set", net.ErrClosed)
	}
	c.wd.set(t)
	return nil
}

var (
	_ net.Conn    = (*Conn)(nil)
	_ io.WriterTo = (*Conn)(nil)
)
