package bridge

import (
	"encoding/json"
	"math"
	"slices"
	"sync"
	"time"
)

// latencies collects fix-received → event-published times, in ms, between
// two heartbeats.
type latencies struct {
	mu      sync.Mutex
	samples []float64
}

func (l *latencies) add(recv []int64, now time.Time) {
	if len(recv) == 0 {
		return
	}
	ms := now.UnixMicro()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range recv {
		if len(l.samples) >= 100_000 {
			break // a heartbeat's worth is plenty for percentiles
		}
		l.samples = append(l.samples, math.Max(0, float64(ms-r*1000)/1000))
	}
}

// take returns p50, p99 and max of what was collected, and resets.
func (l *latencies) take() (p50, p99, mx float64, n int) {
	l.mu.Lock()
	s := l.samples
	l.samples = nil
	l.mu.Unlock()
	if len(s) == 0 {
		return 0, 0, 0, 0
	}
	slices.Sort(s)
	at := func(q float64) float64 { return math.Round(Quantile(s, q)*100) / 100 }
	return at(0.50), at(0.99), at(1), len(s)
}

// heartbeat keeps the counters of the previous heartbeat, for rates.
type heartbeat struct {
	at            time.Time
	events, fixes int64
}

// Heartbeat emits a system:status event and the retained heartbeat with
// the depot's figures since the previous call, and app (connections,
// refusals, uptime, version: what the appliance knows beyond the domain).
func (d *Depot) Heartbeat(app AppStatus) (SystemStatus, error) {
	p50, p99, mx, n := d.lat.take()
	var status SystemStatus
	err := d.act(func(b *Batch) error {
		now := d.Now()
		ev, fx := d.Stats.Events.Load(), d.Stats.FixesAccepted.Load()
		rate := func(cur, prev int64) float64 {
			if d.hb.at.IsZero() {
				return 0
			}
			return math.Round(float64(cur-prev)/now.Sub(d.hb.at).Seconds()*10) / 10
		}
		status = SystemStatus{
			TS: now.UTC().Truncate(time.Millisecond), EventsPerS: rate(ev, d.hb.events), FixesPerS: rate(fx, d.hb.fixes),
			FixesRefused: d.Stats.FixesRefused.Load(), LatencyMs: Latency{P50: p50, P99: p99, Max: mx, Samples: n},
			Feed: d.feed, LastSeq: d.seq + 1, CommitErrors: d.Stats.CommitErrors.Load(), Store: d.StoreHealth(),
			AppStatus: app,
		}
		d.hb = heartbeat{at: now, events: ev, fixes: fx}
		if _, _, err := d.emitLocked(b, EventSystemStatus, PriorityNormal, status); err != nil {
			return err
		}
		raw, _ := json.Marshal(status)
		b.Messages = append(b.Messages, Message{Topic: "depot/" + d.ID + "/system/heartbeat", Payload: raw, Retain: true})
		return nil
	})
	return status, err
}
