package auth

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Throttle limits login attempts per client address (all attempts) and per
// username (failed attempts only), so neither one machine nor a spread-out
// guesser against one account gets far. Memory is bounded: at most maxKeys
// keys are tracked; idle ones are dropped.
type Throttle struct {
	PerAddr   rate.Limit // attempts per second per address
	AddrBurst int
	PerUser   rate.Limit // failures per second per username
	UserBurst int

	mu    sync.Mutex
	addrs map[string]*entry
	users map[string]*entry
	sweep time.Time
}

type entry struct {
	lim  *rate.Limiter
	seen time.Time
}

const maxKeys = 10000

// NewThrottle returns the depot's defaults: 10 attempts at once, then one
// every 3 s, per address; 5 failures at once, then one every 30 s, per user.
func NewThrottle() *Throttle {
	return &Throttle{PerAddr: rate.Every(3 * time.Second), AddrBurst: 10,
		PerUser: rate.Every(30 * time.Second), UserBurst: 5}
}

func (t *Throttle) get(m *map[string]*entry, key string, lim rate.Limit, burst int, now time.Time) *rate.Limiter {
	if *m == nil {
		*m = map[string]*entry{}
	}
	e, ok := (*m)[key]
	if !ok {
		if len(*m) >= maxKeys {
			*m = map[string]*entry{} // under a flood of keys, forget rather than grow
		}
		e = &entry{lim: rate.NewLimiter(lim, burst)}
		(*m)[key] = e
	}
	e.seen = now
	return e.lim
}

func (t *Throttle) gc(now time.Time) {
	if now.Sub(t.sweep) < time.Minute {
		return
	}
	t.sweep = now
	for _, m := range []map[string]*entry{t.addrs, t.users} {
		for k, e := range m {
			if now.Sub(e.seen) > 10*time.Minute {
				delete(m, k)
			}
		}
	}
}

// Allow takes one attempt for addr and checks username's failure budget.
// When refused it says how long to wait.
func (t *Throttle) Allow(addr, username string, now time.Time) (ok bool, retryAfter time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gc(now)
	ul := t.get(&t.users, username, t.PerUser, t.UserBurst, now)
	if ul.TokensAt(now) < 1 {
		r := ul.ReserveN(now, 1)
		d := r.DelayFrom(now)
		r.CancelAt(now)
		return false, d
	}
	r := t.get(&t.addrs, addr, t.PerAddr, t.AddrBurst, now).ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// Failed charges a failed attempt to username.
func (t *Throttle) Failed(username string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.get(&t.users, username, t.PerUser, t.UserBurst, now).AllowN(now, 1)
}
