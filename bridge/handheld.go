package bridge

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The stock apps a fix may come from, for device health (docs/handhelds.md).
const (
	AppOwnTracks = "owntracks"
	AppTraccar   = "traccar"
	AppDriverApp = "driverapp"
	AppOther     = "other"
)

// Battery states and connection types, as device health names them.
const (
	BattUnplugged = "unplugged"
	BattCharging  = "charging"
	BattFull      = "full"
	ConnWifi      = "wifi"
	ConnMobile    = "mobile"
	ConnOffline   = "offline"
)

// OwnTracks message types the depot acts on; every other _type is
// accepted and dropped (docs/handhelds.md).
const (
	OwnTracksLocation = "location"
	OwnTracksLWT      = "lwt"
)

// MaxHandheldPayload bounds an OwnTracks or OsmAnd message. A location is
// ~250 bytes; OwnTracks' waypoints export can be larger and is dropped
// anyway, so the bound only has to keep a body off the heap.
const MaxHandheldPayload = 16 << 10

// OwnTracks is what ParseOwnTracks made of a payload: its _type, and the
// fix when it is a location.
type OwnTracks struct {
	Type string
	Fix  Fix
}

// ownTracksLocation is OwnTracks' _type=location (booklet docs/tech/json.md):
// tst in Unix seconds, vel in km/h, cog in degrees, bs 0 unknown,
// 1 unplugged, 2 charging, 3 full; conn w(ifi), m(obile), o(ffline).
type ownTracksLocation struct {
	Lat  *float64 `json:"lat"`
	Lon  *float64 `json:"lon"`
	Tst  *float64 `json:"tst"`
	Acc  *float64 `json:"acc"`
	Vel  *float64 `json:"vel"`
	Cog  *float64 `json:"cog"`
	Batt *float64 `json:"batt"`
	BS   *float64 `json:"bs"`
	Conn *string  `json:"conn"`
}

// ParseOwnTracks decodes an OwnTracks JSON message from driverID's
// handheld, received at now. A location becomes a fix under the same rule
// as every other (seconds → ms, km/h → m/s, lon → lng, cog → heading);
// its out-of-range optional fields are dropped rather than the fix
// refused (see dropUnknown). Any other _type is returned with no fix.
// Errors wrap the Err* reasons of fix.go.
func ParseOwnTracks(driverID string, payload []byte, now time.Time) (OwnTracks, error) {
	p, err := jsonObject(payload, MaxHandheldPayload)
	if err != nil {
		return OwnTracks{}, err
	}
	var head struct {
		Type *string `json:"_type"`
	}
	if err := json.Unmarshal(p, &head); err != nil {
		return OwnTracks{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if head.Type == nil {
		return OwnTracks{}, fmt.Errorf("%w: _type", ErrMissingField)
	}
	if *head.Type != OwnTracksLocation {
		return OwnTracks{Type: clip(*head.Type, 32)}, nil
	}
	var l ownTracksLocation
	if err := json.Unmarshal(p, &l); err != nil {
		return OwnTracks{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if l.Lon == nil {
		return OwnTracks{}, fmt.Errorf("%w: lon", ErrMissingField)
	}
	if l.Tst == nil {
		return OwnTracks{}, fmt.Errorf("%w: tst", ErrMissingField)
	}
	w := wireFix{Lat: l.Lat, Lng: l.Lon, TS: scaled(l.Tst, 1000), Acc: l.Acc, Spd: rounded(scaled(l.Vel, 1/3.6)), Hdg: l.Cog, Batt: l.Batt}
	if t := *l.Tst; t != math.Trunc(t) {
		return OwnTracks{}, fmt.Errorf("%w: tst %v is not whole seconds", ErrOutOfRange, t)
	}
	w.dropUnknown()
	f, err := w.fix(driverID, now)
	if err != nil {
		return OwnTracks{}, err
	}
	f.App = AppOwnTracks
	if l.BS != nil {
		f.BattState = [...]string{"", BattUnplugged, BattCharging, BattFull, ""}[int(min(max(*l.BS, 0), 4))]
	}
	if l.Conn != nil {
		f.Conn = map[string]string{"w": ConnWifi, "m": ConnMobile, "o": ConnOffline}[*l.Conn]
	}
	return OwnTracks{Type: OwnTracksLocation, Fix: f}, nil
}

// scaled returns v×k, or nil for nil.
func scaled(v *float64, k float64) *float64 {
	if v == nil {
		return nil
	}
	x := *v * k
	return &x
}

// rounded rounds a converted value to two decimals, so that 36 km/h reads
// back as 10 m/s, not 9.999999999999998.
func rounded(v *float64) *float64 {
	if v == nil || math.IsInf(*v, 0) || math.IsNaN(*v) {
		return v
	}
	x := math.Round(*v*100) / 100
	return &x
}

// clip cuts a string from the network for a log or an answer.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// OsmAnd is a fix in the OsmAnd protocol as Traccar Client sends it, and
// the driver id it names.
type OsmAnd struct {
	DriverID string
	Fix      Fix
}

// ParseOsmAndQuery decodes the query or form of an OsmAnd request (Traccar's
// OsmAndProtocolDecoder): id or deviceid; timestamp in Unix seconds or ms,
// ISO 8601 or "2006-01-02 15:04:05" (UTC); lat and lon, or location=lat,lon;
// speed in knots; bearing or heading; accuracy; batt (%); charge=true.
// Unknown keys are ignored, as Traccar does.
func ParseOsmAndQuery(q url.Values, now time.Time) (OsmAnd, error) {
	id := first(q, "id", "deviceid")
	if id == "" {
		return OsmAnd{}, fmt.Errorf("%w: id", ErrMissingField)
	}
	var w wireFix
	num := func(key string) (*float64, error) {
		s := q.Get(key)
		if s == "" {
			return nil, nil
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: %s is not a number", ErrMalformed, key)
		}
		return &v, nil
	}
	var err error
	if w.Lat, err = num("lat"); err != nil {
		return OsmAnd{}, err
	}
	if w.Lng, err = num("lon"); err != nil {
		return OsmAnd{}, err
	}
	if loc := q.Get("location"); loc != "" && w.Lat == nil && w.Lng == nil {
		la, lo, ok := strings.Cut(loc, ",")
		a, err1 := strconv.ParseFloat(la, 64)
		b, err2 := strconv.ParseFloat(lo, 64)
		if !ok || err1 != nil || err2 != nil {
			return OsmAnd{}, fmt.Errorf("%w: location is not lat,lon", ErrMalformed)
		}
		w.Lat, w.Lng = &a, &b
	}
	if w.Lat == nil {
		return OsmAnd{}, fmt.Errorf("%w: lat", ErrMissingField)
	}
	if w.Lng == nil {
		return OsmAnd{}, fmt.Errorf("%w: lon", ErrMissingField)
	}
	ts, err := osmandTime(q.Get("timestamp"), now)
	if err != nil {
		return OsmAnd{}, err
	}
	w.TS = &ts
	// Optional fields that do not parse are dropped, like those out of
	// range (dropUnknown): the fix is still good.
	opt := func(key string) *float64 { v, _ := num(key); return v }
	w.Spd = rounded(scaled(opt("speed"), 1852.0/3600)) // knots
	w.Hdg = opt(keyOf(q, "bearing", "heading"))
	w.Acc, w.Batt = opt("accuracy"), opt("batt")
	w.dropUnknown()
	f, err := w.fix(id, now)
	if err != nil {
		return OsmAnd{}, err
	}
	f.App = AppTraccar
	switch q.Get("charge") {
	case "true", "1":
		f.BattState = BattCharging
	case "false", "0":
		f.BattState = BattUnplugged
	}
	return OsmAnd{DriverID: id, Fix: f}, nil
}

// first returns the value of the first of keys present in q.
func first(q url.Values, keys ...string) string { return q.Get(keyOf(q, keys...)) }

// keyOf returns the first of keys present in q, or the first key.
func keyOf(q url.Values, keys ...string) string {
	for _, k := range keys {
		if q.Get(k) != "" {
			return k
		}
	}
	return keys[0]
}

// osmandTime reads an OsmAnd timestamp as Unix ms. None: now (Traccar does
// the same).
func osmandTime(s string, now time.Time) (float64, error) {
	if s == "" {
		return float64(now.UnixMilli()), nil
	}
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		if v < math.MaxInt32 { // seconds, as Traccar tells them apart
			v *= 1000
		}
		return float64(v), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return float64(t.UnixMilli()), nil
		}
	}
	return 0, fmt.Errorf("%w: timestamp %q is neither Unix time nor ISO 8601", ErrMalformed, clip(s, 40))
}

// osmandJSON is the body the current Traccar Client posts (Traccar's
// OsmAndProtocolDecoder, decodeJson): the background-geolocation
// library's location, speed in m/s, -1 for "not known".
type osmandJSON struct {
	DeviceID *string `json:"device_id"`
	Location *struct {
		Timestamp *string `json:"timestamp"`
		Coords    *struct {
			Latitude  *float64 `json:"latitude"`
			Longitude *float64 `json:"longitude"`
			Accuracy  *float64 `json:"accuracy"`
			Speed     *float64 `json:"speed"`
			Heading   *float64 `json:"heading"`
		} `json:"coords"`
		Battery *struct {
			Level      *float64 `json:"level"` // 0..1
			IsCharging *bool    `json:"is_charging"`
		} `json:"battery"`
	} `json:"location"`
}

// ParseOsmAndJSON decodes the current Traccar Client's JSON body.
func ParseOsmAndJSON(body []byte, now time.Time) (OsmAnd, error) {
	p, err := jsonObject(body, MaxHandheldPayload)
	if err != nil {
		return OsmAnd{}, err
	}
	var j osmandJSON
	if err := json.Unmarshal(p, &j); err != nil {
		return OsmAnd{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	switch {
	case j.DeviceID == nil || *j.DeviceID == "":
		return OsmAnd{}, fmt.Errorf("%w: device_id", ErrMissingField)
	case j.Location == nil:
		return OsmAnd{}, fmt.Errorf("%w: location", ErrMissingField)
	case j.Location.Coords == nil:
		return OsmAnd{}, fmt.Errorf("%w: location.coords", ErrMissingField)
	case j.Location.Timestamp == nil:
		return OsmAnd{}, fmt.Errorf("%w: location.timestamp", ErrMissingField)
	}
	t, err := time.Parse(time.RFC3339Nano, *j.Location.Timestamp)
	if err != nil {
		return OsmAnd{}, fmt.Errorf("%w: location.timestamp %q is not ISO 8601", ErrMalformed, clip(*j.Location.Timestamp, 40))
	}
	ts := float64(t.UnixMilli())
	c := j.Location.Coords
	w := wireFix{Lat: c.Latitude, Lng: c.Longitude, TS: &ts, Acc: c.Accuracy, Spd: c.Speed, Hdg: c.Heading}
	var charging *bool
	if b := j.Location.Battery; b != nil {
		w.Batt, charging = rounded(scaled(b.Level, 100)), b.IsCharging
	}
	w.dropUnknown()
	f, err := w.fix(*j.DeviceID, now)
	if err != nil {
		return OsmAnd{}, err
	}
	f.App = AppTraccar
	if charging != nil {
		f.BattState = map[bool]string{true: BattCharging, false: BattUnplugged}[*charging]
	}
	return OsmAnd{DriverID: *j.DeviceID, Fix: f}, nil
}
