package bridge

import (
	"testing"
	"time"
)

// TestClockOffsets: median and largest offset of the recent fixes, the
// oldest samples dropped past the window.
func TestClockOffsets(t *testing.T) {
	var c ClockOffsets
	if s := c.Summary(); s.Samples != 0 || s.Median != 0 {
		t.Fatalf("empty: %+v", s)
	}
	at := func(offset time.Duration) Fix { return Fix{TS: 1_000_000, Recv: 1_000_000 + offset.Milliseconds()} }
	for _, o := range []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, -90 * time.Second, 4 * time.Second} {
		c.Add(at(o))
	}
	if s := c.Summary(); s.Samples != 5 || s.Median != 2*time.Second || s.Max != -90*time.Second {
		t.Fatalf("summary %+v", s)
	}
	for range offsetSamples {
		c.Add(at(time.Minute))
	}
	if s := c.Summary(); s.Samples != offsetSamples || s.Median != time.Minute || s.Max != time.Minute {
		t.Fatalf("after the window turned: %+v", s)
	}
}
