package main

import (
	"net/http"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/depotcc/depot/bridge/upstream"
	"github.com/depotcc/depot/broker"
	"github.com/depotcc/depot/push"
	"github.com/depotcc/depot/storage"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics is the appliance's Prometheus registry: the depot's own
// measurements (it implements bridge.Metrics), counters read from the
// broker and the domain at scrape time, and Go runtime and process metrics.
type metrics struct {
	reg          *prometheus.Registry
	commit       prometheus.Histogram
	commitSize   prometheus.Histogram
	commitErrors prometheus.Counter
	fixToPublish prometheus.Histogram
	feedCycle    prometheus.Histogram
	feedErrors   prometheus.Counter
}

func newMetrics() *metrics {
	reg := prometheus.NewRegistry()
	x := &metrics{reg: reg,
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "depot_store_commit_seconds",
			Help: "Time of one group commit (one transaction, one fsync).", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		commitSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "depot_store_commit_records",
			Help: "Records (fixes, events, states) written by one group commit.", Buckets: prometheus.ExponentialBuckets(1, 2, 12)}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "depot_store_commit_errors_total", Help: "Commits that failed."}),
		fixToPublish: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "depot_fix_to_publish_seconds",
			Help: "From a GPS fix received to its route:update published (stored first).", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		feedCycle: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "depot_feed_cycle_seconds",
			Help: "One route-feed cycle: fetch, validate, apply, commit.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)}),
		feedErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "depot_feed_errors_total", Help: "Route-feed cycles that failed."}),
	}
	reg.MustRegister(x.commit, x.commitSize, x.commitErrors, x.fixToPublish, x.feedCycle, x.feedErrors,
		// The scheduler's latency (runnable to running) says whether the
		// box has CPU to spare: under load it is where a fix waits first.
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.MetricsScheduler)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return x
}

// watch registers the counters read at scrape time from the parts that
// keep them (the domain measures into x, so x exists before them).
func (x *metrics) watch(depot *bridge.Depot, brk *broker.Server, in *ingest) {
	reg := x.reg
	counter := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
	}
	s := &depot.Stats
	counter("depot_fixes_accepted_total", "GPS fixes accepted.", func() float64 { return float64(s.FixesAccepted.Load()) })
	counter("depot_fixes_late_total", "Fixes older than the driver's newest (filed, position kept).", func() float64 { return float64(s.FixesLate.Load()) })
	counter("depot_events_total", "Events stored and published.", func() float64 { return float64(s.Events.Load()) })
	counter("depot_mqtt_deliveries_total", "Messages the broker sent to clients.", func() float64 { return float64(brk.MessagesSent()) })
	reg.MustRegister(&labelled{
		desc: prometheus.NewDesc("depot_fixes_refused_total", "Publishes refused, by reason.", []string{"reason"}, nil),
		vals: func() map[string]float64 {
			out := map[string]float64{}
			for k, v := range in.refusedCounts() {
				out[k] = float64(v)
			}
			out["rate_limited"] = float64(brk.Stats.RateLimited.Load())
			return out
		}, counter: true,
	}, &labelled{
		desc: prometheus.NewDesc("depot_mqtt_refused_total", "MQTT refusals, by kind.", []string{"kind"}, nil),
		vals: func() map[string]float64 {
			st := &brk.Stats
			return map[string]float64{"connect": float64(st.ConnectRefused.Load()), "publish": float64(st.PublishDenied.Load()),
				"read": float64(st.ReadDenied.Load())}
		}, counter: true,
	}, &labelled{
		desc: prometheus.NewDesc("depot_mqtt_clients", "Connected MQTT clients, by role.", []string{"role"}, nil),
		vals: func() map[string]float64 {
			out := map[string]float64{"driver": 0, "dispatcher": 0, "admin": 0}
			for k, v := range brk.CountByRole() {
				out[k] = float64(v)
			}
			return out
		},
	})
	off := &depot.Offsets
	reg.MustRegister(&labelled{
		desc: prometheus.NewDesc("depot_handheld_clock_offset_seconds",
			"Receipt time minus device time (ts) of the recent accepted fixes (up to 256): their median, and the largest in size (sign kept; negative: a handheld ahead of the depot).",
			[]string{"stat"}, nil),
		vals: func() map[string]float64 {
			s := off.Summary()
			return map[string]float64{"median": s.Median.Seconds(), "max": s.Max.Seconds()}
		},
	}, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "depot_handheld_clock_offset_samples",
		Help: "Fixes depot_handheld_clock_offset_seconds is taken over."},
		func() float64 { return float64(off.Summary().Samples) }))
}

// watchStore registers the store's size and event log span, read at
// scrape time (depot doctor's growth estimate reads them from a running
// depot).
func (x *metrics) watchStore(inspect func() (storage.Summary, error)) {
	x.reg.MustRegister(&storeCollector{inspect: inspect,
		bytes:  prometheus.NewDesc("depot_store_bytes", "The store's files on disk.", nil, nil),
		events: prometheus.NewDesc("depot_store_events", "Events the event log keeps.", nil, nil),
		oldest: prometheus.NewDesc("depot_store_oldest_event_timestamp_seconds", "Time of the oldest event kept (0: none).", nil, nil),
		newest: prometheus.NewDesc("depot_store_newest_event_timestamp_seconds", "Time of the newest event (0: none).", nil, nil),
	})
}

type storeCollector struct {
	inspect                       func() (storage.Summary, error)
	bytes, events, oldest, newest *prometheus.Desc
}

func (s *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- s.bytes
	ch <- s.events
	ch <- s.oldest
	ch <- s.newest
}

func (s *storeCollector) Collect(ch chan<- prometheus.Metric) {
	sum, err := s.inspect()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(s.bytes, err)
		return
	}
	unix := func(t time.Time) float64 {
		if t.IsZero() {
			return 0
		}
		return float64(t.UnixMilli()) / 1000
	}
	ch <- prometheus.MustNewConstMetric(s.bytes, prometheus.GaugeValue, float64(sum.Bytes))
	ch <- prometheus.MustNewConstMetric(s.events, prometheus.GaugeValue, float64(sum.Events))
	ch <- prometheus.MustNewConstMetric(s.oldest, prometheus.GaugeValue, unix(sum.OldestEvent))
	ch <- prometheus.MustNewConstMetric(s.newest, prometheus.GaugeValue, unix(sum.NewestEvent))
}

func (x *metrics) Commit(took time.Duration, records int, err error) {
	x.commit.Observe(took.Seconds())
	x.commitSize.Observe(float64(records))
	if err != nil {
		x.commitErrors.Inc()
	}
}
func (x *metrics) FixToPublish(took time.Duration) { x.fixToPublish.Observe(took.Seconds()) }
func (x *metrics) FeedCycle(took time.Duration, err error) {
	x.feedCycle.Observe(took.Seconds())
	if err != nil {
		x.feedErrors.Inc()
	}
}

func (x *metrics) handler() http.Handler {
	return promhttp.HandlerFor(x.reg, promhttp.HandlerOpts{Registry: x.reg})
}

// labelled is a collector of values read at scrape time under one label.
type labelled struct {
	desc    *prometheus.Desc
	vals    func() map[string]float64
	counter bool
}

func (l *labelled) Describe(ch chan<- *prometheus.Desc) { ch <- l.desc }
func (l *labelled) Collect(ch chan<- prometheus.Metric) {
	t := prometheus.GaugeValue
	if l.counter {
		t = prometheus.CounterValue
	}
	for k, v := range l.vals() {
		ch <- prometheus.MustNewConstMetric(l.desc, t, v, k)
	}
}

// watchPush registers the push outbox's figures.
func (x *metrics) watchPush(o *push.Outbox) {
	h := func(f func(push.Health) float64) func() float64 { return func() float64 { return f(o.Health()) } }
	x.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "depot_push_queued", Help: "Pushes waiting in the outbox."},
			h(func(p push.Health) float64 { return float64(p.Queued) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "depot_push_targets", Help: "Registered push targets."},
			h(func(p push.Health) float64 { return float64(p.Targets) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "depot_push_failing_targets", Help: "Push targets whose last attempt failed."},
			h(func(p push.Health) float64 { return float64(p.FailingTargets) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "depot_push_last_success_timestamp_seconds", Help: "When a push was last delivered (0: never)."},
			h(func(p push.Health) float64 {
				if p.LastSuccess.IsZero() {
					return 0
				}
				return float64(p.LastSuccess.UnixMilli()) / 1000
			})),
	)
	x.reg.MustRegister(&labelled{
		desc: prometheus.NewDesc("depot_push_total", "Pushes by outcome: sent, failed (given up), removed (dead target), expired (before delivery), live (the MQTT session took it).", []string{"outcome"}, nil),
		vals: func() map[string]float64 {
			p := o.Health()
			return map[string]float64{"sent": float64(p.Sent), "failed": float64(p.Failed), "removed": float64(p.Removed),
				"expired": float64(p.Expired), "live": float64(p.Live)}
		}, counter: true,
	})
}

// watchUpstream registers the fleet forwarder's figures.
func (x *metrics) watchUpstream(f *upstream.Forwarder) {
	g := func(name, help string, v func(upstream.Health) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return v(f.Health()) })
	}
	x.reg.MustRegister(
		g("depot_upstream_connected", "1 while connected to the fleet's NATS cluster.", func(h upstream.Health) float64 {
			if h.Connected {
				return 1
			}
			return 0
		}),
		g("depot_upstream_behind_events", "Events of the log not yet acknowledged by the stream.", func(h upstream.Health) float64 { return float64(h.Behind) }),
		g("depot_upstream_last_ack_timestamp_seconds", "When the stream last acknowledged an event (0: never).", func(h upstream.Health) float64 {
			if h.LastAck.IsZero() {
				return 0
			}
			return float64(h.LastAck.UnixMilli()) / 1000
		}),
	)
}
