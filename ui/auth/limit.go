package auth

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Throttle limits login attempts. The client address is the peer's (or a
// trusted proxy's X-Forwarded-For), never a header anyone can write.
//
//   - Per address, all attempts: one machine cannot try many passwords, nor
//     many users.
//   - Per (user, address), failures: five wrong passwords for a user lock
//     that address out for her, and only that address. A guesser elsewhere
//     cannot lock the real user out: her right password from her own
//     address still works.
//   - Per user, failures from every address together: a guesser spreading
//     over many addresses gets a larger ceiling. Once it is spent, only an
//     address with no recent failure for the user may still try (one wrong
//     password there and it is out too), so the guesser is held to about
//     one guess per address per budget refill while the real user, who
//     types her password right from a clean address, still gets in.
//
// Memory is bounded: at most maxKeys keys per table; idle ones are dropped.
type Throttle struct {
	PerAddr       rate.Limit // attempts per second per address
	AddrBurst     int
	PerUserAddr   rate.Limit // failures per second per (user, address)
	UserAddrBurst int
	PerUser       rate.Limit // failures per second per user, all addresses
	UserBurst     int

	mu        sync.Mutex
	addrs     map[string]*entry
	userAddrs map[string]*entry
	users     map[string]*entry
	sweep     time.Time
}

type entry struct {
	lim  *rate.Limiter
	seen time.Time
}

const maxKeys = 10000

// NewThrottle returns the depot's defaults: 10 attempts at once, then one
// every 3 s, per address; 5 failures at once, then one every 30 s, per
// user and address; 20 failures at once, then one every 30 s, per user.
func NewThrottle() *Throttle {
	return &Throttle{PerAddr: rate.Every(3 * time.Second), AddrBurst: 10,
		PerUserAddr: rate.Every(30 * time.Second), UserAddrBurst: 5,
		PerUser: rate.Every(30 * time.Second), UserBurst: 20}
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
	for _, m := range []map[string]*entry{t.addrs, t.userAddrs, t.users} {
		for k, e := range m {
			if now.Sub(e.seen) > 10*time.Minute {
				delete(m, k)
			}
		}
	}
}

// userAddr keys the per-(user, address) table; NUL cannot occur in either.
func userAddr(username, addr string) string { return username + "\x00" + addr }

// wait is how long until lim has a token, without taking one.
func wait(lim *rate.Limiter, now time.Time) time.Duration {
	r := lim.ReserveN(now, 1)
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return d
}

// Allow takes one attempt for addr and checks username's failure budgets
// (see Throttle). When refused it says how long to wait.
func (t *Throttle) Allow(addr, username string, now time.Time) (ok bool, retryAfter time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gc(now)
	ua := t.get(&t.userAddrs, userAddr(username, addr), t.PerUserAddr, t.UserAddrBurst, now)
	if ua.TokensAt(now) < 1 {
		return false, wait(ua, now)
	}
	if ul := t.get(&t.users, username, t.PerUser, t.UserBurst, now); ul.TokensAt(now) < 1 {
		if clean := ua.TokensAt(now) >= float64(t.UserAddrBurst); !clean {
			return false, max(wait(ul, now), time.Second)
		}
	}
	r := t.get(&t.addrs, addr, t.PerAddr, t.AddrBurst, now).ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// Failed charges a failed attempt from addr to username.
func (t *Throttle) Failed(addr, username string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.get(&t.userAddrs, userAddr(username, addr), t.PerUserAddr, t.UserAddrBurst, now).AllowN(now, 1)
	t.get(&t.users, username, t.PerUser, t.UserBurst, now).AllowN(now, 1)
}
