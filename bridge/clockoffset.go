package bridge

import (
	"slices"
	"sync"
	"time"
)

// offsetSamples is how many recent fixes ClockOffsets keeps.
const offsetSamples = 256

// ClockOffsets keeps how far the handhelds' clocks were from the depot's
// for the last accepted fixes that moved a driver on: each fix's receipt
// time minus its device time ("ts"). Positive is a handheld behind the
// depot (or a fix that took a while to arrive), negative one ahead. When
// most handhelds are off by the same amount, the depot's own clock is the
// likely culprit. The zero value is ready; safe for concurrent use.
type ClockOffsets struct {
	mu  sync.Mutex
	buf [offsetSamples]int64 // ms
	n   int                  // samples held, ≤ offsetSamples
	i   int                  // where the next goes
}

// Add records one fix's offset.
func (c *ClockOffsets) Add(f Fix) {
	c.mu.Lock()
	c.buf[c.i] = f.Recv - f.TS
	c.i = (c.i + 1) % offsetSamples
	c.n = min(c.n+1, offsetSamples)
	c.mu.Unlock()
}

// OffsetSummary is the recent offsets' median and the one of largest
// magnitude (sign kept), over Samples fixes (0: none yet).
type OffsetSummary struct {
	Median  time.Duration
	Max     time.Duration
	Samples int
}

// Summary reports the offsets held now.
func (c *ClockOffsets) Summary() OffsetSummary {
	c.mu.Lock()
	s := slices.Clone(c.buf[:c.n])
	c.mu.Unlock()
	if len(s) == 0 {
		return OffsetSummary{}
	}
	slices.Sort(s)
	out := OffsetSummary{Median: time.Duration(s[len(s)/2]) * time.Millisecond, Samples: len(s)}
	out.Max = time.Duration(s[len(s)-1]) * time.Millisecond
	if -s[0] > s[len(s)-1] {
		out.Max = time.Duration(s[0]) * time.Millisecond
	}
	return out
}
