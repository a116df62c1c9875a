package exporter

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/shmq/shmq/mpmc"
	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/spsc"
)

// A helper process attaches a consumer to the MPMC queue at the path in
// this variable and exits without detaching, leaving a dead entry.
const deadConsumerEnv = "SHMQ_EXPORTER_DEAD_CONSUMER"

func TestMain(m *testing.M) {
	if path := os.Getenv(deadConsumerEnv); path != "" {
		q, err := mpmc.Open(context.Background(), ring.File(path), nil)
		if err != nil {
			os.Exit(3)
		}
		if _, err := q.Consumer(); err != nil {
			os.Exit(4)
		}
		os.Exit(0) // attached, not detached: the entry is now dead
	}
	os.Exit(m.Run())
}

// scrape fetches /metrics and parses it with Prometheus's own text parser.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return mfs
}

// value returns the value of the sample of family name whose labels include
// labels, and whether there is one.
func value(mfs map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		}
	}
	return 0, false
}

func want(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels map[string]string, v float64) {
	t.Helper()
	got, ok := value(mfs, name, labels)
	if !ok {
		t.Errorf("%s%v: missing", name, labels)
	} else if got != v {
		t.Errorf("%s%v = %v, want %v", name, labels, got, v)
	}
}

func TestScrape(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "not-a-queue"), []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}

	// An SPSC queue: 10 messages of 100 bytes committed, 4 released.
	sq, err := spsc.Create(ring.File(filepath.Join(dir, "jobs")), spsc.Config{Capacity: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	sp, err := sq.Producer()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if err := sp.TrySend(make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	sc, err := sq.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 200)
	for i := 0; i < 4; i++ {
		if _, err := sc.TryRecv(buf); err != nil {
			t.Fatal(err)
		}
	}
	sc.TryRecv(buf[:1]) // not consumed: ErrShortBuffer

	// An MPMC queue: 3 messages waiting, a producer attached, and a
	// consumer whose process died attached.
	mpath := filepath.Join(dir, "work")
	mq, err := mpmc.Create(ring.File(mpath), mpmc.Config{Slots: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer mq.Close()
	mp, err := mq.Producer()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := mp.TrySend([]byte("job")); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), deadConsumerEnv+"="+mpath)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dead-consumer helper: %v\n%s", err, out)
	}

	srv := httptest.NewServer(Handler(&Collector{Dir: dir}))
	defer srv.Close()
	mfs := scrape(t, srv.URL)

	jobs := func(extra ...string) map[string]string {
		l := map[string]string{"queue": "jobs", "kind": "spsc"}
		for i := 0; i+1 < len(extra); i += 2 {
			l[extra[i]] = extra[i+1]
		}
		return l
	}
	work := func(extra ...string) map[string]string {
		l := map[string]string{"queue": "work", "kind": "mpmc"}
		for i := 0; i+1 < len(extra); i += 2 {
			l[extra[i]] = extra[i+1]
		}
		return l
	}
	want(t, mfs, "shmq_queues", map[string]string{"state": "ready"}, 2)
	want(t, mfs, "shmq_queue_info", jobs("mode", ""), 1)
	want(t, mfs, "shmq_queue_info", work("mode", "lock-free"), 1)
	want(t, mfs, "shmq_messages_total", jobs("role", "producer"), 10)
	want(t, mfs, "shmq_messages_total", jobs("role", "consumer"), 4)
	want(t, mfs, "shmq_bytes_total", jobs("role", "producer"), 1000)
	want(t, mfs, "shmq_bytes_total", jobs("role", "consumer"), 400)
	want(t, mfs, "shmq_queue_depth_messages", jobs(), 6)
	want(t, mfs, "shmq_queue_used_bytes", jobs(), 6*112) // 8-byte header + 100, aligned to 8
	want(t, mfs, "shmq_queue_capacity_bytes", jobs(), 1<<16)
	want(t, mfs, "shmq_attached", jobs("role", "producer"), 1)
	want(t, mfs, "shmq_attached", jobs("role", "consumer"), 1)
	want(t, mfs, "shmq_stalls_total", jobs("role", "consumer"), 0)
	want(t, mfs, "shmq_queue_depth_messages", work(), 3)
	want(t, mfs, "shmq_queue_slots", work(), 8)
	want(t, mfs, "shmq_messages_total", work("role", "producer"), 3)
	want(t, mfs, "shmq_attached", work("role", "producer"), 1)
	want(t, mfs, "shmq_attached", work("role", "consumer"), 0)
	want(t, mfs, "shmq_dead_entries", work("role", "consumer"), 1)
	want(t, mfs, "shmq_queue_position", work("cursor", "tail"), 3)
	if _, ok := value(mfs, "shmq_queue_info", map[string]string{"queue": "not-a-queue"}); ok {
		t.Error("a file that is not a segment was exported")
	}
	if mf := mfs["shmq_messages_total"]; mf == nil || mf.GetType() != dto.MetricType_COUNTER {
		t.Error("shmq_messages_total is not a counter")
	}

	// A queue that disappears and one that appears are picked up.
	sq.Close()
	if err := ring.Unlink(ring.File(filepath.Join(dir, "jobs"))); err != nil {
		t.Fatal(err)
	}
	nq, err := spsc.Create(ring.File(filepath.Join(dir, "fresh")), spsc.Config{Capacity: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer nq.Close()
	mfs = scrape(t, srv.URL)
	if _, ok := value(mfs, "shmq_queue_info", map[string]string{"queue": "jobs"}); ok {
		t.Error("removed queue jobs is still exported")
	}
	want(t, mfs, "shmq_queue_info", map[string]string{"queue": "fresh", "kind": "spsc"}, 1)
	want(t, mfs, "shmq_queue_capacity_bytes", map[string]string{"queue": "fresh"}, 4096)
	want(t, mfs, "shmq_queues", map[string]string{"state": "ready"}, 2)
}

// A segment whose creator died during initialization is counted as
// abandoned, and a file that merely looks like one is not exported.
func TestScanStates(t *testing.T) {
	dir := t.TempDir()
	qs, err := Scan(dir, Options{})
	if err != nil || len(qs) != 0 {
		t.Fatalf("empty dir: %v, %v", qs, err)
	}
	if _, err := Scan(filepath.Join(dir, "missing"), Options{}); err == nil {
		t.Fatal("Scan of a missing directory succeeded")
	}
	// Prometheus gets an error counter instead of a failed scrape.
	c := &Collector{Dir: filepath.Join(dir, "missing")}
	srv := httptest.NewServer(Handler(c))
	defer srv.Close()
	mfs := scrape(t, srv.URL)
	want(t, mfs, "shmq_exporter_scrape_errors_total", nil, 1)
}
