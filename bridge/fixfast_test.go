package bridge

import (
	"encoding/json"
	"math"
	"testing"
)

// FuzzDecodeFast: whatever decodeFast takes, json.Unmarshal takes too and
// decodes to the same fields (nil or not, and bit for bit).
func FuzzDecodeFast(f *testing.F) {
	for _, s := range []string{
		`{"lat":38.58,"lng":-121.49,"ts":1764000000000,"acc":5,"spd":8.2,"hdg":270,"batt":81}`,
		`{"lat":38.581234,"lng":-121.4944,"ts":1764000000000,"drv":"BD1"}`,
		` { "LAT" : -0 , "Lng":1e2,"ts":1.5E+3, "x":null, "y":true, "z":false, "w":"é" } `,
		`{"lat":1,"lat":null,"lng":2,"ts":3}`, `{"lat":"1","lng":1,"ts":1}`, `{"lat":1e400,"lng":0,"ts":0}`,
		`{"lat":01}`, `{"lat":1.}`, `{"lat":-}`, `{"a":"\u0041"}`, `{"a":{"b":1}}`, `{"lat":1,}`, `{}`, `{} x`, `{"ſpd":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var got wireFix
		var vals [len(wireFixNames)]float64
		if !decodeFast(b, &got, &vals) {
			return
		}
		var want wireFix
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("decodeFast took %q, which encoding/json refuses: %v", b, err)
		}
		g := [...]*float64{got.Lat, got.Lng, got.TS, got.Acc, got.Spd, got.Hdg, got.Batt}
		w := [...]*float64{want.Lat, want.Lng, want.TS, want.Acc, want.Spd, want.Hdg, want.Batt}
		for i := range g {
			switch {
			case (g[i] == nil) != (w[i] == nil):
				t.Fatalf("%q: %s is %v, encoding/json says %v", b, wireFixNames[i], g[i], w[i])
			case g[i] != nil && math.Float64bits(*g[i]) != math.Float64bits(*w[i]):
				t.Fatalf("%q: %s is %v, encoding/json says %v", b, wireFixNames[i], *g[i], *w[i])
			}
		}
	})
}

// TestDecodeFastTakesHandhelds: what handhelds and the bench send takes the
// fast path; what it leaves to encoding/json still parses the same.
func TestDecodeFastTakesHandhelds(t *testing.T) {
	ms := itoa(t0.UnixMilli())
	for _, s := range []string{
		`{"lat":38.58,"lng":-121.49,"ts":` + ms + `,"acc":5,"spd":8.2,"hdg":270,"batt":81}`,
		`{"lat":38.581234,"lng":-121.494400,"ts":` + ms + `,"drv":"BD12"}`,
		"{\n  \"lat\": 38.58,\n  \"lng\": -121.49,\n  \"ts\": " + ms + ",\n  \"bs\": \"charging\"\n}",
	} {
		var w wireFix
		var vals [len(wireFixNames)]float64
		if !decodeFast([]byte(s), &w, &vals) {
			t.Errorf("%s: not taken by the fast path", s)
		}
		if _, err := ParseFix("D1", []byte(s), t0); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	for _, s := range []string{`{"lat":1,"lng":1,"ts":"x"}`, `{"lat":{"v":1},"lng":1,"ts":1}`, `{"lat":1e400,"lng":0,"ts":0}`} {
		var w wireFix
		var vals [len(wireFixNames)]float64
		if decodeFast([]byte(s), &w, &vals) {
			t.Errorf("%s: taken by the fast path", s)
		}
		if _, err := ParseFix("D1", []byte(s), t0); RefusalReason(err) != "malformed" {
			t.Errorf("%s: %v, want malformed", s, err)
		}
	}
	// The fast path's partial work on an input it gives up on is not kept.
	f, err := ParseFix("D1", []byte(`{"lat":1,"lng":2,"ts":`+ms+`,"acc":"\u0035"}`), t0)
	if err == nil || RefusalReason(err) != "malformed" {
		t.Errorf("an acc given as a string: %+v %v", f, err)
	}
}
