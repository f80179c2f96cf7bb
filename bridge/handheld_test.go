package bridge

import (
	"errors"
	"net/url"
	"strconv"
	"testing"
	"time"
)

// Fixtures as the apps send them (OwnTracks booklet docs/tech/json.md;
// Traccar's OsmAndProtocolDecoder and its clients), at t0.
var (
	tst = strconv.FormatInt(t0.Unix()-3, 10)

	otAndroidLocation = `{"_type":"location","acc":12,"alt":31,"batt":81,"bs":1,"conn":"m","created_at":` + tst +
		`,"lat":38.5816,"lon":-121.4944,"t":"u","tid":"d7","tst":` + tst + `,"vac":3,"vel":36,"cog":270,"BSSID":"x","SSID":"y","m":1}`
	otIOSLocation = `{"_type":"location","tid":"D7","lat":38.5816,"lon":-121.4944,"tst":` + tst +
		`,"acc":5,"vel":-1,"cog":-1,"batt":-1,"bs":2,"conn":"w","t":"p","topic":"owntracks/D7/phone"}`
	otLWT         = `{"_type":"lwt","tst":` + tst + `}`
	otTransition  = `{"_type":"transition","wtst":1764000000,"lat":38.58,"lon":-121.49,"tst":` + tst + `,"acc":10,"tid":"d7","event":"enter","desc":"Depot","t":"c"}`
	otWaypoints   = `{"_type":"waypoints","waypoints":[{"_type":"waypoint","desc":"Depot","lat":38.58,"lon":-121.49,"rad":100,"tst":1764000000}]}`
	otStatus      = `{"_type":"status","android":{"wifistate":1,"ps":0}}`
	osmandQuery   = "id=D7&timestamp=" + tst + "&lat=38.5816&lon=-121.4944&speed=19.438&bearing=270.5&altitude=31&accuracy=12.5&batt=81&charge=true"
	traccarClient = `{"location":{"event":"motionchange","is_moving":true,"uuid":"5b2f…","timestamp":"` + t0.Add(-3*time.Second).UTC().Format("2006-01-02T15:04:05.000Z") +
		`","odometer":1200,"coords":{"latitude":38.5816,"longitude":-121.4944,"accuracy":12.5,"speed":10,"speed_accuracy":1,"heading":270.5,"heading_accuracy":5,"altitude":31,"ellipsoidal_altitude":30,"altitude_accuracy":3,"age":120},` +
		`"activity":{"type":"in_vehicle","confidence":100},"battery":{"is_charging":false,"level":0.81},"extras":{}},"device_id":"D7"}`
)

func TestParseOwnTracks(t *testing.T) {
	ms := (t0.Unix() - 3) * 1000
	for _, c := range []struct {
		name, in string
		typ      string
		want     Fix
	}{
		{"android location", otAndroidLocation, OwnTracksLocation, Fix{DriverID: "D7", Lat: 38.5816, Lng: -121.4944, TS: ms,
			Acc: 12, Spd: 10, Hdg: 270, Batt: 81, App: AppOwnTracks, BattState: BattUnplugged, Conn: ConnMobile, Recv: t0.UnixMilli()}},
		// iOS says -1 for a speed, course or battery it does not know:
		// those are dropped, the fix is kept.
		{"ios location with unknowns", otIOSLocation, OwnTracksLocation, Fix{DriverID: "D7", Lat: 38.5816, Lng: -121.4944, TS: ms,
			Acc: 5, App: AppOwnTracks, BattState: BattCharging, Conn: ConnWifi, Recv: t0.UnixMilli()}},
		{"lwt", otLWT, OwnTracksLWT, Fix{}},
		{"transition", otTransition, "transition", Fix{}},
		{"waypoints", otWaypoints, "waypoints", Fix{}},
		{"status", otStatus, "status", Fix{}},
	} {
		got, err := ParseOwnTracks("D7", []byte(c.in), t0)
		if err != nil || got.Type != c.typ || got.Fix != c.want {
			t.Errorf("%s: got %+v, %v\nwant %+v", c.name, got, err, c.want)
		}
	}
	for _, c := range []struct {
		name, in string
		want     error
	}{
		{"not json", `lat=1`, ErrMalformed},
		{"no type", `{"lat":1,"lon":2,"tst":` + tst + `}`, ErrMissingField},
		{"no lat", `{"_type":"location","lon":2,"tst":` + tst + `}`, ErrMissingField},
		{"no lon", `{"_type":"location","lat":2,"tst":` + tst + `}`, ErrMissingField},
		{"no tst", `{"_type":"location","lat":2,"lon":2}`, ErrMissingField},
		{"tst in ms", `{"_type":"location","lat":2,"lon":2,"tst":` + strconv.FormatInt(t0.UnixMilli(), 10) + `}`, ErrFuture},
		{"stale", `{"_type":"location","lat":2,"lon":2,"tst":1000}`, ErrStale},
		{"lat out of range", `{"_type":"location","lat":91,"lon":2,"tst":` + tst + `}`, ErrOutOfRange},
		{"lat a string", `{"_type":"location","lat":"1","lon":2,"tst":` + tst + `}`, ErrMalformed},
		{"type not a string", `{"_type":1}`, ErrMalformed},
		{"too large", `{"_type":"x","p":"` + string(make([]byte, MaxHandheldPayload)) + `"}`, ErrTooLarge},
	} {
		if _, err := ParseOwnTracks("D7", []byte(c.in), t0); !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
}

func TestParseOsmAnd(t *testing.T) {
	ms := (t0.Unix() - 3) * 1000
	want := Fix{DriverID: "D7", Lat: 38.5816, Lng: -121.4944, TS: ms, Acc: 12.5, Spd: 10, Hdg: 270.5, Batt: 81,
		App: AppTraccar, BattState: BattCharging, Recv: t0.UnixMilli()}
	q, _ := url.ParseQuery(osmandQuery)
	got, err := ParseOsmAndQuery(q, t0)
	if err != nil || got.DriverID != "D7" || got.Fix != want {
		t.Errorf("query form: got %+v, %v\nwant %+v", got, err, want)
	}
	want.BattState = BattUnplugged
	got, err = ParseOsmAndJSON([]byte(traccarClient), t0)
	if err != nil || got.DriverID != "D7" || got.Fix != want {
		t.Errorf("JSON: got %+v, %v\nwant %+v", got, err, want)
	}

	for _, c := range []struct {
		name, q string
		wantTS  int64
	}{
		{"ms timestamp", "id=D7&lat=1&lon=2&timestamp=" + strconv.FormatInt(ms, 10), ms},
		{"ISO timestamp", "id=D7&lat=1&lon=2&timestamp=" + url.QueryEscape(time.UnixMilli(ms).UTC().Format(time.RFC3339)), ms},
		{"space timestamp", "id=D7&lat=1&lon=2&timestamp=" + url.QueryEscape(time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05")), ms},
		{"no timestamp: now", "deviceid=D7&location=1,2", t0.UnixMilli()},
		{"bad optional dropped", "id=D7&lat=1&lon=2&speed=x&bearing=-1&batt=-1&accuracy=NaN", t0.UnixMilli()},
	} {
		q, _ := url.ParseQuery(c.q)
		got, err := ParseOsmAndQuery(q, t0)
		if err != nil || got.Fix.TS != c.wantTS || got.Fix.Lat != 1 || got.Fix.Lng != 2 || got.Fix.Spd != 0 || got.Fix.Hdg != 0 || got.Fix.Batt != 0 {
			t.Errorf("%s: got %+v, %v", c.name, got, err)
		}
	}
	for _, c := range []struct {
		name, q string
		want    error
	}{
		{"no id", "lat=1&lon=2", ErrMissingField},
		{"no lat", "id=D7&lon=2", ErrMissingField},
		{"lat NaN", "id=D7&lat=NaN&lon=2", ErrOutOfRange},
		{"lat Inf", "id=D7&lat=Inf&lon=2", ErrOutOfRange},
		{"lat text", "id=D7&lat=north&lon=2", ErrMalformed},
		{"bad location", "id=D7&location=1", ErrMalformed},
		{"bad timestamp", "id=D7&lat=1&lon=2&timestamp=yesterday", ErrMalformed},
		{"stale", "id=D7&lat=1&lon=2&timestamp=1000", ErrStale},
	} {
		q, _ := url.ParseQuery(c.q)
		if _, err := ParseOsmAndQuery(q, t0); !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
	for _, c := range []struct {
		name, body string
		want       error
	}{
		{"empty", ``, ErrMalformed},
		{"array", `[]`, ErrMalformed},
		{"no device", `{"location":{"timestamp":"2026-01-01T00:00:00Z","coords":{"latitude":1,"longitude":2}}}`, ErrMissingField},
		{"no coords", `{"device_id":"D7","location":{"timestamp":"2026-01-01T00:00:00Z"}}`, ErrMissingField},
		{"no timestamp", `{"device_id":"D7","location":{"coords":{"latitude":1,"longitude":2}}}`, ErrMissingField},
		{"bad timestamp", `{"device_id":"D7","location":{"timestamp":"now","coords":{"latitude":1,"longitude":2}}}`, ErrMalformed},
		{"no latitude", `{"device_id":"D7","location":{"timestamp":"` + t0.Format(time.RFC3339) + `","coords":{"longitude":2}}}`, ErrMissingField},
	} {
		if _, err := ParseOsmAndJSON([]byte(c.body), t0); !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
}

// checkHandheldFix is what every accepted fix from any app must satisfy.
func checkHandheldFix(t *testing.T, f Fix) {
	t.Helper()
	if !(f.Lat >= -90 && f.Lat <= 90 && f.Lng >= -180 && f.Lng <= 180) {
		t.Fatalf("accepted out-of-range position %+v", f)
	}
	if d := t0.UnixMilli() - f.TS; d > MaxFixAge.Milliseconds() || -d > MaxFixSkew.Milliseconds() {
		t.Fatalf("accepted fix with ts %d", f.TS)
	}
	if !(f.Acc >= 0 && f.Spd >= 0 && f.Hdg >= 0 && f.Hdg <= 360 && f.Batt >= 0 && f.Batt <= 100) {
		t.Fatalf("accepted out-of-range optional field %+v", f)
	}
	if _, err := f.AppendJSON(nil); err != nil {
		t.Fatalf("accepted fix does not encode: %v", err)
	}
}

func FuzzParseOwnTracks(f *testing.F) {
	for _, s := range []string{otAndroidLocation, otIOSLocation, otLWT, otTransition, otWaypoints, otStatus,
		`{"_type":"location","lat":1e400,"lon":0,"tst":0}`, `{"_type":"location","lat":0,"lon":0,"tst":1.5}`, `{}`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseOwnTracks("D1", b, t0)
		if err != nil {
			if RefusalReason(err) == "other" {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if len(b) > MaxHandheldPayload || len(m.Type) > 32 {
			t.Fatalf("accepted %d bytes, type %q", len(b), m.Type)
		}
		if m.Type == OwnTracksLocation {
			checkHandheldFix(t, m.Fix)
		} else if m.Fix != (Fix{}) {
			t.Fatalf("a %q carries a fix", m.Type)
		}
	})
}

func FuzzParseOsmAnd(f *testing.F) {
	f.Add(osmandQuery, []byte(traccarClient))
	f.Add("id=D7&location=1,2&timestamp=2026-01-01T00:00:00Z", []byte(`{"device_id":"D7"}`))
	f.Add("id=%zz&lat=1e999", []byte(`{"location":{"coords":{"latitude":-1e-320}}}`))
	f.Fuzz(func(t *testing.T, query string, body []byte) {
		check := func(o OsmAnd, err error) {
			if err != nil {
				if RefusalReason(err) == "other" {
					t.Fatalf("unclassified error %v", err)
				}
				return
			}
			if o.DriverID == "" || o.Fix.DriverID != o.DriverID {
				t.Fatalf("fix for %q under %q", o.Fix.DriverID, o.DriverID)
			}
			checkHandheldFix(t, o.Fix)
		}
		if q, err := url.ParseQuery(query); err == nil {
			check(ParseOsmAndQuery(q, t0))
		}
		check(ParseOsmAndJSON(body, t0))
	})
}
