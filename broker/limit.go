package broker

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// buckets are the publish budgets, one per identity ("role:subject"), shared
// by all of its connections and kept across reconnects: a budget per
// connection would let a handheld reset it by reconnecting. A budget idle
// long enough to have refilled is the same as a new one, so it is dropped
// then and memory follows the identities active in the last minutes.
type buckets struct {
	mu        sync.Mutex
	m         map[string]*limit
	lastSweep time.Time
}

// limit is one identity's publish budget and its budget of refusals.
type limit struct {
	rate, strikes *rate.Limiter
	used          time.Time
}

// get returns identity's budget, creating it full.
func (b *buckets) get(identity string, r float64, burst int, now time.Time) *limit {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[string]*limit{}
	}
	idle := idleAfter(r, burst)
	if now.Sub(b.lastSweep) > idle/2 {
		for id, l := range b.m {
			if now.Sub(l.used) > idle {
				delete(b.m, id)
			}
		}
		b.lastSweep = now
	}
	l, ok := b.m[identity]
	if !ok {
		l = &limit{rate: rate.NewLimiter(rate.Limit(r), burst), strikes: rate.NewLimiter(rate.Limit(r), burst)}
		b.m[identity] = l
	}
	l.used = now
	return l
}

func (b *buckets) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.m)
}

// idleAfter is how long a budget must go unused before it can be dropped:
// long after it has refilled (burst/rate), and never under five minutes.
func idleAfter(r float64, burst int) time.Duration {
	d := 5 * time.Minute
	if full := time.Duration(2 * float64(burst) / r * float64(time.Second)); full > d {
		d = full
	}
	return d
}
