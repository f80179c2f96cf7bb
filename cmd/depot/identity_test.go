package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/depotcc/depot/ui/auth"
	"github.com/golang-jwt/jwt/v5"
)

type protocol struct {
	name    string
	connect func(d dialer, clientID, user, pass string) (session, byte, error)
	v5      bool
}

var protocols = []protocol{{"v5", connectV5, true}, {"v3", connectV3, false}}

// code picks the expected reason code for the protocol version.
func (p protocol) code(v5, v3 byte) byte {
	if p.v5 {
		return v5
	}
	return v3
}

// expiredToken signs a token for sub that expired an hour ago.
func expiredToken(t *testing.T, a *testApp, sub, role string) string {
	c := &auth.Claims{Role: role, Depot: "DEMO1", RegisteredClaims: jwt.RegisteredClaims{Subject: sub, Issuer: "depot",
		IssuedAt: jwt.NewNumericDate(time.Now().Add(-13 * time.Hour)), ExpiresAt: jwt.NewNumericDate(time.Now().Add(-time.Hour))}}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(a.accounts.Key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tamper rewrites a dispatcher token's claims to role admin and keeps the
// signature: a privilege escalation attempt.
func tamper(t *testing.T, tok string) string {
	parts := strings.Split(tok, ".")
	claims, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	forged := strings.Replace(string(claims), `"role":"dispatcher"`, `"role":"admin"`, 1)
	if forged == string(claims) {
		t.Fatalf("no role in %s", claims)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(forged))
	return strings.Join(parts, ".")
}

// TestMQTTConnectMatrix: every kind of credential, over TCP and WebSocket,
// MQTT 3.1.1 and 5, with the exact CONNACK code.
func TestMQTTConnectMatrix(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	if _, err := a.accounts.CreateDevice("D3", "to be revoked"); err != nil {
		t.Fatal(err)
	}
	revoked := a.tokens["D1"] // reissued below: the old token stops working
	tok, err := a.accounts.CreateDevice("D1", "reissued")
	if err != nil {
		t.Fatal(err)
	}
	a.tokens["D1"] = tok
	otherDepot := &auth.Accounts{Store: a.store, Key: a.accounts.Key, Depot: "OTHER"}
	if err := otherDepot.Open(); err != nil {
		t.Fatal(err)
	}
	foreign, _, _ := otherDepot.Issue("ana", bridge.RoleDispatcher)

	cases := []struct {
		name               string
		clientID, user, pw string
		v5, v3             byte
	}{
		{"driver", "drv-D1", "D1", a.tokens["D1"], 0, 0},
		{"driver, suffixed client id", "drv-D1:phone", "D1", a.tokens["D1"], 0, 0},
		{"dispatcher", "dash-ana:1", "ana", a.disp, 0, 0},
		{"admin", "dash-admin:1", "admin", a.admin, 0, 0},
		{"anonymous", "drv-D1", "", "", 0x87, 5},
		{"no password", "drv-D1", "D1", "", 0x86, 4},
		{"wrong device token", "drv-D1", "D1", "not-the-token", 0x86, 4},
		{"replaced device token", "drv-D1", "D1", revoked, 0x86, 4},
		{"unknown driver", "drv-D9", "D9", a.tokens["D2"], 0x86, 4},
		{"D2's token as D1", "drv-D1", "D1", a.tokens["D2"], 0x86, 4},
		{"D1 with D2's client id", "drv-D2", "D1", a.tokens["D1"], 0x87, 5},
		{"driver with a dashboard client id", "dash-D1", "D1", a.tokens["D1"], 0x87, 5},
		{"dispatcher with a driver client id", "drv-D1", "ana", a.disp, 0x87, 5},
		{"dispatcher token under another name", "dash-admin:1", "admin", a.disp, 0x86, 4},
		{"expired token", "dash-ana:1", "ana", expiredToken(t, a, "ana", bridge.RoleDispatcher), 0x86, 4},
		{"tampered token", "dash-ana:1", "ana", tamper(t, a.disp), 0x86, 4},
		{"token of another depot", "dash-ana:1", "ana", foreign, 0x86, 4},
		{"user password instead of token", "dash-ana:1", "ana", anaPassword, 0x86, 4},
	}
	transports := map[string]dialer{"tcp": tcpDialer(a.MQTTAddr()), "ws": wsDialer(a.HTTPAddr(), "")}
	for tname, d := range transports {
		for _, p := range protocols {
			for _, tc := range cases {
				t.Run(tname+"/"+p.name+"/"+tc.name, func(t *testing.T) {
					s, code, err := p.connect(d, tc.clientID, tc.user, tc.pw)
					if err != nil {
						t.Fatal(err)
					}
					if s != nil {
						s.close()
					}
					if want := p.code(tc.v5, tc.v3); code != want {
						t.Fatalf("CONNACK 0x%02x, want 0x%02x", code, want)
					}
				})
			}
		}
	}
	// Revoking a device: new connections refused.
	if code := a.request(t, "DELETE", "/api/v1/devices/D3", a.admin, nil, nil); code != 204 {
		t.Fatalf("revoke: HTTP %d", code)
	}
}

// TestMQTTActionMatrix: what each role may publish and subscribe, with the
// exact PUBACK/SUBACK codes, over TCP and WebSocket, MQTT 3.1.1 and 5.
func TestMQTTActionMatrix(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	fix := fixJSON(38.6, -121.4, time.Now())
	type action struct {
		name  string
		pub   bool
		topic string
		ok    bool
	}
	roles := []struct {
		clientID, user, pw string
		actions            []action
	}{
		{"drv-D1", "D1", a.tokens["D1"], []action{
			{"own gps", true, "depot/DEMO1/drivers/D1/gps", true},
			{"own presence", true, "depot/DEMO1/drivers/D1/presence", true},
			{"own reply", true, "depot/DEMO1/drivers/D1/reply", true},
			{"own inbox", false, "depot/DEMO1/drivers/D1/inbox", true},
			{"another driver's inbox", false, "depot/DEMO1/drivers/D2/inbox", false},
			{"the events", false, "depot/DEMO1/events", false},
			{"the whole depot", false, "depot/DEMO1/#", false},
			{"everything", false, "#", false},
			{"write own inbox", true, "depot/DEMO1/drivers/D1/inbox", false},
			{"another driver's gps", true, "depot/DEMO1/drivers/D2/gps", false},
			{"an event", true, "depot/DEMO1/events", false},
		}},
		{"dash-ana:1", "ana", a.disp, []action{
			{"the whole depot", false, "depot/DEMO1/#", true},
			{"the events", false, "depot/DEMO1/events", true},
			{"route states", false, "depot/DEMO1/routes/+/state", true},
			{"another depot", false, "depot/OTHER/#", false},
			{"$SYS", false, "$SYS/#", false},
			{"everything", false, "#", false},
			{"publish an event", true, "depot/DEMO1/events", false},
			{"publish as a driver", true, "depot/DEMO1/drivers/D1/gps", false},
		}},
		{"dash-admin:1", "admin", a.admin, []action{
			{"the whole depot", false, "depot/DEMO1/#", true},
			{"$SYS", false, "$SYS/#", true},
			{"another depot", false, "depot/OTHER/#", false},
			{"publish a route state", true, "depot/DEMO1/routes/R1/state", false},
		}},
	}
	transports := map[string]dialer{"tcp": tcpDialer(a.MQTTAddr()), "ws": wsDialer(a.HTTPAddr(), "")}
	for tname, d := range transports {
		for _, p := range protocols {
			for _, r := range roles {
				for _, act := range r.actions {
					t.Run(fmt.Sprintf("%s/%s/%s/%s", tname, p.name, r.user, act.name), func(t *testing.T) {
						s, code, err := p.connect(d, r.clientID, r.user, r.pw)
						if err != nil || code != 0 {
							t.Fatalf("connect: 0x%02x %v", code, err)
						}
						defer s.close()
						if act.pub {
							code, closed := s.publish(act.topic, fix)
							switch {
							case act.ok && (closed || code == 0x87):
								// Past the ACL the domain may still refuse the
								// content (a GPS fix is no reply): not 0x87.
								t.Fatalf("allowed publish: code 0x%02x closed %v", code, closed)
							case !act.ok && p.v5 && (closed || code != 0x87):
								t.Fatalf("forbidden publish: code 0x%02x closed %v, want PUBACK 0x87", code, closed)
							case !act.ok && !p.v5 && !closed:
								t.Fatalf("forbidden v3 publish was acknowledged (code 0x%02x), want disconnect", code)
							}
							return
						}
						code = s.subscribe(act.topic)
						switch {
						case act.ok && code != 1:
							t.Fatalf("allowed subscribe: SUBACK 0x%02x", code)
						case !act.ok && code != p.code(0x87, 0x80):
							t.Fatalf("forbidden subscribe: SUBACK 0x%02x, want 0x%02x", code, p.code(0x87, 0x80))
						}
					})
				}
			}
		}
	}
	var h map[string]any
	a.request(t, "GET", "/healthz", a.admin, nil, &h) // the counters are for admins
	if r := h["mqttRefused"].(map[string]any); r["publish"].(float64) == 0 || r["read"].(float64) == 0 {
		t.Fatalf("refusals not counted: %v", r)
	}
}

// TestRevokedDeviceIsCutOff: a live handheld session ends within seconds
// of DELETE /devices/{id}, and it cannot come back.
func TestRevokedDeviceIsCutOff(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	drv := a.driver(t, "D2")
	done := make(chan struct{})
	go func() { <-drv.Done(); close(done) }()
	if code := a.request(t, "DELETE", "/api/v1/devices/D2", a.admin, nil, nil); code != 204 {
		t.Fatalf("revoke: HTTP %d", code)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("revoked session still connected")
	}
	if _, code, _ := mqttConnect(a.MQTTAddr(), "drv-D2", "D2", a.tokens["D2"]); code != 0x86 {
		t.Fatalf("revoked token: CONNACK 0x%02x", code)
	}
	if code := a.request(t, "DELETE", "/api/v1/devices/D2", a.admin, nil, nil); code != 404 {
		t.Fatalf("second revoke: HTTP %d", code)
	}
}

// TestHTTPRoles: every /api/v1 route needs a token; roles per route.
func TestHTTPRoles(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", func(c *ServeConfig) { c.Pprof = true })
	cases := []struct {
		method, path string
		body         any
		none, disp   int // status without a token, and as dispatcher
		admin        int
	}{
		{"GET", "/api/v1/routes", nil, 401, 200, 200},
		{"GET", "/api/v1/routes/R1", nil, 401, 200, 200},
		{"GET", "/api/v1/routes/R1/history", nil, 401, 200, 200},
		{"GET", "/api/v1/events?after=0", nil, 401, 200, 200},
		{"GET", "/api/v1/config", nil, 401, 200, 200},
		{"GET", "/api/v1/users", nil, 401, 403, 200},
		{"GET", "/api/v1/devices", nil, 401, 403, 200},
		{"POST", "/api/v1/users", map[string]string{"username": "bo", "password": "bo-secret-1", "role": "dispatcher"}, 401, 403, 201},
		{"POST", "/api/v1/devices", map[string]string{"driverId": "D7", "name": "x"}, 401, 403, 201},
		{"DELETE", "/api/v1/devices/D7", nil, 401, 403, 204},
		{"GET", "/healthz", nil, 200, 200, 200},
		{"GET", "/debug/pprof/heap", nil, 401, 403, 200},
		{"GET", "/debug/pprof/goroutine", nil, 401, 403, 200},
	}
	for _, c := range cases {
		for _, who := range []struct {
			tok  string
			want int
		}{{"", c.none}, {"garbage", c.none}, {a.disp, c.disp}, {a.admin, c.admin}} {
			if c.method != "GET" && who.tok == a.admin {
				continue // run the admin writes once, below, in order
			}
			if got := a.request(t, c.method, c.path, who.tok, c.body, nil); got != who.want {
				t.Errorf("%s %s with %.10q: HTTP %d, want %d", c.method, c.path, who.tok, got, who.want)
			}
		}
	}
	for _, c := range cases {
		if c.method != "GET" {
			if got := a.request(t, c.method, c.path, a.admin, c.body, nil); got != c.admin {
				t.Errorf("%s %s as admin: HTTP %d, want %d", c.method, c.path, got, c.admin)
			}
		}
	}
	// Bad bodies get 400 and change nothing; duplicates 409.
	for _, body := range []any{
		map[string]string{"username": "x y", "password": "long-enough", "role": "dispatcher"},
		map[string]string{"username": "cy", "password": "short", "role": "dispatcher"},
		map[string]string{"username": "cy", "password": "long-enough", "role": "driver"},
		map[string]any{"username": 5},
		map[string]string{"username": "cy", "password": "long-enough", "role": "dispatcher", "extra": "x"},
	} {
		if got := a.request(t, "POST", "/api/v1/users", a.admin, body, nil); got != 400 {
			t.Errorf("POST /users %v: HTTP %d, want 400", body, got)
		}
	}
	if got := a.request(t, "POST", "/api/v1/users", a.admin, map[string]string{"username": "bo", "password": "bo-secret-1", "role": "dispatcher"}, nil); got != 409 {
		t.Errorf("duplicate user: HTTP %d", got)
	}
	var login struct {
		Token, Role string
		ExpiresAt   time.Time
	}
	if got := a.request(t, "POST", "/api/v1/auth/login", "", map[string]string{"username": "bo", "password": "bo-secret-1"}, &login); got != 200 || login.Role != "dispatcher" || login.Token == "" {
		t.Fatalf("new user login: %d %+v", got, login)
	}
	if d := time.Until(login.ExpiresAt); d < 11*time.Hour || d > 13*time.Hour {
		t.Fatalf("token lifetime %s, want a 12 h shift", d)
	}
	var dev struct{ DriverID, Token string }
	if got := a.request(t, "POST", "/api/v1/devices", a.admin, map[string]string{"driverId": "D8"}, &dev); got != 201 || dev.Token == "" {
		t.Fatalf("device: %d %+v", got, dev)
	}
	if _, code, _ := mqttConnect(a.MQTTAddr(), "drv-D8", "D8", dev.Token); code != 0 {
		t.Fatalf("new device credential: CONNACK 0x%02x", code)
	}
}

// TestLoginThrottle: 40 wrong logins in a row are throttled (429 with
// Retry-After) long before the 40th; the right password is throttled too
// while the address is.
func TestLoginThrottle(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	first429 := 0
	for i := 1; i <= 40; i++ {
		req, _ := http.NewRequest("POST", "http://"+a.HTTPAddr()+"/api/v1/auth/login",
			strings.NewReader(`{"username":"ana","password":"guess-`+strconv.Itoa(i)+`"}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case 401:
		case 429:
			if first429 == 0 {
				first429 = i
				if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
					t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
				}
			}
		default:
			t.Fatalf("attempt %d: HTTP %d", i, resp.StatusCode)
		}
	}
	t.Logf("first 429 at attempt %d", first429)
	if first429 == 0 || first429 >= 40 {
		t.Fatalf("first 429 at attempt %d", first429)
	}
	if got := a.request(t, "POST", "/api/v1/auth/login", "", map[string]string{"username": "ana", "password": anaPassword}, nil); got != 429 {
		t.Fatalf("right password while throttled: HTTP %d", got)
	}
	for _, body := range []string{``, `{`, `[]`, `{"username":"ana"}`, `{"username":1,"password":2}`, `{"username":"a","password":"b"}{}`} {
		req, _ := http.NewRequest("POST", "http://"+a.HTTPAddr()+"/api/v1/auth/login", strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("login body %q: HTTP %d, want 400", body, resp.StatusCode)
		}
	}
}

func TestOriginCheck(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", func(c *ServeConfig) { c.AllowedOrigins = "https://wall.depot.example" })
	for origin, ok := range map[string]bool{
		"":                            true,
		"http://" + a.HTTPAddr():      true,
		"https://wall.depot.example":  true,
		"http://evil.example":         false,
		"https://wall.depot.example.": false,
	} {
		_, code, err := connectV5(wsDialer(a.HTTPAddr(), origin), "dash-ana:o", "ana", a.disp)
		if ok && (err != nil || code != 0) {
			t.Errorf("origin %q refused: %v 0x%02x", origin, err, code)
		}
		if !ok && (err == nil || !strings.Contains(err.Error(), "403")) {
			t.Errorf("origin %q: %v, want HTTP 403", origin, err)
		}
	}
}

// TestIdentitySurvivesRestart: users, devices and the signing key (so
// tokens issued before) survive a restart; the key file is private.
func TestIdentitySurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := startApp(t, dir, nil)
	disp, d1 := a.disp, a.tokens["D1"]
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "data", "jwt.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi.Mode(), err)
	}
	m := NewMain(io.Discard)
	m.Config.Data = filepath.Join(dir, "data")
	m.Config.HTTPAddr, m.Config.MQTTAddr, m.Config.LogLevel = "127.0.0.1:0", "127.0.0.1:0", "error"
	m.Config.AdminPassword = "a-different-one" // ignored: admin exists
	if err := m.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	b := &testApp{Main: m}
	if got := b.request(t, "GET", "/api/v1/routes", disp, nil, nil); got != 200 {
		t.Fatalf("old token after restart: HTTP %d", got)
	}
	if _, code, _ := mqttConnect(m.MQTTAddr(), "drv-D1", "D1", d1); code != 0 {
		t.Fatalf("old device token after restart: 0x%02x", code)
	}
	if got := b.request(t, "POST", "/api/v1/auth/login", "", map[string]string{"username": "admin", "password": adminPassword}, nil); got != 200 {
		t.Fatalf("admin password after restart: HTTP %d", got)
	}
}

// FuzzLoginBody throws arbitrary bodies at the real login handler: every
// answer is a clear 4xx (or 200 for the right pair), never a 5xx or a panic.
func FuzzLoginBody(f *testing.F) {
	for _, s := range []string{`{"username":"ana","password":"` + anaPassword + `"}`, `{}`, `[]`, `{"username":1}`,
		`{"username":"ana","password":"x","more":1}`, "\x00", `{"username":"` + strings.Repeat("a", 70000) + `"}`} {
		f.Add([]byte(s))
	}
	h := startApp(f, "", nil).web.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("POST", "/api/v1/auth/login", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case 200, 400, 401, 429:
		default:
			t.Fatalf("HTTP %d for %q: %s", rec.Code, body, rec.Body)
		}
		if rec.Code != 200 && !strings.Contains(rec.Body.String(), `"error"`) {
			t.Fatalf("error without a JSON reason: %s", rec.Body)
		}
	})
}

// TestStockClientsAreRefused: mosquitto_sub and mosquitto_pub, as an
// integrator would use them, without and with a device credential.
func TestStockClientsAreRefused(t *testing.T) {
	t.Parallel()
	sub, err1 := exec.LookPath("mosquitto_sub")
	pub, err2 := exec.LookPath("mosquitto_pub")
	if err1 != nil || err2 != nil {
		t.Fatal("mosquitto clients not installed: run `make deps` (scripts/deps.sh)")
	}
	a := startApp(t, "", nil)
	host, port, _ := net.SplitHostPort(a.MQTTAddr())
	run := func(bin string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, append([]string{"-h", host, "-p", port}, args...)...).CombinedOutput()
		return string(out), err
	}
	cred := []string{"-i", "drv-D1", "-u", "D1", "-P", a.tokens["D1"]}
	fix := string(fixJSON(38.65, -121.43, time.Now()))
	for _, v := range []string{"mqttv311", "mqttv5"} {
		for _, c := range []struct {
			name string
			bin  string
			args []string
			ok   bool
		}{
			{"sub without credentials", sub, []string{"-t", "depot/DEMO1/#", "-C", "1", "-W", "3"}, false},
			{"pub without credentials", pub, []string{"-q", "1", "-t", "depot/DEMO1/drivers/D1/gps", "-m", fix}, false},
			{"driver publishes its own gps", pub, append(cred, "-q", "1", "-t", "depot/DEMO1/drivers/D1/gps", "-m", fix), true},
			{"driver publishes another driver's gps", pub, append(cred, "-q", "1", "-t", "depot/DEMO1/drivers/D2/gps", "-m", fix), false},
			{"driver reads the depot events", sub, append(cred, "-t", "depot/DEMO1/events", "-C", "1", "-W", "3"), false},
		} {
			out, err := run(c.bin, append([]string{"-V", v}, c.args...)...)
			// The clients exit 0 on a denied subscription or a v5 PUBACK
			// refusal, but say so.
			refused := err != nil || strings.Contains(out, "denied") || strings.Contains(out, "Not authorized")
			if c.ok == refused {
				t.Errorf("%s %s: err %v, output %q", v, c.name, err, out)
			}
		}
	}
	var h historyResp
	a.getJSON(t, "/api/v1/routes/R2/history", &h)
	if len(h.Fixes) != 0 {
		t.Fatalf("D1 wrote into D2's route: %+v", h.Fixes)
	}
	a.getJSON(t, "/api/v1/routes/R1/history", &h)
	if len(h.Fixes) != 1 { // the same fix sent over 3.1.1 and 5: a repeat files once
		t.Fatalf("R1 history has %d fixes, want 1", len(h.Fixes))
	}
}
