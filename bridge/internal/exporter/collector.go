// Package exporter serves shmq queue metrics to Prometheus: every scrape
// lists the queues of a directory afresh, so queues that appear or vanish
// are picked up without a restart.
package exporter

import (
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shmq/shmq/layout"
)

// Collector is a prometheus.Collector over the queues in Dir.
type Collector struct {
	Dir  string
	Opts Options
	// Scan lists the queues; nil means the package's Scan.
	Scan func(dir string, opts Options) ([]QueueInfo, error)

	scrapeErrors atomic.Uint64
}

var (
	qLabels    = []string{"queue", "kind"}
	roleLabels = []string{"queue", "kind", "role"}

	descInfo      = prometheus.NewDesc("shmq_queue_info", "A queue in the directory, with its kind and mode; always 1.", []string{"queue", "kind", "mode"}, nil)
	descQueues    = prometheus.NewDesc("shmq_queues", "Segments in the directory by state: ready, initializing, abandoned (creator died during initialization) or unreadable.", []string{"state"}, nil)
	descDataBytes = prometheus.NewDesc("shmq_queue_capacity_bytes", "Size of the queue's data region in bytes.", qLabels, nil)
	descSlots     = prometheus.NewDesc("shmq_queue_slots", "Number of slots (MPMC).", qLabels, nil)
	descDepth     = prometheus.NewDesc("shmq_queue_depth_messages", "Messages committed and not yet released (SPSC: from the counters; MPMC: from the cursors).", qLabels, nil)
	descUsed      = prometheus.NewDesc("shmq_queue_used_bytes", "Ring bytes in use (SPSC, record headers included) or bytes of the slots in use (MPMC).", qLabels, nil)
	descPosition  = prometheus.NewDesc("shmq_queue_position", "Cursor positions: head (consumers) and tail (producers); bytes (SPSC) or slots (MPMC).", []string{"queue", "kind", "cursor"}, nil)
	descCreated   = prometheus.NewDesc("shmq_queue_created_timestamp_seconds", "When the queue was created, Unix time.", qLabels, nil)
	descMessages  = prometheus.NewDesc("shmq_messages_total", "Messages committed (producers) or released (consumers), summed over the registry entries of the role.", roleLabels, nil)
	descBytes     = prometheus.NewDesc("shmq_bytes_total", "Payload bytes committed (producers) or released (consumers).", roleLabels, nil)
	descStalls    = prometheus.NewDesc("shmq_stalls_total", "Attempts that found the queue full (producers) or empty (consumers).", roleLabels, nil)
	descWaits     = prometheus.NewDesc("shmq_waits_total", "Times a process of the role parked waiting.", roleLabels, nil)
	descWakes     = prometheus.NewDesc("shmq_wakes_total", "Wake calls the role made for the other side.", roleLabels, nil)
	descAttached  = prometheus.NewDesc("shmq_attached", "Registry entries of the role held by a live process.", roleLabels, nil)
	descDead      = prometheus.NewDesc("shmq_dead_entries", "Registry entries of the role whose process died attached (shmq-demo reap frees them).", roleLabels, nil)
	descErrors    = prometheus.NewDesc("shmq_exporter_scrape_errors_total", "Scrapes that could not list the directory.", nil, nil)
)

// Describe sends every descriptor.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInfo, descQueues, descDataBytes, descSlots, descDepth, descUsed, descPosition,
		descCreated, descMessages, descBytes, descStalls, descWaits, descWakes, descAttached, descDead, descErrors} {
		ch <- d
	}
}

// Collect lists the queues and sends their metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	scan := c.Scan
	if scan == nil {
		scan = Scan
	}
	qs, err := scan(c.Dir, c.Opts)
	if err != nil {
		c.scrapeErrors.Add(1)
	}
	ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(c.scrapeErrors.Load()))
	states := map[string]int{StateReady: 0, StateInitializing: 0, StateAbandoned: 0, StateUnreadable: 0}
	for _, q := range qs {
		states[q.State]++
		if q.State == StateReady {
			collectQueue(ch, &q)
		}
	}
	for s, n := range states {
		ch <- prometheus.MustNewConstMetric(descQueues, prometheus.GaugeValue, float64(n), s)
	}
}

type roleSums struct {
	messages, bytes, stalls, waits, wakes uint64
	attached, dead                        int
}

func collectQueue(ch chan<- prometheus.Metric, q *QueueInfo) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descInfo, 1, q.Name, q.Kind, q.Mode)
	gauge(descDataBytes, float64(q.DataBytes), q.Name, q.Kind)
	if q.Slots > 0 {
		gauge(descSlots, float64(q.Slots), q.Name, q.Kind)
	}
	gauge(descDepth, float64(q.Depth), q.Name, q.Kind)
	gauge(descUsed, float64(q.UsedBytes), q.Name, q.Kind)
	gauge(descPosition, float64(q.Head), q.Name, q.Kind, "head")
	gauge(descPosition, float64(q.Tail), q.Name, q.Kind, "tail")
	gauge(descCreated, float64(q.Created.UnixNano())/1e9, q.Name, q.Kind)

	roles := map[string]*roleSums{"producer": {}, "consumer": {}}
	for _, e := range q.Entries {
		var r *roleSums
		switch e.Role {
		case layout.RoleProducer:
			r = roles["producer"]
		case layout.RoleConsumer:
			r = roles["consumer"]
		default:
			continue
		}
		r.messages += e.Messages
		r.bytes += e.Bytes
		r.stalls += e.Stalls
		r.waits += e.Waits
		r.wakes += e.Wakes
		if e.Alive {
			r.attached++
		} else if e.Dead() {
			r.dead++
		}
	}
	for role, r := range roles {
		counter(descMessages, r.messages, q.Name, q.Kind, role)
		counter(descBytes, r.bytes, q.Name, q.Kind, role)
		counter(descStalls, r.stalls, q.Name, q.Kind, role)
		counter(descWaits, r.waits, q.Name, q.Kind, role)
		counter(descWakes, r.wakes, q.Name, q.Kind, role)
		gauge(descAttached, float64(r.attached), q.Name, q.Kind, role)
		gauge(descDead, float64(r.dead), q.Name, q.Kind, role)
	}
}

// Handler returns an http.Handler serving /metrics for c (and the Go
// runtime's and process's metrics of the exporter itself) and a short page
// at /.
func Handler(c *Collector) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(`<html><head><title>shmq exporter</title></head><body><h1>shmq exporter</h1><p><a href="/metrics">Metrics</a> of the queues in ` +
			htmlEscape(c.Dir) + `</p></body></html>`))
	})
	return mux
}

func htmlEscape(s string) string {
	var b []byte
	for _, r := range s {
		switch r {
		case '<':
			b = append(b, "&lt;"...)
		case '>':
			b = append(b, "&gt;"...)
		case '&':
			b = append(b, "&amp;"...)
		case '"':
			b = append(b, "&quot;"...)
		default:
			b = append(b, string(r)...)
		}
	}
	return string(b)
}
