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
//   - GOGC never goes below 100, so a quiet depot keeps the default's small
//     footprint and a busy one with a large live heap is collected as it
//     would be without gcpace.
//
// It does nothing when the operator set GOGC or GOMEMLIMIT: their choice
// wins (Enabled).
package gcpace

import (
	"context"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// Config tunes the pacing. The zero value of a field takes its default.
type Config struct {
	// MinPeriod is the shortest time between two cycles that gcpace aims
	// for (default 2 s).
	MinPeriod time.Duration
	// Cap bounds the heap goal plus goroutine stacks, in bytes (default
	// 256 MiB).
	Cap uint64
	// Every is how often the rate is read (default 250 ms).
	Every time.Duration
}

func (c Config) withDefaults() Config {
	if c.MinPeriod <= 0 {
		c.MinPeriod = 2 * time.Second
	}
	if c.Cap == 0 {
		c.Cap = 256 << 20
	}
	if c.Every <= 0 {
		c.Every = 250 * time.Millisecond
	}
	return c
}

// maxPercent bounds GOGC: past it the cap, not the rate, decides anyway.
const maxPercent = 2000

// Percent returns the GOGC that gives the heap room for rate bytes a
// second over period before its next cycle. The heap goal is Go's: live +
// (live + roots) × GOGC/100, with roots the goroutine stacks and globals.
// Percent keeps that goal plus stacks under limit, and the result is never
// below 100 or above maxPercent.
func Percent(rate float64, period time.Duration, live, stacks, globals, limit uint64) int {
	base := live + stacks + globals
	if base == 0 || rate <= 0 {
		return 100
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
	var rate float64 // bytes a second, smoothed
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
			}
			prev, at = allocs, now
			p := Percent(rate, c.MinPeriod, live, stacks, globals, c.Cap)
			// Settle on a value: setting GOGC is cheap, but a goal that
			// moves by a few percent every tick buys nothing.
			if p != cur && (p == 100 || p*10 > cur*11 || p*10 < cur*9) {
				debug.SetGCPercent(p)
				cur = p
			}
		}
	}
}

// MemTotal returns the machine's memory in bytes from /proc/meminfo, or 0
// where there is none.
func MemTotal() uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	return parseMemTotal(b)
}

func parseMemTotal(b []byte) uint64 {
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "MemTotal:" && f[2] == "kB" {
			n, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil || n > math.MaxUint64/1024 {
				return 0
			}
			return n * 1024
		}
	}
	return 0
}
