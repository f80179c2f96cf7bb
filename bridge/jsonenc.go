package bridge

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// The hot path encodes a route delta, an envelope, a route status and a
// fix for every GPS fix. encoding/json does that by reflection, and under
// load its allocations were a fifth of the appliance's CPU (half of it in
// the garbage collector). These appenders write the same bytes as
// json.Marshal (jsonenc_test.go checks it by fuzzing) with no reflection.
// Whatever they do not know falls back to json.Marshal.

// appendJSONString appends s as encoding/json does: quoted, with <, > and &
// escaped for HTML, invalid UTF-8 replaced, U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// finite reports whether every float can be encoded (json.Marshal refuses
// NaN and infinities).
func finite(fs ...float64) bool {
	for _, f := range fs {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return false
		}
	}
	return true
}

// appendJSONFloat appends a finite f as encoding/json does.
func appendJSONFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' { // e-09 → e-9, as encoding/json writes it
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// jsonTime reports whether t can be encoded by appendJSONTime: what
// time.Time.MarshalJSON accepts (years 0–9999, offsets in whole minutes).
func jsonTime(t time.Time) bool {
	_, off := t.Zone()
	return t.Year() >= 0 && t.Year() <= 9999 && off%60 == 0
}

// appendJSONTime appends t as time.Time.MarshalJSON does.
func appendJSONTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// AppendJSON appends the route status as json.Marshal would encode it.
func (r RouteStatus) AppendJSON(b []byte) ([]byte, error) {
	if !finite(r.CurrentLat, r.CurrentLng) || !jsonTime(r.LastUpdated) {
		raw, err := json.Marshal(r)
		return append(b, raw...), err
	}
	b = append(b, `{"routeId":`...)
	b = appendJSONString(b, r.RouteID)
	b = append(b, `,"routeCode":`...)
	b = appendJSONString(b, r.RouteCode)
	b = append(b, `,"driverId":`...)
	b = appendJSONString(b, r.DriverID)
	b = append(b, `,"driverName":`...)
	b = appendJSONString(b, r.DriverName)
	if r.PerformanceTier != "" {
		b = append(b, `,"performanceTier":`...)
		b = appendJSONString(b, string(r.PerformanceTier))
	}
	b = append(b, `,"completedStops":`...)
	b = strconv.AppendInt(b, int64(r.CompletedStops), 10)
	b = append(b, `,"totalStops":`...)
	b = strconv.AppendInt(b, int64(r.TotalStops), 10)
	b = append(b, `,"completedPackages":`...)
	b = strconv.AppendInt(b, int64(r.CompletedPackages), 10)
	b = append(b, `,"totalPackages":`...)
	b = strconv.AppendInt(b, int64(r.TotalPackages), 10)
	b = append(b, `,"currentLat":`...)
	b = appendJSONFloat(b, r.CurrentLat)
	b = append(b, `,"currentLng":`...)
	b = appendJSONFloat(b, r.CurrentLng)
	b = append(b, `,"behindSchedule":`...)
	b = strconv.AppendInt(b, int64(r.BehindSchedule), 10)
	b = append(b, `,"statusColor":`...)
	b = appendJSONString(b, r.StatusColor)
	b = append(b, `,"lastUpdated":`...)
	b = appendJSONTime(b, r.LastUpdated)
	return append(b, '}'), nil
}

// AppendJSON appends the fix as json.Marshal would encode it.
func (f Fix) AppendJSON(b []byte) ([]byte, error) {
	if !finite(f.Lat, f.Lng, f.Acc, f.Spd, f.Hdg, f.Batt) {
		raw, err := json.Marshal(f)
		return append(b, raw...), err
	}
	b = append(b, `{"driverId":`...)
	b = appendJSONString(b, f.DriverID)
	b = append(b, `,"lat":`...)
	b = appendJSONFloat(b, f.Lat)
	b = append(b, `,"lng":`...)
	b = appendJSONFloat(b, f.Lng)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, f.TS, 10)
	for _, o := range []struct {
		name string
		v    float64
	}{{`,"acc":`, f.Acc}, {`,"spd":`, f.Spd}, {`,"hdg":`, f.Hdg}, {`,"batt":`, f.Batt}} {
		if o.v != 0 {
			b = append(b, o.name...)
			b = appendJSONFloat(b, o.v)
		}
	}
	for _, o := range [...]struct{ name, v string }{{`,"app":`, f.App}, {`,"bs":`, f.BattState}, {`,"conn":`, f.Conn}} {
		if o.v != "" {
			b = append(b, o.name...)
			b = appendJSONString(b, o.v)
		}
	}
	b = append(b, `,"recv":`...)
	b = strconv.AppendInt(b, f.Recv, 10)
	return append(b, '}'), nil
}

// AppendJSON appends the delta as json.Marshal would encode its Map: keys
// in sorted order, routeId among them.
func (d Delta) AppendJSON(b []byte) ([]byte, error) {
	r := &d.Route
	if d.Empty() {
		return append(b, "null"...), nil
	}
	if !finite(r.CurrentLat, r.CurrentLng) || !jsonTime(r.LastUpdated) {
		raw, err := json.Marshal(d.Map())
		return append(b, raw...), err
	}
	b = append(b, '{')
	first, routeID := true, false
	for i, name := range deltaFields {
		if !routeID && name > "routeId" {
			b, first, routeID = appendKey(b, "routeId", first), false, true
			b = appendJSONString(b, r.RouteID)
		}
		if d.changed&(1<<i) == 0 {
			continue
		}
		b, first = appendKey(b, name, first), false
		b = r.appendField(b, i)
	}
	return append(b, '}'), nil
}

func appendKey(b []byte, name string, first bool) []byte {
	if !first {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, name...)
	return append(b, '"', ':')
}

// appendEnvelope appends e as json.Marshal would encode it; e.Payload must
// be compact JSON as json.Marshal writes it.
func appendEnvelope(b []byte, e Envelope) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `,"id":`...)
	b = appendJSONString(b, e.ID)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, e.Type)
	b = append(b, `,"priority":`...)
	b = appendJSONString(b, e.Priority)
	b = append(b, `,"timestamp":`...)
	b = appendJSONTime(b, e.Timestamp)
	b = append(b, `,"payload":`...)
	if len(e.Payload) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, e.Payload...)
	}
	return append(b, '}')
}
