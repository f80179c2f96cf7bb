package bridge

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"
)

// sameAsMarshal fails unless got is byte for byte what json.Marshal makes of v.
func sameAsMarshal(t *testing.T, what string, v any, got []byte, gotErr error) {
	t.Helper()
	want, wantErr := json.Marshal(v)
	if (gotErr != nil) != (wantErr != nil) {
		t.Fatalf("%s: error %v, json.Marshal's %v", what, gotErr, wantErr)
	}
	if wantErr == nil && !bytes.Equal(got, want) {
		t.Fatalf("%s:\n got %s\nwant %s", what, got, want)
	}
}

func FuzzJSONEncoding(f *testing.F) {
	f.Add("R1", "Ana <Silva> & co", 38.5816, -121.4944, int64(1764432000123), 3, int64(0))
	f.Add("\u2028\x00\"\\\t\n\r\b\f\x7f", "\xff\xfe bad utf8 é 日本", 1e-7, 1e21, int64(-1), -5, int64(123456789))
	f.Add("", "", 0.0, -0.0, int64(0), 0, int64(253402300800000)) // year 10000
	f.Add("x", "y", math.NaN(), math.Inf(1), int64(1), 1, int64(-62135596800001))
	f.Add("a", "b", 5e-324, math.MaxFloat64, int64(math.MaxInt64), math.MinInt32, int64(1))
	f.Fuzz(func(t *testing.T, s1, s2 string, x, y float64, ms int64, n int, tsMs int64) {
		at := time.UnixMilli(tsMs).UTC()
		r := RouteStatus{RouteID: s1, RouteCode: s2, DriverID: s2, DriverName: s1, PerformanceTier: Tier(s2),
			CompletedStops: n, TotalStops: -n, CompletedPackages: n * 3, TotalPackages: n + 7,
			CurrentLat: x, CurrentLng: y, BehindSchedule: n, StatusColor: s1, LastUpdated: at}
		got, err := r.AppendJSON(nil)
		sameAsMarshal(t, "route status", r, got, err)

		fx := Fix{DriverID: s1, Lat: x, Lng: y, TS: ms, Acc: y, Spd: x, App: s2, Conn: s1, Recv: tsMs}
		got, err = fx.AppendJSON(nil)
		sameAsMarshal(t, "fix", fx, got, err)

		r2 := r
		r2.CurrentLng, r2.StatusColor, r2.LastUpdated = -x, s2, at.Add(time.Duration(n))
		for _, d := range []Delta{{}, Diff(r, r), Diff(RouteStatus{}, r), Diff(r, r2), Diff(r2, r)} {
			got, err = d.AppendJSON(nil)
			sameAsMarshal(t, "delta", d.Map(), got, err)
			got, err = json.Marshal(d)
			sameAsMarshal(t, "delta via json.Marshal", d.Map(), got, err)
		}

		p, _ := json.Marshal(map[string]string{s1: s2})
		e := Envelope{Seq: uint64(ms), ID: s1, Type: s2, Priority: s1, Timestamp: at, Payload: p}
		if jsonTime(at) {
			sameAsMarshal(t, "envelope", e, appendEnvelope(nil, e), nil)
		}
		env, raw, err := newEnvelope(uint64(n), s1, s2, at, Diff(RouteStatus{}, r))
		if err == nil {
			sameAsMarshal(t, "newEnvelope", env, raw, nil)
		}
	})
}

func BenchmarkEventEncoding(b *testing.B) {
	old := RouteStatus{RouteID: "R12", RouteCode: "CX12", DriverID: "D7", DriverName: "Ana Silva",
		CompletedStops: 42, TotalStops: 180, CurrentLat: 38.5816, CurrentLng: -121.4944,
		StatusColor: Green, LastUpdated: time.Now().UTC()}
	cur := old
	cur.CurrentLat, cur.CurrentLng, cur.LastUpdated = 38.5817, -121.4945, old.LastUpdated.Add(time.Second)
	at := time.Now()
	b.Run("appenders", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _, _ = newEnvelope(7, EventRouteUpdate, PriorityNormal, at, Diff(old, cur))
			_, _ = cur.AppendJSON(nil)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p, _ := json.Marshal(Diff(old, cur).Map())
			_, _ = json.Marshal(Envelope{Seq: 7, ID: "evt_7", Type: EventRouteUpdate, Priority: PriorityNormal, Timestamp: at, Payload: p})
			_, _ = json.Marshal(cur)
		}
	})
}
