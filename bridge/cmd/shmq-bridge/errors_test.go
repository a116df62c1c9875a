package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/shmq/shmq/bridge/internal/natstest"
)

// Each failure an operator can make gives an exit status and one line that
// names it.
func TestErrors(t *testing.T) {
	plain := startServer(t)
	auth, err := natstest.Start(t.TempDir(), func(o *server.Options) { o.Username, o.Password = "bridge", "secret" })
	if err != nil {
		t.Fatal(err)
	}
	defer auth.Stop()
	noJS, err := natstest.Start(t.TempDir(), func(o *server.Options) { o.JetStream = false })
	if err != nil {
		t.Fatal(err)
	}
	defer noJS.Stop()
	q := queueName(t, "err")

	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no command", nil, exitUsage, ""},
		{"unknown command", []string{"sideways"}, exitUsage, `unknown command "sideways"`},
		{"no queue", []string{"out", "-nats", plain.URL(), "-subject", "s"}, exitUsage, "-queue NAME is required"},
		{"bad queue name", []string{"out", "-queue", "a/b", "-nats", plain.URL(), "-subject", "s"}, exitUsage, "1 to 30 characters"},
		{"no subject", []string{"in", "-queue", q, "-nats", plain.URL()}, exitUsage, "-subject SUBJ is required"},
		{"unknown kind", []string{"out", "-queue", q, "-kind", "ring", "-nats", plain.URL(), "-subject", "s"}, exitUsage, "unknown queue kind"},
		{"no URL", []string{"out", "-queue", q, "-subject", "s"}, exitUsage, "bad NATS URL: -nats URL is required"},
		{"bad scheme", []string{"out", "-queue", q, "-nats", "http://127.0.0.1:4222", "-subject", "s"}, exitUsage, `bad NATS URL: "http://127.0.0.1:4222": scheme "http"`},
		{"unreachable", []string{"out", "-queue", q, "-nats", "nats://127.0.0.1:1", "-subject", "s"}, exitFail, "NATS server unreachable"},
		{"wrong password", []string{"out", "-queue", q, "-nats", auth.URL(), "-user", "bridge", "-password", "wrong", "-subject", "s"}, exitFail, "NATS authorization failed"},
		{"no JetStream", []string{"in", "-queue", q, "-nats", noJS.URL(), "-subject", "s"}, exitFail, "JetStream is not enabled"},
		{"missing stream", []string{"in", "-queue", q, "-nats", plain.URL(), "-subject", "nowhere", "-create=false"}, exitFail, `no JetStream stream captures the subject "nowhere"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(tc.args, &stderr)
			if code != tc.code || !strings.Contains(stderr.String(), tc.msg) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr.String(), tc.code, tc.msg)
			}
			if strings.Contains(stderr.String(), "secret") {
				t.Error("the password appears in the message")
			}
		})
	}
}
