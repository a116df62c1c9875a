// Package exporter serves shmq queue metrics to Prometheus: every scrape
// lists the queues of a directory afresh (ring.List), so queues that
// appear or vanish are picked up without a restart. It reads the queues
// through read-only views: it needs read permission only, and changes
// nothing.
package exporter

import (
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/ring"
)

// Collector is a prometheus.Collector over the queues in Dir.
type Collector struct {
	// Dir is the directory listed; "" means the shm directory (/dev/shm).
	Dir string

	scrapeErrors atomic.Uint64
}

// The states counted by shmq_queues. Files that are not segments are not
// counted.
var states = []ring.SegmentState{ring.StateReady, ring.StateInitializing, ring.StateAbandoned, ring.StateUnreadable}

// waiterSets names the waiter sets for the set label, by index.
var waiterSets = map[int]string{
	layout.WaiterSetProducers: "producers",
	layout.WaiterSetConsumers: "consumers",
	layout.WaiterSetFree:      "free_slots",
	layout.WaiterSetFilled:    "filled_slots",
	layout.WaiterSetMutexP:    "producers_mutex",
	layout.WaiterSetMutexC:    "consumers_mutex",
}

var (
	qLabels    = []string{"queue", "kind"}
	roleLabels = []string{"queue", "kind", "role"}

	descInfo      = prometheus.NewDesc("shmq_queue_info", "A queue in the directory, with its kind and mode; always 1.", []string{"queue", "kind", "mode"}, nil)
	descQueues    = prometheus.NewDesc("shmq_queues", "Segments in the directory by state: ready, initializing, abandoned (creator died during initialization) or unreadable.", []string{"state"}, nil)
	descDataBytes = prometheus.NewDesc("shmq_queue_capacity_bytes", "Size of the queue's data region in bytes.", qLabels, nil)
	descSlots     = prometheus.NewDesc("shmq_queue_slots", "Number of slots (MPMC).", qLabels, nil)
	descDepth     = prometheus.NewDesc("shmq_queue_depth_messages", "Messages committed and not yet taken, slots being written included: tail minus head (MPMC; an SPSC queue's depth is shmq_queue_used_bytes).", qLabels, nil)
	descUsed      = prometheus.NewDesc("shmq_queue_used_bytes", "Tail minus head: ring bytes in use, record headers and padding included (SPSC), or bytes of the slots in use (MPMC).", qLabels, nil)
	descPosition  = prometheus.NewDesc("shmq_queue_position", "Cursor positions: head (consumers) and tail (producers); bytes (SPSC) or slots (MPMC).", []string{"queue", "kind", "cursor"}, nil)
	descCreated   = prometheus.NewDesc("shmq_queue_created_timestamp_seconds", "When the queue was created, Unix time.", qLabels, nil)
	descWaiters   = prometheus.NewDesc("shmq_queue_waiters", "Registry entries registered in a waiter set: processes parked (or about to park) waiting for space (producers), messages (consumers), or in locked mode a semaphore or mutex.", []string{"queue", "kind", "set"}, nil)
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
		descCreated, descWaiters, descMessages, descBytes, descStalls, descWaits, descWakes, descAttached, descDead, descErrors} {
		ch <- d
	}
}

// Collect lists the queues and sends their metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	infos, err := ring.List(c.Dir)
	if err != nil {
		c.scrapeErrors.Add(1)
	}
	ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(c.scrapeErrors.Load()))
	count := make(map[ring.SegmentState]int)
	for i := range infos {
		q := &infos[i]
		count[q.State]++
		if q.State == ring.StateReady {
			collectQueue(ch, q)
		}
	}
	for _, s := range states {
		ch <- prometheus.MustNewConstMetric(descQueues, prometheus.GaugeValue, float64(count[s]), s.String())
	}
}

type roleSums struct {
	messages, bytes, stalls, waits, wakes uint64
	attached, dead                        int
}

func collectQueue(ch chan<- prometheus.Metric, q *ring.SegmentInfo) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	h := &q.Header
	name, kind := q.Name, h.Kind.String()
	mode := ""
	if h.Kind == layout.KindMPMC {
		mode = "lock-free"
		if h.Flags&layout.FlagLocked != 0 {
			mode = "locked"
		}
	}
	gauge(descInfo, 1, name, kind, mode)
	gauge(descDataBytes, float64(h.DataSize), name, kind)
	if h.Kind == layout.KindMPMC {
		gauge(descSlots, float64(h.Capacity), name, kind)
	}
	// Depth is in the cursors' unit: bytes (SPSC) or slots (MPMC).
	// Cursors that are corrupt, or moved much between their two loads,
	// give none.
	if depth, ok := q.Depth(); ok {
		switch h.Kind {
		case layout.KindSPSC:
			gauge(descUsed, float64(depth), name, kind)
		case layout.KindMPMC:
			gauge(descDepth, float64(depth), name, kind)
			gauge(descUsed, float64(depth*uint64(h.SlotSize)), name, kind)
		}
	}
	gauge(descPosition, float64(q.Head), name, kind, "head")
	gauge(descPosition, float64(q.Tail), name, kind, "tail")
	gauge(descCreated, float64(h.CreatedNano)/1e9, name, kind)
	for k, n := range q.Waiters {
		if set, ok := waiterSets[k]; ok {
			gauge(descWaiters, float64(n), name, kind, set)
		}
	}

	roles := map[string]*roleSums{"producer": {}, "consumer": {}}
	for _, e := range q.Entries {
		var r *roleSums
		switch {
		case e.State == layout.EntryFree:
			continue
		case e.Role == layout.RoleProducer:
			r = roles["producer"]
		case e.Role == layout.RoleConsumer:
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
		counter(descMessages, r.messages, name, kind, role)
		counter(descBytes, r.bytes, name, kind, role)
		counter(descStalls, r.stalls, name, kind, role)
		counter(descWaits, r.waits, name, kind, role)
		counter(descWakes, r.wakes, name, kind, role)
		gauge(descAttached, float64(r.attached), name, kind, role)
		gauge(descDead, float64(r.dead), name, kind, role)
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
		dir := c.Dir
		if dir == "" {
			dir = "the shm directory"
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(`<html><head><title>shmq exporter</title></head><body><h1>shmq exporter</h1><p><a href="/metrics">Metrics</a> of the queues in ` +
			htmlEscape(dir) + `</p></body></html>`))
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
