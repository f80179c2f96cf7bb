package bridge

import (
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
