// Package jsconn connects the bridges to NATS JetStream: connection options
// (credentials, TLS, reconnection with jittered back-off), the stream that
// captures a subject, and errors that say what went wrong in words an
// operator can act on.
package jsconn

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Errors that Connect and EnsureStream wrap, for errors.Is.
var (
	ErrBadURL        = errors.New("bad NATS URL")
	ErrUnreachable   = errors.New("NATS server unreachable")
	ErrAuth          = errors.New("NATS authorization failed")
	ErrNoJetStream   = errors.New("JetStream is not enabled on the NATS server")
	ErrStreamMissing = errors.New("no JetStream stream captures the subject")
)

// Options are the connection flags both bridges share.
type Options struct {
	URL      string
	Name     string // client name shown by the server
	Creds    string // credentials file (JWT and nkey seed)
	NkeySeed string // nkey seed file
	User     string
	Password string
	Token    string
	TLSCert  string // client certificate, with TLSKey
	TLSKey   string
	TLSCA    string // CA bundle that signs the server's certificate
	TLSFirst bool   // TLS handshake before the server's INFO (servers with handshake_first)

	ConnectTimeout time.Duration
	ReconnectMin   time.Duration // first reconnect delay; doubles up to ReconnectMax
	ReconnectMax   time.Duration

	// Logf reports connection events (disconnects, reconnects, async errors).
	Logf func(format string, args ...any)
}

// Register adds the connection flags to fs.
func (o *Options) Register(fs *flag.FlagSet) {
	fs.StringVar(&o.URL, "nats", "", "NATS server URL(s), comma-separated (nats://, tls://)")
	fs.StringVar(&o.Creds, "creds", "", "NATS credentials file")
	fs.StringVar(&o.NkeySeed, "nkey", "", "NATS nkey seed file")
	fs.StringVar(&o.User, "user", "", "NATS user (or put it in the URL)")
	fs.StringVar(&o.Password, "password", "", "NATS password")
	fs.StringVar(&o.Token, "token", "", "NATS authentication token")
	fs.StringVar(&o.TLSCert, "tlscert", "", "client certificate file, for TLS")
	fs.StringVar(&o.TLSKey, "tlskey", "", "client key file, for TLS")
	fs.StringVar(&o.TLSCA, "tlsca", "", "CA file that verifies the server's certificate")
	fs.BoolVar(&o.TLSFirst, "tlsfirst", false, "do the TLS handshake first (server's handshake_first)")
	fs.DurationVar(&o.ConnectTimeout, "connect-timeout", 5*time.Second, "timeout of each connection attempt")
	fs.DurationVar(&o.ReconnectMin, "reconnect-min", 100*time.Millisecond, "first reconnect delay, doubled per attempt, with jitter")
	fs.DurationVar(&o.ReconnectMax, "reconnect-max", 5*time.Second, "longest reconnect delay")
}

// CheckURL validates the URL list before any connection attempt.
func CheckURL(s string) error {
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("%w: -nats URL is required", ErrBadURL)
	}
	for _, u := range strings.Split(s, ",") {
		u = strings.TrimSpace(u)
		if !strings.Contains(u, "://") {
			u = "nats://" + u
		}
		p, err := url.Parse(u)
		if err != nil {
			return fmt.Errorf("%w: %q: %v", ErrBadURL, u, err)
		}
		switch p.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("%w: %q: scheme %q (want nats://, tls://, ws:// or wss://)", ErrBadURL, u, p.Scheme)
		}
		if p.Hostname() == "" {
			return fmt.Errorf("%w: %q has no host", ErrBadURL, u)
		}
	}
	return nil
}

// Backoff returns the delay before reconnect attempt n (1, 2, ...): min
// doubled per attempt up to max, with full jitter over its upper half, so
// that bridges that lost the same server do not come back in step.
func Backoff(n int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + rand.N(d/2+1)
}

// Connect dials the server and keeps reconnecting forever after a
// connection is lost. The first connection must succeed: a bad URL, an
// unreachable server or refused credentials fail here, wrapped in the
// errors above.
func Connect(o Options) (*nats.Conn, error) {
	if err := CheckURL(o.URL); err != nil {
		return nil, err
	}
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	rmin, rmax := o.ReconnectMin, o.ReconnectMax
	if rmin <= 0 {
		rmin = 100 * time.Millisecond
	}
	if rmax < rmin {
		rmax = rmin
	}
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(func(attempts int) time.Duration { return Backoff(attempts, rmin, rmax) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logf("disconnected from NATS: %v; reconnecting", err)
			} else {
				logf("disconnected from NATS; reconnecting")
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { logf("reconnected to NATS at %s", c.ConnectedUrlRedacted()) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { logf("NATS: %v", err) }),
	}
	if o.ConnectTimeout > 0 {
		opts = append(opts, nats.Timeout(o.ConnectTimeout))
	}
	if o.Creds != "" {
		opts = append(opts, nats.UserCredentials(o.Creds))
	}
	if o.NkeySeed != "" {
		opt, err := nats.NkeyOptionFromSeed(o.NkeySeed)
		if err != nil {
			return nil, fmt.Errorf("%w: nkey seed %s: %v", ErrAuth, o.NkeySeed, err)
		}
		opts = append(opts, opt)
	}
	if o.User != "" || o.Password != "" {
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	}
	if o.Token != "" {
		opts = append(opts, nats.Token(o.Token))
	}
	if o.TLSCert != "" || o.TLSKey != "" {
		opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	if o.TLSCA != "" {
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	if o.TLSFirst {
		opts = append(opts, nats.TLSHandshakeFirst())
	}
	nc, err := nats.Connect(o.URL, opts...)
	if err != nil {
		return nil, classify(o.URL, err)
	}
	return nc, nil
}

// classify wraps a connection error in the sentinel that names its cause.
func classify(u string, err error) error {
	msg := strings.ToLower(err.Error())
	switch {
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired), errors.Is(err, nats.ErrAuthRevoked),
		strings.Contains(msg, "authorization"), strings.Contains(msg, "authentication"):
		return fmt.Errorf("%w at %s: %v (check -user/-password, -token, -creds or -nkey)", ErrAuth, redact(u), err)
	case errors.Is(err, nats.ErrNoServers), strings.Contains(msg, "connection refused"), strings.Contains(msg, "i/o timeout"),
		strings.Contains(msg, "no such host"):
		return fmt.Errorf("%w: %s: %v", ErrUnreachable, redact(u), err)
	case strings.Contains(msg, "tls") || strings.Contains(msg, "x509") || strings.Contains(msg, "certificate"):
		return fmt.Errorf("%w: TLS with %s: %v (check -tlsca, -tlscert, -tlskey, -tlsfirst)", ErrUnreachable, redact(u), err)
	}
	return fmt.Errorf("connecting to NATS at %s: %w", redact(u), err)
}

// redact hides passwords in a URL list.
func redact(s string) string {
	var out []string
	for _, u := range strings.Split(s, ",") {
		if p, err := url.Parse(strings.TrimSpace(u)); err == nil && p.User != nil {
			out = append(out, p.Redacted())
		} else {
			out = append(out, u)
		}
	}
	return strings.Join(out, ",")
}

// StreamOptions say which stream carries the subject and how to create it.
type StreamOptions struct {
	Subject string
	// Stream names the stream to create if none captures Subject; empty
	// means DefaultStreamName(Subject).
	Stream string
	// Create allows creating the stream when none captures the subject.
	Create bool
	// Dedupe is the deduplication window of a created stream; 0 means
	// JetStream's default, 2 minutes.
	Dedupe  time.Duration
	Storage jetstream.StorageType
}

// DefaultStreamName derives a stream name from a subject: SHMQ_ and the
// subject with the characters a stream name may not hold replaced by _.
func DefaultStreamName(subject string) string {
	r := strings.NewReplacer(".", "_", "*", "_", ">", "_", " ", "_", "/", "_", "\\", "_")
	return "SHMQ_" + r.Replace(subject)
}

// EnsureStream returns the name of the stream that captures so.Subject,
// creating it (file storage, the dedupe window) if there is none and
// so.Create allows. An existing stream is used as it is.
func EnsureStream(ctx context.Context, js jetstream.JetStream, so StreamOptions) (string, error) {
	name, err := js.StreamNameBySubject(ctx, so.Subject)
	if err == nil {
		return name, nil
	}
	if err := jsError(err); !errors.Is(err, jetstream.ErrStreamNotFound) {
		return "", fmt.Errorf("looking up the stream of subject %q: %w", so.Subject, err)
	}
	if !so.Create {
		return "", fmt.Errorf("%w %q (create one, or drop -create=false)", ErrStreamMissing, so.Subject)
	}
	name = so.Stream
	if name == "" {
		name = DefaultStreamName(so.Subject)
	}
	cfg := jetstream.StreamConfig{
		Name:       name,
		Subjects:   []string{so.Subject},
		Storage:    so.Storage,
		Duplicates: so.Dedupe,
	}
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			// Created meanwhile by the other bridge, with another config:
			// use it if it captures the subject.
			if n, lerr := js.StreamNameBySubject(ctx, so.Subject); lerr == nil {
				return n, nil
			}
		}
		return "", fmt.Errorf("creating stream %s for subject %q: %w", name, so.Subject, jsError(err))
	}
	return name, nil
}

// jsError maps "JetStream not enabled" to ErrNoJetStream, keeping err.
func jsError(err error) error {
	if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) ||
		errors.Is(err, nats.ErrJetStreamNotEnabled) || errors.Is(err, nats.ErrJetStreamNotEnabledForAccount) {
		return fmt.Errorf("%w: %w", ErrNoJetStream, err)
	}
	if errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("%w (no responders to the JetStream API): %w", ErrNoJetStream, err)
	}
	return err
}
