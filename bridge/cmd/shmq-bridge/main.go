// Command shmq-bridge carries a shmq queue across hosts through NATS
// JetStream. "out" consumes a local queue and publishes every message to a
// JetStream subject, releasing it locally only once JetStream acknowledged
// it; "in" pulls the subject through a durable consumer and commits every
// message into a local queue, acknowledging it to JetStream only after the
// commit. Run shmq-bridge -h for the usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/shmq/shmq/bridge/internal/jsconn"
	"github.com/shmq/shmq/bridge/internal/localq"
	"github.com/shmq/shmq/bridge/internal/relay"
	"github.com/shmq/shmq/ring"
)

const usageText = `Usage:
  shmq-bridge out -queue NAME -nats URL -subject SUBJ [-kind spsc|mpmc] [flags]
        Consume local queue NAME (opened, or created as shmq-demo creates
        it) and publish each message to JetStream subject SUBJ with the
        message id shmq:NAME:CREATED:POSITION (header Nats-Msg-Id), so that
        JetStream drops a message sent twice within its dedupe window. A
        message is released from the queue only after JetStream acknowledged
        it. Creates the stream if no stream captures SUBJ.
  shmq-bridge in -nats URL -subject SUBJ -queue NAME [-kind spsc|mpmc] [-durable NAME] [flags]
        Pull SUBJ through durable consumer NAME (default shmq-QUEUE) and
        commit each message into local queue NAME (opened or created),
        acknowledging it only after the commit. A full queue stops the
        pulling. Creates the stream if no stream captures SUBJ.

Both run until SIGTERM or SIGINT, then finish the messages in flight (at
most -drain-timeout) and exit 0; a second signal exits at once. They print
progress every -progress on stderr and their counters when they stop.

Queue flags:
  -queue NAME         shm name of the local queue
  -kind K             spsc (default) or mpmc
  -capacity C         if the bridge creates the queue: ring bytes (spsc,
                      default 1048576) or slots (mpmc, default 1024)
  -max-message B      mpmc, if the bridge creates the queue: payload per
                      slot (default 240)

JetStream flags:
  -subject SUBJ       subject of the messages
  -stream NAME        stream to create if none captures SUBJ (default
                      SHMQ_ and SUBJ with . * > replaced by _)
  -create             create the stream if missing (default true)
  -dedupe-window D    dedupe window of a created stream (default 2m)
  -memory             create the stream in memory instead of on disk
  out: -window N      messages published and not yet acknowledged (default 1024)
  out: -ack-timeout D publish again after D without acknowledgement (default 5s)
  in:  -durable NAME  durable consumer name (default shmq-QUEUE)
  in:  -batch N       messages pulled ahead (default 256)
  in:  -ack-wait D    consumer acknowledgement timeout (default 30s)
  -drain-timeout D    on SIGTERM, how long to finish the messages in flight (default 10s)
  -progress D         progress line period, 0 for none (default 5s)

Connection flags:
  -nats URL           server URL(s), comma-separated: nats://host:4222, tls://...
  -user U -password P user and password (or in the URL)
  -token T            authentication token
  -creds FILE         credentials file (JWT and seed)
  -nkey FILE          nkey seed file
  -tlscert FILE -tlskey FILE   client certificate
  -tlsca FILE         CA that signs the server's certificate
  -tlsfirst           TLS handshake before the server's INFO
  -connect-timeout D  per connection attempt (default 5s)
  -reconnect-min D -reconnect-max D   reconnect back-off, doubled per
                      attempt with jitter (default 100ms to 5s); reconnects
                      never stop

Exit status: 0 after a signal and a clean drain, 1 on an error, 2 on bad
arguments.
`

const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "out", "in":
		err = runBridge(cmd, rest, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Print(usageText)
		return exitOK
	default:
		err = usagef("unknown command %q (want out or in; shmq-bridge -h)", cmd)
	}
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		fmt.Print(usageText)
		return exitOK
	}
	fmt.Fprintf(stderr, "shmq-bridge %s: %s\n", cmd, strings.Join(strings.Fields(err.Error()), " "))
	var ue usageError
	if errors.As(err, &ue) || errors.Is(err, jsconn.ErrBadURL) {
		return exitUsage
	}
	return exitFail
}

type bridgeFlags struct {
	queue, kind     string
	capacity        uint64
	maxMessage      int
	conn            jsconn.Options
	subject, stream string
	create, memory  bool
	dedupe          time.Duration
	window          int
	ackTimeout      time.Duration
	durable         string
	batch           int
	ackWait         time.Duration
	drain, progress time.Duration
}

var shmName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,30}$`)

func runBridge(cmd string, args []string, stderr io.Writer) error {
	var f bridgeFlags
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.queue, "queue", "", "")
	fs.StringVar(&f.kind, "kind", "spsc", "")
	fs.Uint64Var(&f.capacity, "capacity", 0, "")
	fs.IntVar(&f.maxMessage, "max-message", 0, "")
	f.conn.Register(fs)
	fs.StringVar(&f.subject, "subject", "", "")
	fs.StringVar(&f.stream, "stream", "", "")
	fs.BoolVar(&f.create, "create", true, "")
	fs.BoolVar(&f.memory, "memory", false, "")
	fs.DurationVar(&f.dedupe, "dedupe-window", 2*time.Minute, "")
	fs.DurationVar(&f.drain, "drain-timeout", 10*time.Second, "")
	fs.DurationVar(&f.progress, "progress", 5*time.Second, "")
	if cmd == "out" {
		fs.IntVar(&f.window, "window", 1024, "")
		fs.DurationVar(&f.ackTimeout, "ack-timeout", 5*time.Second, "")
	} else {
		fs.StringVar(&f.durable, "durable", "", "")
		fs.IntVar(&f.batch, "batch", 256, "")
		fs.DurationVar(&f.ackWait, "ack-wait", 30*time.Second, "")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	switch {
	case fs.NArg() > 0:
		return usagef("unexpected argument %q", fs.Arg(0))
	case f.queue == "":
		return usagef("-queue NAME is required")
	case !shmName.MatchString(f.queue):
		return usagef("-queue %q: 1 to 30 characters from [A-Za-z0-9._-]", f.queue)
	case f.subject == "":
		return usagef("-subject SUBJ is required")
	case strings.ContainsAny(f.subject, " \t\r\n"):
		return usagef("-subject %q contains white space", f.subject)
	case cmd == "out" && f.window <= 0:
		return usagef("-window must be positive")
	case cmd == "in" && f.batch <= 0:
		return usagef("-batch must be positive")
	}
	if err := jsconn.CheckURL(f.conn.URL); err != nil {
		return err
	}
	kind, err := localq.Lookup(f.kind)
	if err != nil {
		return usageError{err.Error()}
	}
	if f.durable == "" {
		f.durable = "shmq-" + strings.NewReplacer(".", "_").Replace(f.queue)
	}

	prefix := "shmq-bridge " + cmd
	logf := func(format string, args ...any) {
		fmt.Fprintf(stderr, "%s: %s\n", prefix, fmt.Sprintf(format, args...))
	}
	ctx, stop := signalContext(logf)
	defer stop()

	f.conn.Name = fmt.Sprintf("shmq-bridge %s %s", cmd, f.queue)
	f.conn.Logf = logf
	nc, err := jsconn.Connect(f.conn)
	if err != nil {
		return err
	}
	defer nc.Close()
	storage := jetstream.FileStorage
	if f.memory {
		storage = jetstream.MemoryStorage
	}
	so := jsconn.StreamOptions{Subject: f.subject, Stream: f.stream, Create: f.create, Dedupe: f.dedupe, Storage: storage}
	qcfg := localq.Config{Capacity: f.capacity, MaxMessage: f.maxMessage}
	loc := ring.Shm(f.queue)
	var stats relay.Stats
	progressDone := make(chan struct{})
	defer close(progressDone)
	go stats.Progress(stderr, prefix, cmd, f.progress, progressDone)

	if cmd == "out" {
		src, err := kind.OpenSource(ctx, loc, f.queue, qcfg)
		if err != nil {
			return fmt.Errorf("queue %s: %w", f.queue, err)
		}
		logf("%s queue %s -> subject %s at %s, window %d", f.kind, f.queue, f.subject, nc.ConnectedUrlRedacted(), f.window)
		err = relay.Out(ctx, relay.OutConfig{
			Source: src, Conn: nc, Stream: so, Window: f.window, AckTimeout: f.ackTimeout,
			DrainTimeout: f.drain, Stats: &stats, Logf: logf,
		})
		if cerr := src.Close(); cerr != nil && err == nil {
			logf("%v", cerr)
		}
		logf("stopped: %s", stats.Line(cmd))
		if err != nil {
			return err
		}
	} else {
		sink, err := kind.OpenSink(ctx, loc, qcfg)
		if err != nil {
			return fmt.Errorf("queue %s: %w", f.queue, err)
		}
		logf("subject %s at %s -> %s queue %s, durable %s", f.subject, nc.ConnectedUrlRedacted(), f.kind, f.queue, f.durable)
		err = relay.In(ctx, relay.InConfig{
			Sink: sink, Conn: nc, Stream: so, Durable: f.durable, Batch: f.batch, AckWait: f.ackWait,
			DrainTimeout: f.drain, Stats: &stats, Logf: logf,
		})
		sink.Close()
		logf("stopped: %s", stats.Line(cmd))
		if err != nil {
			return err
		}
	}
	// Flush the acknowledgements still buffered.
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		logf("flushing the NATS connection: %v", err)
	}
	return nil
}

// signalContext returns a context that ends on the first SIGTERM or SIGINT;
// a second one exits at once.
func signalContext(logf func(string, ...any)) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGTERM, os.Interrupt)
	go func() {
		sig, ok := <-ch
		if !ok {
			return
		}
		logf("%v: draining (again to exit at once)", sig)
		cancel()
		if _, ok := <-ch; ok {
			os.Exit(exitFail)
		}
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}
