package exporter

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/shmq/shmq/layout"
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

func labels(queue, kind string, extra ...string) map[string]string {
	l := map[string]string{"queue": queue, "kind": kind}
	for i := 0; i+1 < len(extra); i += 2 {
		l[extra[i]] = extra[i+1]
	}
	return l
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

	// An empty SPSC queue whose consumer is parked in Recv.
	iq, err := spsc.Create(ring.File(filepath.Join(dir, "idle")), spsc.Config{Capacity: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer iq.Close()
	ic, err := iq.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	parked := make(chan error, 1)
	go func() { _, err := ic.Recv(ctx, buf); parked <- err }()
	defer cancel()
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := ring.Inspect(ctx, ring.File(filepath.Join(dir, "idle")))
		if err == nil && info.Waiters[layout.WaiterSetConsumers] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the consumer did not park: %+v, %v", info.Waiters, err)
		}
		time.Sleep(time.Millisecond)
	}

	srv := httptest.NewServer(Handler(&Collector{Dir: dir}))
	defer srv.Close()
	mfs := scrape(t, srv.URL)

	jobs := func(extra ...string) map[string]string { return labels("jobs", "spsc", extra...) }
	work := func(extra ...string) map[string]string { return labels("work", "mpmc", extra...) }
	idle := func(extra ...string) map[string]string { return labels("idle", "spsc", extra...) }
	want(t, mfs, "shmq_queues", map[string]string{"state": "ready"}, 3)
	want(t, mfs, "shmq_queue_info", jobs("mode", ""), 1)
	want(t, mfs, "shmq_queue_info", work("mode", "lock-free"), 1)
	want(t, mfs, "shmq_messages_total", jobs("role", "producer"), 10)
	want(t, mfs, "shmq_messages_total", jobs("role", "consumer"), 4)
	want(t, mfs, "shmq_bytes_total", jobs("role", "producer"), 1000)
	want(t, mfs, "shmq_bytes_total", jobs("role", "consumer"), 400)
	want(t, mfs, "shmq_queue_used_bytes", jobs(), 6*112) // 8-byte header + 100, aligned to 8
	want(t, mfs, "shmq_queue_capacity_bytes", jobs(), 1<<16)
	want(t, mfs, "shmq_attached", jobs("role", "producer"), 1)
	want(t, mfs, "shmq_attached", jobs("role", "consumer"), 1)
	want(t, mfs, "shmq_stalls_total", jobs("role", "consumer"), 0)
	want(t, mfs, "shmq_queue_waiters", jobs("set", "consumers"), 0)
	if _, ok := value(mfs, "shmq_queue_depth_messages", jobs()); ok {
		t.Error("an SPSC queue has a depth in messages: its cursors count bytes")
	}
	if _, ok := value(mfs, "shmq_queue_waiters", jobs("set", "free_slots")); ok {
		t.Error("an SPSC queue has the waiter sets of MPMC's locked mode")
	}
	want(t, mfs, "shmq_queue_depth_messages", work(), 3)
	want(t, mfs, "shmq_queue_used_bytes", work(), 3*256)
	want(t, mfs, "shmq_queue_slots", work(), 8)
	want(t, mfs, "shmq_messages_total", work("role", "producer"), 3)
	want(t, mfs, "shmq_attached", work("role", "producer"), 1)
	want(t, mfs, "shmq_attached", work("role", "consumer"), 0)
	want(t, mfs, "shmq_dead_entries", work("role", "consumer"), 1)
	want(t, mfs, "shmq_dead_entries", work("role", "producer"), 0)
	want(t, mfs, "shmq_queue_position", work("cursor", "tail"), 3)
	want(t, mfs, "shmq_queue_position", work("cursor", "head"), 0)
	for _, set := range []string{"producers", "consumers", "free_slots", "filled_slots", "producers_mutex", "consumers_mutex"} {
		want(t, mfs, "shmq_queue_waiters", work("set", set), 0)
	}
	want(t, mfs, "shmq_queue_waiters", idle("set", "consumers"), 1)
	want(t, mfs, "shmq_queue_waiters", idle("set", "producers"), 0)
	want(t, mfs, "shmq_queue_used_bytes", idle(), 0)
	if _, ok := value(mfs, "shmq_queue_info", map[string]string{"queue": "not-a-queue"}); ok {
		t.Error("a file that is not a segment was exported")
	}
	if mf := mfs["shmq_messages_total"]; mf == nil || mf.GetType() != dto.MetricType_COUNTER {
		t.Error("shmq_messages_total is not a counter")
	}
	if mf := mfs["shmq_queue_waiters"]; mf == nil || mf.GetType() != dto.MetricType_GAUGE {
		t.Error("shmq_queue_waiters is not a gauge")
	}

	// The parked consumer gives up: it is no waiter any more, and its
	// park is counted (when it ends).
	cancel()
	<-parked
	mfs = scrape(t, srv.URL)
	want(t, mfs, "shmq_queue_waiters", idle("set", "consumers"), 0)
	if w, ok := value(mfs, "shmq_waits_total", idle("role", "consumer")); !ok || w < 1 {
		t.Errorf("shmq_waits_total of the consumer that parked: %v, %v", w, ok)
	}
}

// TestQueuesComeAndGo: each scrape lists the directory again (the shm
// directory by default), so a queue created or removed while the exporter
// runs appears or disappears at the next scrape.
func TestQueuesComeAndGo(t *testing.T) {
	a, b := fmt.Sprintf("sxt-%d-a", os.Getpid()), fmt.Sprintf("sxt-%d-b", os.Getpid())
	for _, name := range []string{a, b} {
		ring.Remove(ring.Shm(name))
		t.Cleanup(func() { ring.Remove(ring.Shm(name)) })
	}
	srv := httptest.NewServer(Handler(&Collector{}))
	defer srv.Close()
	exported := func(mfs map[string]*dto.MetricFamily, name string) bool {
		_, ok := value(mfs, "shmq_queue_info", map[string]string{"queue": name})
		return ok
	}
	if mfs := scrape(t, srv.URL); exported(mfs, a) || exported(mfs, b) {
		t.Fatal("queues exported before they exist")
	}
	qa, err := spsc.Create(ring.Shm(a), spsc.Config{Capacity: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer qa.Close()
	mfs := scrape(t, srv.URL)
	if !exported(mfs, a) || exported(mfs, b) {
		t.Fatalf("after creating %s: exported %v, %s %v", a, exported(mfs, a), b, exported(mfs, b))
	}
	want(t, mfs, "shmq_queue_capacity_bytes", labels(a, "spsc"), 4096)
	qb, err := mpmc.Create(ring.Shm(b), mpmc.Config{Slots: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer qb.Close()
	if mfs := scrape(t, srv.URL); !exported(mfs, a) || !exported(mfs, b) {
		t.Fatalf("after creating %s: both not exported", b)
	}
	if err := ring.Remove(ring.Shm(a)); err != nil {
		t.Fatal(err)
	}
	mfs = scrape(t, srv.URL)
	if exported(mfs, a) || !exported(mfs, b) {
		t.Fatalf("after removing %s: exported %v, %s %v", a, exported(mfs, a), b, exported(mfs, b))
	}
	want(t, mfs, "shmq_queue_slots", labels(b, "mpmc"), 16)
	if err := ring.Remove(ring.Shm(b)); err != nil {
		t.Fatal(err)
	}
	if mfs := scrape(t, srv.URL); exported(mfs, a) || exported(mfs, b) {
		t.Fatal("removed queues still exported")
	}
}

// Segments that are not ready are counted by state; files that are not
// segments are not counted; a directory that cannot be listed counts a
// scrape error instead of failing the scrape.
func TestScrapeStates(t *testing.T) {
	dir := t.TempDir()
	srv := httptest.NewServer(Handler(&Collector{Dir: dir}))
	defer srv.Close()
	mfs := scrape(t, srv.URL)
	for _, s := range []string{"ready", "initializing", "abandoned", "unreadable"} {
		want(t, mfs, "shmq_queues", map[string]string{"state": s}, 0)
	}

	// Abandoned: the magic, never published, no creator.
	b := make([]byte, 3*layout.PageSize)
	binary.LittleEndian.PutUint64(b, layout.Magic)
	if err := os.WriteFile(filepath.Join(dir, "abandoned"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	// Unreadable: a published segment with a corrupt header.
	q, err := spsc.Create(ring.File(filepath.Join(dir, "corrupt")), spsc.Config{Capacity: 4096})
	if err != nil {
		t.Fatal(err)
	}
	q.Segment().Bytes()[layout.OffVersion] = 99
	q.Close()
	if err := os.WriteFile(filepath.Join(dir, "foreign"), []byte("not a queue"), 0o600); err != nil {
		t.Fatal(err)
	}
	mfs = scrape(t, srv.URL)
	want(t, mfs, "shmq_queues", map[string]string{"state": "abandoned"}, 1)
	want(t, mfs, "shmq_queues", map[string]string{"state": "unreadable"}, 1)
	want(t, mfs, "shmq_queues", map[string]string{"state": "ready"}, 0)
	if _, ok := value(mfs, "shmq_queues", map[string]string{"state": "not a segment"}); ok {
		t.Error("files that are not segments are counted")
	}
	want(t, mfs, "shmq_exporter_scrape_errors_total", nil, 0)

	// Prometheus gets an error counter instead of a failed scrape.
	missing := httptest.NewServer(Handler(&Collector{Dir: filepath.Join(dir, "missing")}))
	defer missing.Close()
	mfs = scrape(t, missing.URL)
	want(t, mfs, "shmq_exporter_scrape_errors_total", nil, 1)
}
