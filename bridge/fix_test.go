package bridge

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 26, 15, 4, 5, 0, time.UTC)

func TestParseFix(t *testing.T) {
	ms := t0.UnixMilli()
	tests := []struct {
		name    string
		payload string
		want    error
	}{
		{"full", `{"lat":38.58,"lng":-121.49,"ts":` + itoa(ms) + `,"acc":5,"spd":8.2,"hdg":270,"batt":81}`, nil},
		{"required only", `{"lat":0,"lng":0,"ts":` + itoa(ms) + `}`, nil},
		{"unknown fields ignored", `{"lat":1,"lng":2,"ts":` + itoa(ms) + `,"x":"y"}`, nil},
		{"edges", `{"lat":-90,"lng":180,"ts":` + itoa(ms) + `}`, nil},
		{"not json", `hello`, ErrMalformed},
		{"array", `[1,2]`, ErrMalformed},
		{"empty", ``, ErrMalformed},
		{"truncated", `{"lat":1,`, ErrMalformed},
		{"lat as string", `{"lat":"1","lng":2,"ts":` + itoa(ms) + `}`, ErrMalformed},
		{"binary", "\x00\xff\xfe{\x01", ErrMalformed},
		{"missing lat", `{"lng":2,"ts":` + itoa(ms) + `}`, ErrMissingField},
		{"missing lng", `{"lat":2,"ts":` + itoa(ms) + `}`, ErrMissingField},
		{"missing ts", `{"lat":1,"lng":2}`, ErrMissingField},
		{"null lat", `{"lat":null,"lng":2,"ts":` + itoa(ms) + `}`, ErrMissingField},
		{"lat 200", `{"lat":200,"lng":2,"ts":` + itoa(ms) + `}`, ErrOutOfRange},
		{"lng -181", `{"lat":2,"lng":-181,"ts":` + itoa(ms) + `}`, ErrOutOfRange},
		{"fractional ts", `{"lat":2,"lng":2,"ts":1.5}`, ErrOutOfRange},
		{"huge ts", `{"lat":2,"lng":2,"ts":1e300}`, ErrOutOfRange},
		{"negative batt", `{"lat":2,"lng":2,"ts":` + itoa(ms) + `,"batt":-1}`, ErrOutOfRange},
		{"hdg 361", `{"lat":2,"lng":2,"ts":` + itoa(ms) + `,"hdg":361}`, ErrOutOfRange},
		{"ts in seconds", `{"lat":2,"lng":2,"ts":` + itoa(ms/1000) + `}`, ErrStale},
		{"25h old", `{"lat":2,"lng":2,"ts":` + itoa(ms-25*3600*1000) + `}`, ErrStale},
		{"6 min ahead", `{"lat":2,"lng":2,"ts":` + itoa(ms+6*60*1000) + `}`, ErrFuture},
		{"4 min ahead ok", `{"lat":2,"lng":2,"ts":` + itoa(ms+4*60*1000) + `}`, nil},
		{"too large", `{"lat":2,"lng":2,"ts":` + itoa(ms) + `,"pad":"` + strings.Repeat("x", 1100) + `"}`, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseFix("D1", []byte(tt.payload), t0)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("ParseFix: %v", err)
				}
				if f.DriverID != "D1" || f.Recv != ms {
					t.Fatalf("got %+v", f)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseFixValues(t *testing.T) {
	f, err := ParseFix("D7", []byte(`{"lat":38.58,"lng":-121.49,"ts":`+itoa(t0.UnixMilli())+`,"acc":5,"spd":8.2,"hdg":270,"batt":81}`), t0)
	if err != nil {
		t.Fatal(err)
	}
	want := Fix{DriverID: "D7", Lat: 38.58, Lng: -121.49, TS: t0.UnixMilli(), Acc: 5, Spd: 8.2, Hdg: 270, Batt: 81, Recv: t0.UnixMilli()}
	if f != want {
		t.Fatalf("got %+v, want %+v", f, want)
	}
	if !f.Time().Equal(t0) {
		t.Fatalf("Time() = %v", f.Time())
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

func TestParseDriverTopic(t *testing.T) {
	tests := []struct {
		topic, driver, kind string
		ok                  bool
	}{
		{"depot/DEMO1/drivers/D7/gps", "D7", KindGPS, true},
		{"depot/DEMO1/drivers/drv_7.a-b/presence", "drv_7.a-b", KindPresence, true},
		{"depot/DEMO1/drivers/D7/reply", "D7", KindReply, true},
		{"depot/DEMO1/drivers/D7/inbox", "D7", KindInbox, true},
		{"depot/OTHER/drivers/D7/gps", "", "", false},
		{"depot/DEMO1/drivers/D7/gps/extra", "", "", false},
		{"depot/DEMO1/drivers//gps", "", "", false},
		{"depot/DEMO1/drivers/+/gps", "", "", false},
		{"depot/DEMO1/drivers/D 7/gps", "", "", false},
		{"depot/DEMO1/routes/R1/state", "", "", false},
		{"depot/DEMO1/drivers/D7/speed", "", "", false},
		{"DEPOT/DEMO1/drivers/D7/gps", "", "", false},
		{"", "", "", false},
		{"depot/DEMO1/drivers/" + strings.Repeat("x", 65) + "/gps", "", "", false},
	}
	for _, tt := range tests {
		d, k, err := ParseDriverTopic("DEMO1", tt.topic)
		if tt.ok != (err == nil) || d != tt.driver || k != tt.kind {
			t.Errorf("ParseDriverTopic(%q) = %q, %q, %v; want %q, %q, ok=%v", tt.topic, d, k, err, tt.driver, tt.kind, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrBadTopic) {
			t.Errorf("err %v is not ErrBadTopic", err)
		}
	}
}

func TestColor(t *testing.T) {
	for behind, want := range map[int]string{-1: Green, 0: Green, 1: Green, 2: Yellow, 5: Yellow, 6: Red, 40: Red} {
		if got := Color(behind); got != want {
			t.Errorf("Color(%d) = %s, want %s", behind, got, want)
		}
	}
}

func TestRefusalReason(t *testing.T) {
	_, err := ParseFix("D1", []byte(`{"lat":200,"lng":0,"ts":1}`), t0)
	if got := RefusalReason(err); got != "out_of_range" {
		t.Fatalf("RefusalReason = %q", got)
	}
	if got := RefusalReason(errors.New("x")); got != "other" {
		t.Fatalf("RefusalReason = %q", got)
	}
}

func FuzzParseFix(f *testing.F) {
	ms := itoa(t0.UnixMilli())
	for _, s := range []string{
		`{"lat":38.58,"lng":-121.49,"ts":` + ms + `,"acc":5,"spd":8.2,"hdg":270,"batt":81}`,
		`{"lat":1e400,"lng":0,"ts":0}`, `{"lat":-0,"lng":-0,"ts":-1}`, `{}`, `[]`, `null`, "\x00", `{"lat":1,"lng":1,"ts":"x"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fix, err := ParseFix("D1", b, t0)
		if err != nil {
			if RefusalReason(err) == "other" {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if fix.Lat < -90 || fix.Lat > 90 || fix.Lng < -180 || fix.Lng > 180 {
			t.Fatalf("accepted out-of-range fix %+v", fix)
		}
		if d := t0.UnixMilli() - fix.TS; d > MaxFixAge.Milliseconds() || -d > MaxFixSkew.Milliseconds() {
			t.Fatalf("accepted fix with ts %d", fix.TS)
		}
		if len(b) > MaxFixPayload {
			t.Fatalf("accepted %d bytes", len(b))
		}
	})
}

func FuzzParseDriverTopic(f *testing.F) {
	for _, s := range []string{"depot/DEMO1/drivers/D7/gps", "depot/DEMO1/drivers/#/gps", "depot//drivers/a/reply", "/////"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		d, k, err := ParseDriverTopic("DEMO1", topic)
		if err != nil {
			return
		}
		if !ValidID(d) || (Topics{Depot: "DEMO1"}).Driver(d, k) != topic {
			t.Fatalf("accepted %q as %q/%q", topic, d, k)
		}
	})
}
