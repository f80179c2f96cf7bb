package bridge

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// BenchmarkReadEventHead: what a reader of the whole log (the events export,
// the push outbox) pays per route update, most of a day's log.
func BenchmarkReadEventHead(b *testing.B) {
	raw := []byte(`{"seq":123456,"id":"evt_123456","type":"route:update","priority":"NORMAL","timestamp":"2026-12-03T10:02:05.123Z",` +
		`"payload":{"routeId":"R12","currentLat":38.58161,"currentLng":-121.49441,"lastUpdated":"2026-12-03T10:02:05.001Z","completedStops":42}}`)
	b.ReportAllocs()
	for b.Loop() {
		if h, ok := ReadEventHead(raw); !ok || h.Type != "route:update" {
			b.Fatal(h, ok)
		}
	}
}

// TestReadEventHead: the head of an envelope as bridge encodes it is read
// without its payload, as a JSON decoder reads it; other shapes are
// decoded whole; what is no envelope is refused.
func TestReadEventHead(t *testing.T) {
	at := time.Date(2026, 12, 3, 10, 2, 5, 123e6, time.UTC)
	raw, _ := json.Marshal(Envelope{Seq: 42, ID: "evt_42", Type: "vto:offer", Priority: "HIGH", Timestamp: at, Payload: json.RawMessage(`{"a":"\"type\":\"x\""}`)})
	if h, ok := sniffHead(raw[:bytes.Index(raw, payloadKey)]); !ok || h != (EventHead{42, "vto:offer", at}) {
		t.Fatalf("sniffed %+v %v from %s", h, ok, raw)
	}
	for in, want := range map[string]EventHead{
		string(raw): {42, "vto:offer", at},
		`{"type":"rescue:alert","seq":7,"timestamp":"2026-12-03T10:02:05.123Z","payload":{}}`:                   {7, "rescue:alert", at},
		`{"seq":8,"id":"e","type":"a\u003ab","priority":"","timestamp":"2026-12-03T10:02:05.123Z","payload":1}`: {8, "a:b", at},
	} {
		if h, ok := ReadEventHead([]byte(in)); !ok || h.Seq != want.Seq || h.Type != want.Type || !h.Timestamp.Equal(want.Timestamp) {
			t.Errorf("ReadEventHead(%s) = %+v, %v", in, h, ok)
		}
	}
	for _, in := range []string{``, `{}`, `null`, `{"seq":0,"type":"a","timestamp":"2026-12-03T10:02:05Z","payload":1}`,
		`{"seq":1,"type":"a","timestamp":"yesterday","payload":1}`, `{"seq":-1,"payload":1}`} {
		if h, ok := ReadEventHead([]byte(in)); ok {
			t.Errorf("ReadEventHead(%s) = %+v", in, h)
		}
	}
}

// FuzzReadEventHead: whatever a stored event holds, reading its head never
// panics; a head read has a seq, and one read without the JSON decoder
// has a type without quotes or escapes.
func FuzzReadEventHead(f *testing.F) {
	f.Add([]byte(`{"seq":42,"id":"evt_42","type":"vto:offer","priority":"HIGH","timestamp":"2026-12-03T10:02:05.123Z","payload":{}}`))
	f.Add([]byte(`{"seq":1,"type":"a\"b","timestamp":"2026-12-03T10:02:05Z","payload":1}`))
	f.Add([]byte(`{"seq":18446744073709551616,"type":"a","timestamp":"2026-12-03T10:02:05Z","payload":1}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if h, ok := ReadEventHead(raw); ok && h.Seq == 0 {
			t.Fatalf("%q: %+v", raw, h)
		}
		if i := bytes.Index(raw, payloadKey); i > 0 {
			if h, ok := sniffHead(raw[:i]); ok && (h.Seq == 0 || strings.ContainsAny(h.Type, `"\`)) {
				t.Fatalf("%q: sniffed %+v", raw, h)
			}
		}
	})
}
