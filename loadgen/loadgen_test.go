package loadgen

import (
	"bytes"
	"encoding/json"
	"math"
	"runtime/metrics"
	"testing"
)

// FuzzSplitEnvelopes: the dashboards' scanner splits any JSON array of objects
// as encoding/json does.
func FuzzSplitEnvelopes(f *testing.F) {
	f.Add(`{"seq":1,"payload":{"routeId":"R1"}}`, `{"a":"}]\"{","b":[{"c":1}]}`)
	f.Add(`{}`, `{"x":"\\"}`)
	f.Fuzz(func(t *testing.T, a, b string) {
		var want []json.RawMessage
		arr := "[" + a + "," + b + "]"
		if json.Unmarshal([]byte(arr), &want) != nil {
			return
		}
		for _, w := range want {
			if len(w) == 0 || w[0] != '{' {
				return // the scanner is for arrays of objects
			}
		}
		got := SplitEnvelopes([]byte(arr))
		if len(got) != len(want) {
			t.Fatalf("%s: %d parts, want %d", arr, len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(bytes.TrimSpace(got[i]), bytes.TrimSpace(want[i])) {
				t.Fatalf("part %d: %s, want %s", i, got[i], want[i])
			}
		}
	})
}

func TestHistP99(t *testing.T) {
	h := func(counts ...uint64) *metrics.Float64Histogram {
		return &metrics.Float64Histogram{Counts: counts, Buckets: []float64{0, 0.001, 0.01, 0.1, math.Inf(1)}}
	}
	for _, c := range []struct {
		before, after *metrics.Float64Histogram
		want          float64
	}{
		{h(0, 0, 0, 0), h(0, 0, 0, 0), 0},
		{h(5, 0, 0, 0), h(5, 0, 0, 0), 0},           // nothing since
		{h(0, 0, 0, 0), h(990, 10, 0, 0), 0.001},    // the 99th of 1,000 in the first bucket
		{h(0, 0, 0, 0), h(980, 10, 10, 0), 0.01},    // in the second
		{h(100, 0, 0, 0), h(1080, 10, 10, 0), 0.01}, // counted since the snapshot only
		{h(0, 0, 0, 0), h(0, 0, 0, 7), 0.1},         // the open-ended bucket: its lower edge
		{h(0, 0, 0), h(1, 1, 1, 1), 0},              // mismatched readings
	} {
		if got := histP99(c.before, c.after); got != c.want {
			t.Errorf("histP99(%v, %v) = %v, want %v", c.before.Counts, c.after.Counts, got, c.want)
		}
	}
}
