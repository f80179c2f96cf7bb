package loadgen

import (
	"bytes"
	"encoding/json"
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
