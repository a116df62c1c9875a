package jsconn

import (
	"errors"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	lo, hi := 100*time.Millisecond, 2*time.Second
	seen := map[time.Duration]bool{}
	for n := 1; n <= 12; n++ {
		ceil := min(lo<<(n-1), hi)
		for i := 0; i < 50; i++ {
			d := Backoff(n, lo, hi)
			if d < ceil/2 || d > ceil {
				t.Fatalf("attempt %d: %v outside [%v, %v]", n, d, ceil/2, ceil)
			}
			seen[d] = true
		}
	}
	if len(seen) < 100 {
		t.Errorf("only %d distinct delays: no jitter", len(seen))
	}
}

func TestCheckURL(t *testing.T) {
	for _, u := range []string{"nats://127.0.0.1:4222", "tls://a.example:4222,nats://b.example", "127.0.0.1:4222", "nats://u:p@h:1"} {
		if err := CheckURL(u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	for _, u := range []string{"", "http://h:1", "nats://", "nats://h:1,ftp://x"} {
		if err := CheckURL(u); !errors.Is(err, ErrBadURL) {
			t.Errorf("%q: %v, want ErrBadURL", u, err)
		}
	}
	if got := redact("nats://u:secret@h:1"); got != "nats://u:xxxxx@h:1" {
		t.Errorf("redact: %s", got)
	}
}

func TestDefaultStreamName(t *testing.T) {
	if got := DefaultStreamName("jobs.*.high>"); got != "SHMQ_jobs___high_" {
		t.Fatal(got)
	}
}
