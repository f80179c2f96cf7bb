package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Limits on a GPS fix as it arrives from a handheld.
const (
	MaxFixPayload = 1024            // bytes; a fix is ~100
	MaxFixAge     = 24 * time.Hour  // older device time is refused
	MaxFixSkew    = 5 * time.Minute // device time this far ahead is refused
	maxIDLen      = 64              // driver, route and depot ids
)

// Reasons a fix or topic is refused. Callers branch on them with errors.Is;
// the broker maps each to an MQTT 5 reason code and a metric label.
var (
	ErrTooLarge     = errors.New("payload too large")
	ErrMalformed    = errors.New("payload is not a JSON object")
	ErrMissingField = errors.New("required field missing")
	ErrOutOfRange   = errors.New("field out of range")
	ErrStale        = errors.New("fix too old")
	ErrFuture       = errors.New("fix from the future")
	ErrBadTopic     = errors.New("topic not recognised")
)

// RefusalReason names the refusal class of err for metrics and logs
// ("too_large", "malformed", …), or "other".
func RefusalReason(err error) string {
	for _, r := range []struct {
		err  error
		name string
	}{
		{ErrTooLarge, "too_large"}, {ErrMalformed, "malformed"},
		{ErrMissingField, "missing_field"}, {ErrOutOfRange, "out_of_range"},
		{ErrStale, "stale"}, {ErrFuture, "future"}, {ErrBadTopic, "bad_topic"},
	} {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return "other"
}

// Fix is one GPS position reported by a driver's handheld.
type Fix struct {
	DriverID string  `json:"driverId"`
	Lat      float64 `json:"lat"`
	Lng      float64 `json:"lng"`
	TS       int64   `json:"ts"` // device time, Unix ms
	Acc      float64 `json:"acc,omitempty"`
	Spd      float64 `json:"spd,omitempty"`
	Hdg      float64 `json:"hdg,omitempty"`
	Batt     float64 `json:"batt,omitempty"`
	// What the handheld says of itself, for device health (handheld.go):
	// the app it came from, the battery's state and the connection type.
	App       string `json:"app,omitempty"`
	BattState string `json:"bs,omitempty"`
	Conn      string `json:"conn,omitempty"`
	Recv      int64  `json:"recv"` // server receive time, Unix ms
}

// Time returns the device time of the fix.
func (f Fix) Time() time.Time { return time.UnixMilli(f.TS).UTC() }

type wireFix struct {
	Lat  *float64 `json:"lat"`
	Lng  *float64 `json:"lng"`
	TS   *float64 `json:"ts"`
	Acc  *float64 `json:"acc"`
	Spd  *float64 `json:"spd"`
	Hdg  *float64 `json:"hdg"`
	Batt *float64 `json:"batt"`
}

// ParseFix decodes and validates a GPS payload (docs/design.md §3) received at now.
// Every error wraps one of the Err* reasons above.
func ParseFix(driverID string, payload []byte, now time.Time) (Fix, error) {
	p, err := jsonObject(payload, MaxFixPayload)
	if err != nil {
		return Fix{}, err
	}
	var w wireFix
	var vals [len(wireFixNames)]float64
	if !decodeFast(p, &w, &vals) {
		w = wireFix{}
		if err := json.Unmarshal(p, &w); err != nil {
			return Fix{}, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
	}
	return w.fix(driverID, now)
}

// jsonObject is the first check of every JSON payload from a handheld: at
// most limit bytes, and an object (ErrTooLarge or ErrMalformed).
func jsonObject(payload []byte, limit int) ([]byte, error) {
	if len(payload) > limit {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(payload), limit)
	}
	p := bytes.TrimSpace(payload)
	if len(p) == 0 || p[0] != '{' {
		return nil, ErrMalformed
	}
	return p, nil
}

// fix validates a decoded fix: lat, lng and ts are required and checked,
// as is every optional field present. It is the one rule for every way a
// fix arrives (our gps topic, OwnTracks, OsmAnd).
func (w wireFix) fix(driverID string, now time.Time) (Fix, error) {
	switch {
	case w.Lat == nil:
		return Fix{}, fmt.Errorf("%w: lat", ErrMissingField)
	case w.Lng == nil:
		return Fix{}, fmt.Errorf("%w: lng", ErrMissingField)
	case w.TS == nil:
		return Fix{}, fmt.Errorf("%w: ts", ErrMissingField)
	}
	f := Fix{DriverID: driverID, Lat: *w.Lat, Lng: *w.Lng, Recv: now.UnixMilli()}
	if !(f.Lat >= -90 && f.Lat <= 90) {
		return Fix{}, fmt.Errorf("%w: lat %v", ErrOutOfRange, f.Lat)
	}
	if !(f.Lng >= -180 && f.Lng <= 180) {
		return Fix{}, fmt.Errorf("%w: lng %v", ErrOutOfRange, f.Lng)
	}
	if *w.TS != math.Trunc(*w.TS) || math.Abs(*w.TS) > 1<<53 {
		return Fix{}, fmt.Errorf("%w: ts %v is not whole milliseconds", ErrOutOfRange, *w.TS)
	}
	f.TS = int64(*w.TS)
	if d := now.UnixMilli() - f.TS; d > MaxFixAge.Milliseconds() {
		return Fix{}, fmt.Errorf("%w: %s old", ErrStale, time.Duration(d)*time.Millisecond)
	} else if -d > MaxFixSkew.Milliseconds() {
		return Fix{}, fmt.Errorf("%w: %s ahead", ErrFuture, time.Duration(-d)*time.Millisecond)
	}
	for _, o := range w.optional(&f) {
		if o.v == nil {
			continue
		}
		if !(*o.v >= o.min && *o.v <= o.max) {
			return Fix{}, fmt.Errorf("%w: %s %v", ErrOutOfRange, o.name, *o.v)
		}
		*o.dst = *o.v
	}
	return f, nil
}

type optionalField struct {
	v        *float64
	dst      *float64
	name     string
	min, max float64
}

// optional lists the optional fields of w, where each goes in f, and its range.
func (w *wireFix) optional(f *Fix) [4]optionalField {
	return [4]optionalField{
		{w.Acc, &f.Acc, "acc", 0, 1e6},
		{w.Spd, &f.Spd, "spd", 0, 1000},
		{w.Hdg, &f.Hdg, "hdg", 0, 360},
		{w.Batt, &f.Batt, "batt", 0, 100},
	}
}

// dropUnknown forgets optional fields out of their range instead of
// refusing the fix: stock apps send -1 for "not known" (iOS speed and
// course, a battery level the OS will not tell), and an app whose fix is
// refused sends it again for ever, holding back every fix behind it.
func (w *wireFix) dropUnknown() {
	ptrs := [...]**float64{&w.Acc, &w.Spd, &w.Hdg, &w.Batt} // in optional's order
	for i, o := range w.optional(new(Fix)) {
		if o.v != nil && !(*o.v >= o.min && *o.v <= o.max) {
			*ptrs[i] = nil
		}
	}
}

// ValidID reports whether s can be a depot, driver or route id: 1–64 of
// letters, digits, '-', '_' and '.'. Ids appear in topics and storage keys,
// so MQTT wildcards, separators and control bytes are never allowed.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > maxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// Driver topic kinds (docs/design.md §3).
const (
	KindGPS      = "gps"
	KindPresence = "presence"
	KindInbox    = "inbox"
	KindReply    = "reply"
)

// ParseDriverTopic splits depot/{d}/drivers/{driver}/{kind}. It returns
// ErrBadTopic for any other shape, another depot, a bad id or unknown kind.
func ParseDriverTopic(depot, topic string) (driver, kind string, err error) {
	rest, ok := strings.CutPrefix(topic, "depot/")
	if !ok {
		return "", "", ErrBadTopic
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 4 || parts[0] != depot || parts[1] != "drivers" || !ValidID(parts[2]) {
		return "", "", ErrBadTopic
	}
	switch parts[3] {
	case KindGPS, KindPresence, KindInbox, KindReply:
		return parts[2], parts[3], nil
	}
	return "", "", ErrBadTopic
}

// Topics of one depot (docs/design.md §3).
type Topics struct{ Depot string }

func (t Topics) Events() string { return "depot/" + t.Depot + "/events" }

// Heartbeat is the retained system:status of the depot.
func (t Topics) Heartbeat() string { return "depot/" + t.Depot + "/system/heartbeat" }
func (t Topics) RouteState(route string) string {
	return "depot/" + t.Depot + "/routes/" + route + "/state"
}

// RouteLate carries a route's late fixes to the dashboards' trails
// (pipeline.publishLate): not retained, QoS 0.
func (t Topics) RouteLate(route string) string {
	return "depot/" + t.Depot + "/routes/" + route + "/late"
}

func (t Topics) Driver(driver, kind string) string {
	return "depot/" + t.Depot + "/drivers/" + driver + "/" + kind
}
