package setup

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"image/png"
	"io"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

const testToken = "tok-EN_abc123-xyz_09AZaz" // the raw URL alphabet of device tokens

func mustBase(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := ParseBase(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestSetupLinks(t *testing.T) {
	s, err := Make(Params{Base: mustBase(t, "https://depot.example:8080/"), MQTTPort: 8883, MQTTTLS: true, DriverID: "D7", Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	for got, want := range map[string]string{
		s.DriverApp: "https://depot.example:8080/driver/#driver=D7&token=" + testToken,
		s.Traccar:   "https://depot.example:8080/api/v1/osmand/" + testToken,
		s.TraccarID: "D7",
		s.TraccarQR: "https://depot.example:8080/api/v1/osmand/" + testToken + "?id=D7",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	// The driver app's credential is only in the fragment.
	u, _ := url.Parse(s.DriverApp)
	if strings.Contains(u.Path+u.RawQuery, testToken) || !strings.Contains(u.Fragment, testToken) {
		t.Errorf("driver app link %q: token outside the fragment", s.DriverApp)
	}
	if !strings.HasPrefix(s.OwnTracks, "owntracks:///config?inline=") || !strings.HasPrefix(s.OwnTracksHTTP, "owntracks:///config?inline=") {
		t.Errorf("OwnTracks links %q %q", s.OwnTracks, s.OwnTracksHTTP)
	}
	// The answer's JSON names.
	b, _ := json.Marshal(s)
	for _, k := range []string{`"driverApp"`, `"ownTracks"`, `"ownTracksConfig"`, `"ownTracksHttp"`, `"ownTracksHttpConfig"`, `"traccar"`, `"traccarId"`, `"traccarQr"`} {
		if !bytes.Contains(b, []byte(k)) {
			t.Errorf("set-up JSON lacks %s: %s", k, b)
		}
	}
}

func TestOwnTracksConfig(t *testing.T) {
	s, err := Make(Params{Base: mustBase(t, "http://10.0.0.5:8080"), MQTTPort: 1883, DriverID: "van-12", Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"_type": "configuration", "mode": 0.0, "host": "10.0.0.5", "port": 1883.0, "tls": false,
		"auth": true, "username": "van-12", "password": testToken, "deviceId": "phone", "tid": "12",
		"clientId": "drv-van-12", "cleanSession": false, "mqttProtocolLevel": 4.0, "keepalive": 60.0,
		"cmd": true, "allowRemoteLocation": true, "pubRetain": false,
	}
	// The inline link decodes back to the configuration, key for key.
	for name, link := range map[string]string{"answer object": "", "inline link": s.OwnTracks} {
		var raw []byte
		if link == "" {
			raw, _ = json.Marshal(s.OwnTracksConfig)
		} else {
			var err error
			if raw, err = DecodeInlineLink(link); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		var got map[string]any
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %v\nwant %v", name, got, want)
		}
	}
	wantHTTP := map[string]any{
		"_type": "configuration", "mode": 3.0, "url": "http://10.0.0.5:8080/api/v1/owntracks",
		"auth": true, "username": "van-12", "password": testToken, "deviceId": "phone", "tid": "12",
		"cmd": true, "allowRemoteLocation": true,
	}
	raw, err := DecodeInlineLink(s.OwnTracksHTTP)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil || !reflect.DeepEqual(got, wantHTTP) {
		t.Errorf("HTTP configuration %v (%v); want %v", got, err, wantHTTP)
	}
}

// TestInlineLinkEscaping: a base64 '+' or '/' or '=' never stands bare in
// the query (Android's URLDecoder would read '+' as a space), and the
// value is standard base64 with padding, which both apps decode.
func TestInlineLinkEscaping(t *testing.T) {
	// "~~~" is "fn5+" and "???" is "Pz8/" in base64; 4 bytes need padding.
	cfg := map[string]string{"_type": "configuration", "x": "~~~???>>", "y": "a"}
	link := InlineLink(cfg)
	q := strings.TrimPrefix(link, "owntracks:///config?inline=")
	if strings.ContainsAny(q, "+/=") {
		t.Fatalf("unescaped base64 characters in %q", link)
	}
	v, err := url.QueryUnescape(q)
	if err != nil || !strings.ContainsAny(v, "+/") || len(v)%4 != 0 {
		t.Fatalf("query value %q (%v)", v, err)
	}
	raw, err := DecodeInlineLink(link)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]string
	if err := json.Unmarshal(raw, &back); err != nil || !reflect.DeepEqual(back, cfg) {
		t.Fatalf("round trip: %v %v", back, err)
	}
}

func TestNoMQTTPortNoMQTTSetup(t *testing.T) {
	s, err := Make(Params{Base: mustBase(t, "http://depot"), DriverID: "D1", Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	if s.OwnTracks != "" || s.OwnTracksConfig != nil {
		t.Fatalf("MQTT set-up without an MQTT port: %+v", s)
	}
	if _, err := s.Text(KindOwnTracks); err == nil {
		t.Fatal("QR text of a missing set-up")
	}
	if txt, err := s.Text(KindOwnTracksHTTP); err != nil || txt != s.OwnTracksHTTP {
		t.Fatalf("HTTP set-up: %q %v", txt, err)
	}
}

func TestTID(t *testing.T) {
	for in, want := range map[string]string{"D7": "D7", "d7": "D7", "van-12": "12", "x": "X", "a.b_c": "BC", "drv-9": "V9", "--": ""} {
		if got := TID(in); got != want {
			t.Errorf("TID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseBase(t *testing.T) {
	for in, want := range map[string]string{
		"https://depot.example:8080":  "https://depot.example:8080",
		"https://depot.example:8080/": "https://depot.example:8080",
		"http://10.0.0.5":             "http://10.0.0.5",
		"http://[fd00::5]:8080":       "http://[fd00::5]:8080",
	} {
		u, err := ParseBase(in)
		if err != nil || u.String() != want {
			t.Errorf("ParseBase(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
	for _, bad := range []string{"", "depot.example:8080", "/depot", "ftp://depot", "https://", "https://depot/x",
		"https://depot?a=1", "https://depot/#x", "https://depot#", "https://u:p@depot", "https://depot:0", "https://depot:99999", "https://depot:x"} {
		if u, err := ParseBase(bad); err == nil {
			t.Errorf("ParseBase(%q) accepted: %v", bad, u)
		}
	}
	if _, err := Make(Params{DriverID: "D1", Token: "t"}); err == nil {
		t.Error("Make without a base")
	}
	if _, err := Make(Params{Base: mustBase(t, "http://depot"), DriverID: "D1"}); err == nil {
		t.Error("Make without a token")
	}
}

func TestQRImages(t *testing.T) {
	s, err := Make(Params{Base: mustBase(t, "https://depot.example:8080"), MQTTPort: 8883, MQTTTLS: true, DriverID: "D7", Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range Kinds {
		text, err := s.Text(kind)
		if err != nil {
			t.Fatal(err)
		}
		p, typ, err := Image(text, FormatPNG)
		if err != nil || typ != "image/png" {
			t.Fatalf("%s: %v %s", kind, err, typ)
		}
		img, err := png.Decode(bytes.NewReader(p))
		if err != nil {
			t.Fatalf("%s: PNG: %v", kind, err)
		}
		if b := img.Bounds(); b.Dx() != b.Dy() || b.Dx() < 21*pngModule {
			t.Errorf("%s: PNG is %v", kind, b)
		}
		svg, typ, err := Image(text, FormatSVG)
		if err != nil || typ != "image/svg+xml" {
			t.Fatalf("%s: %v %s", kind, err, typ)
		}
		checkSVG(t, kind, svg)
		term, err := Terminal(text)
		if err != nil || !strings.Contains(term, "█") {
			t.Fatalf("%s: terminal: %v", kind, err)
		}
	}
	if _, _, err := Image("x", "gif"); err == nil {
		t.Error("gif accepted")
	}
	if _, err := s.Text("bogus"); err == nil {
		t.Error("unknown kind accepted")
	}
}

// checkSVG parses svg as XML and checks it is one SVG root with a white
// background as large as its view box (the quiet zone) and one path.
func checkSVG(t *testing.T, kind string, svg []byte) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(svg))
	var root, rects, paths int
	var viewBox, rectW, fill string
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: SVG is not XML: %v", kind, err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		attr := func(n string) string {
			for _, a := range se.Attr {
				if a.Name.Local == n {
					return a.Value
				}
			}
			return ""
		}
		switch se.Name.Local {
		case "svg":
			root++
			if se.Name.Space != "http://www.w3.org/2000/svg" {
				t.Errorf("%s: SVG namespace %q", kind, se.Name.Space)
			}
			viewBox = attr("viewBox")
		case "rect":
			rects++
			rectW, fill = attr("width"), attr("fill")
		case "path":
			paths++
			if !strings.HasPrefix(attr("d"), "M") {
				t.Errorf("%s: path %.40q", kind, attr("d"))
			}
		}
	}
	if root != 1 || rects != 1 || paths != 1 || fill != "#fff" || viewBox != "0 0 "+rectW+" "+rectW {
		t.Errorf("%s: svg=%d rect=%d path=%d fill=%q viewBox=%q rect width=%q", kind, root, rects, paths, fill, viewBox, rectW)
	}
}

func TestPortOf(t *testing.T) {
	for in, want := range map[string]int{"[::]:1883": 1883, "127.0.0.1:8883": 8883, "": 0, "x": 0, ":abc": 0} {
		if got := PortOf(in); got != want {
			t.Errorf("PortOf(%q) = %d, want %d", in, got, want)
		}
	}
}
