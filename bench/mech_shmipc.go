package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	shmipc "github.com/cloudwego/shmipc-go"
)

// shmipcMechanism measures CloudWeGo's shmipc-go, the leading Go peer: data
// in a shared-memory buffer pool, notifications over a Unix socket.
//
// Both processes are configured as shmipc-go's own benchmark
// (bench_test.go: benchmarkConfig, newBenchmarkClientServer) and its
// best-practice examples (example/best_practice: runtime.GOMAXPROCS(1), a
// SessionManager with one session on the client, Server on the server) do.
// When its pool runs out, shmipc-go does not block the writer: it sends the
// message over the Unix socket instead. Both sides read shmipc-go's own
// counters after each run, and the path check rejects a run in which any
// message took that fallback.
//
// shmipc streams only become visible to the server once the client writes,
// and the parent always speaks first, so the parent is the shmipc client and
// the child serves on a listener the parent created and handed down.
type shmipcMechanism struct {
	// tune, when set, alters the parent's (the client's, which owns the
	// pool) configuration after the benchmark's settings; tests use it to
	// starve the pool and see the fallback rejected.
	tune func(*shmipc.Config)
}

const shmipcHello = 0x5a

// Settings of shmipc-go's benchmark and examples.
const (
	shmipcPool       = 256 << 20 // benchmarkConfig's ShareMemoryBufferCap
	shmipcLargePool  = 512 << 20 // newBenchmarkClientServer, for messages of 4 MiB and more
	shmipcQueueCap   = 65535     // benchmarkConfig's QueueCap
	shmipcSliceExtra = 256       // newBenchmarkClientServer: slices of the message size + 256 B
	shmipcGOMAXPROCS = 1         // example/best_practice client and server
)

func (shmipcMechanism) Name() string         { return "shmipc-go" }
func (shmipcMechanism) Check(size int) error { return nil }

func init() {
	// shmipc logs to stdout, which carries our table; keep errors only.
	shmipc.SetLogLevel(4)
}

// shmipcConfig is the session configuration both processes use for
// messages of size bytes: shmipc-go's benchmarkConfig and the slice sizes
// of its newBenchmarkClientServer, with files under dir.
func shmipcConfig(size int, dir string) *shmipc.Config {
	c := shmipc.DefaultConfig()
	c.QueueCap = shmipcQueueCap
	c.ConnectionWriteTimeout = time.Second
	c.ShareMemoryBufferCap = shmipcPool
	if size >= 4<<20 {
		c.ShareMemoryBufferCap = shmipcLargePool
	}
	c.MemMapType = shmipc.MemMapTypeMemFd
	c.BufferSliceSizes = []*shmipc.SizePercentPair{
		{Size: uint32(size + shmipcSliceExtra), Percent: 70},
		{Size: 16 << 10, Percent: 20},
		{Size: 64 << 10, Percent: 10},
	}
	c.ShareMemoryPathPrefix = filepath.Join(dir, "buf")
	c.QueuePath = filepath.Join(dir, "queue")
	c.LogOutput = io.Discard // teardown "connection reset" noise; errors surface through the API
	// The server waits this long for the client, which first sets up its
	// whole pool: seconds for 256 MiB on a loaded machine. The best-practice
	// client allows 100 s; the run's own timeout is the real bound.
	c.InitializeTimeout = 20 * time.Second
	return c
}

func (m shmipcMechanism) Setup(size int) (*Link, error) {
	dir, err := os.MkdirTemp("", "shmq-bench-shmipc-")
	if err != nil {
		return nil, fmt.Errorf("shmipc dir: %w", err)
	}
	sock := filepath.Join(dir, "sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("listen %s: %w", sock, err)
	}
	ln.SetUnlinkOnClose(false) // the child serves on this path; Cleanup removes it
	lnFile, err := ln.File()
	ln.Close()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("listener file: %w", err)
	}
	conf := shmipcConfig(size, dir)
	if m.tune != nil {
		m.tune(conf)
	}
	return &Link{
		ChildArg:   dir,
		ChildFiles: []*os.File{lnFile},
		OpenParent: func() (Conn, error) {
			smConf := shmipc.DefaultSessionManagerConfig()
			smConf.Config = conf
			smConf.Network, smConf.Address = "unix", sock
			smConf.SessionNum = 1 // example/best_practice/shmipc_client
			sm, err := shmipc.NewSessionManager(smConf)
			if err != nil {
				return nil, fmt.Errorf("shmipc session: %w", err)
			}
			stream, err := sm.GetStream()
			if err != nil {
				sm.Close()
				return nil, fmt.Errorf("shmipc stream: %w", err)
			}
			// The client releases what it read and reuses the slice for its
			// next write, as the benchmark's client loop does.
			c := &shmipcConn{stream: stream, reuse: true, window: shmipcWindow(conf), release: func() { sm.PutBack(stream); sm.Close() }}
			// The server sees the stream only once data arrives, so say hello.
			if err := c.Send([]byte{shmipcHello}); err != nil {
				c.Close()
				return nil, err
			}
			return c, nil
		},
		Cleanup: func() { os.RemoveAll(dir) },
		Config: []Setting{
			{Name: "buffer pool", Value: sizeSetting(int(conf.ShareMemoryBufferCap)) + " in a memfd (MemMapTypeMemFd)",
				Why: "shmipc-go's own benchmark (benchmarkConfig); the default 32 MiB of 8 KiB slices runs out about 2,400 " +
					"messages ahead of the reader, and the rest go over the socket"},
			{Name: "buffer slices", Value: "message size + 256 B (70%), 16 KiB (20%), 64 KiB (10%)",
				Why: "shmipc-go's newBenchmarkClientServer: one slice holds one message"},
			{Name: "IO queue", Value: fmt.Sprintf("QueueCap %d, ConnectionWriteTimeout 1s", shmipcQueueCap), Why: "shmipc-go's benchmarkConfig"},
			{Name: "sessions", Value: "client: SessionManager, SessionNum 1, one stream; server: shmipc.Server, AcceptStream",
				Why: "example/best_practice shmipc_client and shmipc_server"},
			{Name: "writer window", Value: sizeSetting(int(shmipcWindow(conf))) + " unreleased",
				Why: fmt.Sprintf("shmipc-go has no backpressure: with its pool empty a writer sends over the socket, with its IO queue full "+
					"Flush fails after 100 ms. So Send checks the pool every %d messages and waits while more than half of it, "+
					"or half the IO queue's worth of slices, is unreleased", shmipcWindowCheck)},
			{Name: "I/O", Value: "BufferWriter().WriteBytes + Flush(false); BufferReader().ReadBytes + copy out, then ReleasePreviousRead (client: ReleaseReadAndReuse)",
				Why: "the synchronous API of the examples; the copy out matches what every other row's receiver does"},
		},
		GOMAXPROCS: shmipcGOMAXPROCS,
		GOMAXPROCSWhy: "example/best_practice's client and server call runtime.GOMAXPROCS(1): the hand-off from shmipc-go's " +
			"epoll goroutine to the reading goroutine is then a switch on one thread, not a wake-up of another",
		CheckPath: func(r pathRun) (string, error) { return checkShmipcPath(r, int(conf.ShareMemoryBufferCap)) },
	}, nil
}

func (shmipcMechanism) Attach(dir string, files []*os.File, size int) (Conn, error) {
	if len(files) != 1 {
		return nil, fmt.Errorf("got %d inherited files, want 1", len(files))
	}
	ln, err := net.FileListener(files[0])
	files[0].Close()
	if err != nil {
		return nil, fmt.Errorf("inherited listener: %w", err)
	}
	conn, err := ln.Accept()
	ln.Close()
	if err != nil {
		return nil, fmt.Errorf("accept: %w", err)
	}
	conf := shmipcConfig(size, dir)
	session, err := shmipc.Server(conn, conf)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("shmipc server: %w", err)
	}
	stream, err := session.AcceptStream()
	if err != nil {
		session.Close()
		return nil, fmt.Errorf("shmipc accept stream: %w", err)
	}
	c := &shmipcConn{stream: stream, window: shmipcWindow(conf), release: func() { stream.Close(); session.Close() }}
	hello := make([]byte, 1)
	if err := c.Recv(hello); err != nil || hello[0] != shmipcHello {
		c.Close()
		return nil, fmt.Errorf("shmipc hello %v: %w", hello, err)
	}
	return c, nil
}

// checkShmipcPath rejects a run in which shmipc-go sent any message over
// its Unix socket instead of the shared-memory pool, or failed to allocate
// from the pool, by shmipc-go's own counters on both sides. It also checks
// that the pool has the configured size and that the bytes shmipc-go
// counted are the harness's (plus the one-byte hello).
func checkShmipcPath(r pathRun, pool int) (string, error) {
	var c counterChecks
	parent, child := r.sides()[0], r.sides()[1]
	for _, s := range r.sides() {
		c.equal(s, "fallback_writes", 0)
		c.equal(s, "fallback_reads", 0)
		c.equal(s, "alloc_shm_errors", 0)
		c.equal(s, "event_conn_errors", 0)
	}
	// Flush counts a message's bytes before it finds the IO queue full, so
	// a message written again is counted twice.
	resent := func(s side) int64 { return s.pc["queue_full_resends"] * int64(r.Size) }
	c.equal(parent, "out_bytes", int64(r.ToChild*r.Size+1)+resent(parent))
	c.equal(child, "in_bytes", int64(r.ToChild*r.Size+1))
	c.equal(child, "out_bytes", int64(r.ToParent*r.Size)+resent(child))
	c.equal(parent, "in_bytes", int64(r.ToParent*r.Size))
	// The client owns the pool; a smaller one means the configuration did
	// not take. Slice headers take a little of it.
	if got := parent.pc["pool_bytes"]; got < int64(pool)*9/10 || got > int64(pool) {
		c.failf("parent's pool holds %d bytes, want about %d", got, pool)
	}
	wakes := parent.pc["sync_events_sent"] + child.pc["sync_events_sent"]
	note := fmt.Sprintf("shared memory, 0 fallbacks, %s socket wakes/msg", perMessage(wakes, r.ToChild))
	if held := parent.pc["window_waits"] + child.pc["window_waits"]; held > 0 {
		note += fmt.Sprintf(", writer held %d×", held)
	}
	if n := parent.pc["queue_full_resends"] + child.pc["queue_full_resends"]; n > 0 {
		note += fmt.Sprintf(", %d× IO queue full", n)
	}
	if n := parent.pc["fallback_writes"] + child.pc["fallback_writes"]; n > 0 {
		note = fmt.Sprintf("%d of %d messages fell back to the Unix socket", n, r.ToChild+r.ToParent)
	}
	return note, c.err()
}

// shmipcConn copies a message into the stream's shared-memory buffer and
// flushes it; it receives by copying out of the pool and releasing the
// slices.
//
// shmipc-go has no backpressure: a writer whose pool is empty sends over
// the Unix socket instead, and one whose IO queue stays full gets
// ErrQueueFull after 100 ms of retries. A streaming writer has to hold
// itself back, so Send checks the pool every shmipcWindowCheck messages and
// waits while more than window bytes of it are in use (half the pool, or
// half the IO queue's worth of slices if less). It engages only when the
// reader is tens of thousands of messages behind, and is counted.
type shmipcConn struct {
	stream  *shmipc.Stream
	reuse   bool // release reads with ReleaseReadAndReuse (the client's ping-pong loop)
	release func()
	window  uint64 // pool bytes in use above which Send waits

	// Counters for the path check, owned by the sending goroutine.
	sends     int64
	queueFull int64 // sends written again after ErrQueueFull
	held      int64 // waits for the reader to release pool space
}

// shmipcWindowCheck is how many sends pass between two pool checks.
const shmipcWindowCheck = 64

// shmipcWindow returns the writer's window for messages of size bytes in
// a session configured by conf.
func shmipcWindow(conf *shmipc.Config) uint64 {
	return min(uint64(conf.ShareMemoryBufferCap)/2, uint64(conf.QueueCap)/2*uint64(conf.BufferSliceSizes[0].Size))
}

func (c *shmipcConn) Send(msg []byte) error {
	if c.sends++; c.sends%shmipcWindowCheck == 0 {
		c.waitForPool()
	}
	for {
		if _, err := c.stream.BufferWriter().WriteBytes(msg); err != nil {
			return fmt.Errorf("shmipc write: %w", err)
		}
		err := c.stream.Flush(false)
		if errors.Is(err, shmipc.ErrQueueFull) {
			// Flush dropped the buffer after retrying for 100 ms; the
			// benchmark's mustWrite retries too. Write it again.
			c.queueFull++
			continue
		}
		if err != nil {
			return fmt.Errorf("shmipc flush: %w", err)
		}
		return nil
	}
}

// waitForPool holds the writer while more than its window of the pool is
// in use, that is sent and not yet released by the reader.
func (c *shmipcConn) waitForPool() {
	for {
		_, _, shm := c.stream.Session().GetMetrics()
		if shm.AllInUsedShareMemoryInBytes <= c.window {
			return
		}
		c.held++
		time.Sleep(50 * time.Microsecond)
	}
}

func (c *shmipcConn) Recv(buf []byte) error {
	r := c.stream.BufferReader()
	data, err := r.ReadBytes(len(buf))
	if err != nil {
		return fmt.Errorf("shmipc read: %w", err)
	}
	copy(buf, data)
	if c.reuse {
		c.stream.ReleaseReadAndReuse()
	} else {
		r.ReleasePreviousRead()
	}
	return nil
}

// PathCounters reports shmipc-go's own session metrics: fallbacks to the
// socket, pool allocation failures, the notifications sent over the
// socket, and the bytes it moved.
func (c *shmipcConn) PathCounters() pathCounters {
	perf, stab, shm := c.stream.Session().GetMetrics()
	return pathCounters{
		"fallback_writes":      int64(stab.FallbackWriteCount),
		"fallback_reads":       int64(stab.FallbackReadCount),
		"alloc_shm_errors":     int64(stab.AllocShmErrorCount),
		"queue_full_errors":    int64(stab.QueueFullErrorCount),
		"queue_full_resends":   c.queueFull,
		"window_waits":         c.held,
		"event_conn_errors":    int64(stab.EventConnErrorCount),
		"sync_events_sent":     int64(perf.SendSyncEventCount),
		"sync_events_received": int64(perf.ReceiveSyncEventCount),
		"out_bytes":            int64(perf.OutFlowBytes),
		"in_bytes":             int64(perf.InFlowBytes),
		"pool_bytes":           int64(shm.CapacityOfShareMemoryInBytes),
	}
}

func (c *shmipcConn) Close() error {
	c.release()
	return nil
}
