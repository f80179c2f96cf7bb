// Package gcpace paces Go's garbage collector by the allocation rate.
//
// With GOGC=100 the collector runs whenever the heap has grown by about
// the live heap. The appliance's live heap is small (tens of MB) and its
// allocation rate follows its load, so at 10,000 fixes a second it ran a
// cycle every 0.65 s. Each cycle's marking took a quarter of a core for
// ~100 ms and made the goroutines carrying fixes assist it, and fixes that
// arrived then waited. gcpace raises GOGC, while the process runs, until a
// cycle comes no more often than every MinPeriod at the current rate. Two
// bounds apply:
//
//   - the heap goal plus goroutine stacks stays under Cap;
//   - GOGC never goes below 100 while the process allocates, so a busy
//     one with a large live heap is collected as it would be without
//     gcpace.
//
// A quiet process, one that would take more than 15 s to allocate half
// its live heap and stacks (5,000 idle handhelds), gets GOGC 50 instead:
// its cycles are rare anyway, and its garbage is kept to half its live
// heap instead of all of it. Once it has been quiet for 10 s, what a busy
// spell left free goes back to the system (debug.FreeOSMemory, one
// collection), at most once in freeEvery.
//
// It does nothing when the operator set GOGC or GOMEMLIMIT: their choice
// wins (Enabled).
package gcpace

import (
	"context"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Config tunes the pacing. The zero value of a field takes its default.
type Config struct {
	// MinPeriod is the shortest time between two cycles that gcpace aims
	// for (default 2 s).
	MinPeriod time.Duration
	// Cap bounds the heap goal plus goroutine stacks, in bytes (default
	// DefaultCap).
	Cap uint64
	// Every is how often the rate is read (default 250 ms).
	Every time.Duration

	// For tests: how long a process stays quiet before its free memory
	// goes back to the system, and how that is done.
	quietFor time.Duration
	free     func()
}

func (c Config) withDefaults() Config {
	if c.MinPeriod <= 0 {
		c.MinPeriod = 2 * time.Second
	}
	if c.Cap == 0 {
		c.Cap = DefaultCap()
	}
	if c.Every <= 0 {
		c.Every = 250 * time.Millisecond
	}
	if c.quietFor <= 0 {
		c.quietFor = 10 * time.Second
	}
	if c.free == nil {
		c.free = debug.FreeOSMemory
	}
	return c
}

// DefaultCap is 256 MiB, or an eighth of a smaller machine's memory.
func DefaultCap() uint64 { return capFor(MemTotal()) }

func capFor(mem uint64) uint64 {
	const c = 256 << 20
	if mem > 0 && mem/8 < c {
		return mem / 8
	}
	return c
}

// maxPercent bounds GOGC: past it the cap, not the rate, decides anyway.
const maxPercent = 2000

// quietPercent is the GOGC of a quiet process: one for which even that
// goal is more than quietPeriod of allocation away.
const (
	quietPercent = 50
	quietPeriod  = 15 * time.Second
	// freeEvery bounds the forced collections of a process whose load
	// comes and goes.
	freeEvery = 5 * time.Minute
	// steadyOver is the span of the steady rate: an idle depot's bursts (a
	// presence tick, a keepalive round, a scrape) average out over it.
	steadyOver = 10 * time.Second
)

// Percent returns the GOGC that gives the heap room for rate bytes a
// second over period before its next cycle. The heap goal is Go's: live +
// (live + roots) × GOGC/100, with roots the goroutine stacks and globals.
// Percent keeps that goal plus stacks under limit, and the result is
// between 100 and maxPercent, or quietPercent for a quiet process: one
// whose steady rate (over some seconds) takes more than quietPeriod, and
// whose current rate more than period, to fill the quiet goal's room.
func Percent(rate, steady float64, period time.Duration, live, stacks, globals, limit uint64) int {
	base := live + stacks + globals
	if base == 0 {
		return 100
	}
	if quietRoom := float64(base) * quietPercent / 100; steady*quietPeriod.Seconds() <= quietRoom && rate*period.Seconds() <= quietRoom {
		return quietPercent
	}
	room := rate * period.Seconds()
	if used := live + stacks; used < limit {
		room = min(room, float64(limit-used))
	} else {
		return 100
	}
	p := int(100 * room / float64(base))
	return max(100, min(p, maxPercent))
}

// Enabled reports whether gcpace may set GOGC: not when the environment
// sets GOGC or GOMEMLIMIT.
func Enabled() bool {
	return os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == ""
}

var names = []string{"/gc/heap/allocs:bytes", "/gc/heap/live:bytes", "/gc/scan/stack:bytes", "/gc/scan/globals:bytes"}

// Run paces the collector until ctx ends, then puts GOGC back to what it
// was. The caller checks Enabled first.
func Run(ctx context.Context, c Config) {
	c = c.withDefaults()
	was := debug.SetGCPercent(100)
	defer debug.SetGCPercent(was)
	cur := 100
	s := make([]metrics.Sample, len(names))
	for i, n := range names {
		s[i].Name = n
	}
	read := func() (allocs, live, stacks, globals uint64) {
		metrics.Read(s)
		v := func(i int) uint64 {
			if s[i].Value.Kind() != metrics.KindUint64 {
				return 0
			}
			return s[i].Value.Uint64()
		}
		return v(0), v(1), v(2), v(3)
	}
	prev, _, _, _ := read()
	at := time.Now()
	// rate is the allocation rate, smoothed for raising GOGC; steady is
	// its average over about steadyOver, for telling a quiet process.
	var rate, steady float64
	var quietSince, freedAt time.Time
	t := time.NewTicker(c.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			allocs, live, stacks, globals := read()
			if dt := now.Sub(at).Seconds(); dt > 0 && allocs >= prev {
				r := float64(allocs-prev) / dt
				// Rises at once (a burst needs room now), falls slowly (a
				// lull between bursts is not the end of the load).
				if r > rate {
					rate = r
				} else {
					rate += (r - rate) / 8
				}
				steady += (r - steady) * min(1, dt/steadyOver.Seconds())
			}
			prev, at = allocs, now
			p := Percent(rate, steady, c.MinPeriod, live, stacks, globals, c.Cap)
			// Settle on a value: setting GOGC is cheap, but a goal that
			// moves by a few percent every tick buys nothing.
			if p != cur && (p <= 100 || cur <= 100 || p*10 > cur*11 || p*10 < cur*9) {
				debug.SetGCPercent(p)
				cur = p
			}
			switch {
			case p != quietPercent:
				quietSince = time.Time{}
			case quietSince.IsZero():
				quietSince = now
			case now.Sub(quietSince) >= c.quietFor && (freedAt.IsZero() || now.Sub(freedAt) >= freeEvery) && freedAt.Before(quietSince):
				c.free()
				freedAt = now
			}
		}
	}
}
