package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"image/png"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/depotcc/depot/ui/setup"
)

// fakeClock is the appliance's clock moved by a test.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// rawRequest sends a request with a bearer token and an optional Host
// header and returns the answer's status, headers and body.
func (a *testApp) rawRequest(t *testing.T, method, path, token, host string, body any) (int, http.Header, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+a.HTTPAddr()+path, r)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, got
}

type deviceAnswer struct {
	DriverID     string     `json:"driverId"`
	Token        string     `json:"token"`
	MQTTClientID string     `json:"mqttClientId"`
	Setup        *setup.Set `json:"setup"`
}

// TestDeviceSetups: POST /devices answers the set-ups, made from the host
// the admin's request came to and the bound MQTT port; the setup endpoint
// draws each as a QR code for admins only, while the token is held (30
// minutes, not across a restart, not after a revoke); no token reaches the
// log.
func TestDeviceSetups(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	clk := &fakeClock{t: time.Now()}
	a := startApp(t, "", func(c *ServeConfig) { c.LogLevel = "debug" }, func(m *Main) {
		m.faults.logTo = logs
		m.Clock = clk.now
	})
	var tokens []string
	provision := func(driver string) deviceAnswer {
		t.Helper()
		var dev deviceAnswer
		if code := a.request(t, "POST", "/api/v1/devices", a.admin, map[string]string{"driverId": driver, "name": "van"}, &dev); code != 201 || dev.Token == "" {
			t.Fatalf("provision %s: %d %+v", driver, code, dev)
		}
		tokens = append(tokens, dev.Token)
		return dev
	}

	dev := provision("D9")
	if dev.MQTTClientID != "drv-D9" || dev.Setup == nil {
		t.Fatalf("answer %+v", dev)
	}
	s, base := dev.Setup, "http://"+a.HTTPAddr()
	if !strings.HasPrefix(s.DriverApp, base+"/driver/#pair=") || strings.Contains(s.DriverApp, dev.Token) || s.Traccar != base+"/api/v1/osmand/"+dev.Token || s.TraccarID != "D9" {
		t.Fatalf("set-ups %+v", s)
	}
	mqttPort, _ := strconv.Atoi(a.MQTTAddr()[strings.LastIndex(a.MQTTAddr(), ":")+1:])
	if c := s.OwnTracksConfig; c == nil || c.Host != "127.0.0.1" || c.Port != mqttPort || c.TLS || c.Password != dev.Token || c.ClientID != "drv-D9" {
		t.Fatalf("OwnTracks MQTT set-up %+v", s.OwnTracksConfig)
	}
	if c := s.OwnTracksHTTPConfig; c.URL != base+"/api/v1/owntracks" || c.Mode != 3 || c.Username != "D9" {
		t.Fatalf("OwnTracks HTTP set-up %+v", c)
	}

	get := func(who, path string) (int, http.Header, []byte) {
		t.Helper()
		return a.rawRequest(t, "GET", path, who, "", nil)
	}
	for _, kind := range setup.Kinds {
		for _, format := range []string{"png", "svg"} {
			code, h, body := get(a.admin, "/api/v1/devices/D9/setup?kind="+kind+"&format="+format)
			if code != 200 || h.Get("Cache-Control") != "no-store" {
				t.Fatalf("%s %s: %d %s %.200s", kind, format, code, h, body)
			}
			switch format {
			case "png":
				img, err := png.Decode(bytes.NewReader(body))
				if err != nil || h.Get("Content-Type") != "image/png" || img.Bounds().Dx() != img.Bounds().Dy() {
					t.Fatalf("%s PNG: %v %s", kind, err, h.Get("Content-Type"))
				}
			case "svg":
				var root struct {
					XMLName xml.Name
				}
				if err := xml.Unmarshal(body, &root); err != nil || root.XMLName.Local != "svg" || h.Get("Content-Type") != "image/svg+xml" {
					t.Fatalf("%s SVG: %v %v %s", kind, err, root.XMLName, h.Get("Content-Type"))
				}
			}
		}
	}
	if code, h, _ := get(a.admin, "/api/v1/devices/D9/setup"); code != 200 || h.Get("Content-Type") != "image/png" {
		t.Fatalf("default kind and format: %d %s", code, h.Get("Content-Type"))
	}
	for _, c := range []struct {
		who, path string
		code      int
		fragment  string
	}{
		{a.admin, "/api/v1/devices/D9/setup?kind=whatsapp", 400, "kind"},
		{a.admin, "/api/v1/devices/D9/setup?format=gif", 400, "format"},
		{a.admin, "/api/v1/devices/NOPE/setup", 404, "no such device"},
		{a.disp, "/api/v1/devices/D9/setup", 403, `"error"`},
		{"", "/api/v1/devices/D9/setup", 401, `"error"`},
		// D1's credential was issued outside the API: its token was never held, as after a restart.
		{a.admin, "/api/v1/devices/D1/setup", 410, `{"error":"the token of this device is no longer held (30 minutes after provisioning, or a restart): provision it again"}`},
	} {
		code, _, body := get(c.who, c.path)
		if code != c.code || !bytes.Contains(body, []byte(c.fragment)) {
			t.Errorf("GET %s: %d %.200s; want %d with %s", c.path, code, body, c.code, c.fragment)
		}
	}

	// A token is held for 30 minutes.
	provision("D8")
	clk.add(29 * time.Minute)
	if code, _, _ := get(a.admin, "/api/v1/devices/D8/setup"); code != 200 {
		t.Fatalf("after 29 minutes: %d", code)
	}
	clk.add(2 * time.Minute)
	if code, _, body := get(a.admin, "/api/v1/devices/D8/setup?kind=traccar"); code != 410 || !bytes.Contains(body, []byte("provision it again")) {
		t.Fatalf("after 31 minutes: %d %s", code, body)
	}
	provision("D8") // provisioning again makes a new token, held again
	if code, _, _ := get(a.admin, "/api/v1/devices/D8/setup"); code != 200 {
		t.Fatalf("provisioned again: %d", code)
	}

	// Revoked: no device; issued again outside the API: the held token
	// was dropped, so nothing stale is drawn.
	if code := a.request(t, "DELETE", "/api/v1/devices/D8", a.admin, nil, nil); code != 204 {
		t.Fatalf("revoke: %d", code)
	}
	if code, _, _ := get(a.admin, "/api/v1/devices/D8/setup"); code != 404 {
		t.Fatalf("revoked device: %d", code)
	}
	if _, err := a.accounts.CreateDevice("D8", "by hand"); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := get(a.admin, "/api/v1/devices/D8/setup"); code != 410 {
		t.Fatalf("device re-issued outside the API: %d", code)
	}

	// A Host that cannot go into a link: the credential is issued without
	// set-ups, and no QR code can be drawn from such a request.
	code, _, body := a.rawRequest(t, "POST", "/api/v1/devices", a.admin, "depot_x:8080", map[string]string{"driverId": "D7"})
	var odd map[string]any
	if json.Unmarshal(body, &odd); code != 201 || odd["token"] == nil || odd["setup"] != nil {
		t.Fatalf("POST with Host depot_x: %d %s", code, body)
	}
	tokens = append(tokens, odd["token"].(string))
	if code, _, body := a.rawRequest(t, "GET", "/api/v1/devices/D7/setup", a.admin, "depot_x:8080", nil); code != 400 || !bytes.Contains(body, []byte("--public-url")) {
		t.Fatalf("GET with Host depot_x: %d %s", code, body)
	}
	if code, _, _ := get(a.admin, "/api/v1/devices/D7/setup"); code != 200 {
		t.Fatalf("GET D7 with a good Host: %d", code)
	}

	log := logs.String()
	if !strings.Contains(log, "device credential issued") {
		t.Fatalf("the log was not captured: %.500s", log)
	}
	for _, tok := range append(tokens, a.tokens["D1"], a.tokens["D2"]) {
		if strings.Contains(log, tok) {
			t.Fatalf("a device token is in the log")
		}
	}
}

// TestDeviceSetupsPublicURL: with --public-url the links name it, whatever
// Host the request came with, and the OwnTracks MQTT set-up its host name.
func TestDeviceSetupsPublicURL(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", func(c *ServeConfig) { c.PublicURL = "https://depot.example:8443/" })
	code, _, body := a.rawRequest(t, "POST", "/api/v1/devices", a.admin, "depot_x", map[string]string{"driverId": "D9"})
	var dev deviceAnswer
	if err := json.Unmarshal(body, &dev); err != nil || code != 201 || dev.Setup == nil {
		t.Fatalf("%d %s", code, body)
	}
	s := dev.Setup
	if !strings.HasPrefix(s.DriverApp, "https://depot.example:8443/driver/#pair=") ||
		s.OwnTracksHTTPConfig.URL != "https://depot.example:8443/api/v1/owntracks" ||
		s.OwnTracksConfig.Host != "depot.example" || s.OwnTracksConfig.Port != setup.PortOf(a.MQTTAddr()) ||
		s.TraccarQR != "https://depot.example:8443/api/v1/osmand/"+dev.Token+"?id=D9" {
		t.Fatalf("set-ups %+v", s)
	}
}

func TestPublicURLFlag(t *testing.T) {
	m := NewMain(io.Discard)
	if err := m.ParseFlags([]string{"--public-url", "https://depot.example:8080"}); err != nil || m.Config.publicURL.String() != "https://depot.example:8080" {
		t.Fatalf("%v %v", err, m.Config.publicURL)
	}
	t.Setenv("DEPOT_PUBLIC_URL", "http://10.0.0.5:8080/")
	m = NewMain(io.Discard)
	if err := m.ParseFlags(nil); err != nil || m.Config.publicURL.String() != "http://10.0.0.5:8080" {
		t.Fatalf("DEPOT_PUBLIC_URL: %v %v", err, m.Config.publicURL)
	}
	for _, bad := range []string{"depot.example:8080", "ftp://depot", "https://depot/app", "https://depot?x=1", "https://depot/#a", "https://", "https://u:p@depot"} {
		err := NewMain(io.Discard).ParseFlags([]string{"--public-url", bad})
		if err == nil || !strings.Contains(err.Error(), "--public-url") {
			t.Errorf("--public-url %q: %v", bad, err)
		}
	}
}
