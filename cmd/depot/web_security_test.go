package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/depotcc/depot/ui"
	"github.com/eclipse/paho.golang/paho"
)

// login posts a login as user from the given X-Forwarded-For ("" for none).
func (a *testApp) login(t *testing.T, user, password, xff string) int {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"username": user, "password": password})
	req, _ := http.NewRequest("POST", "http://"+a.HTTPAddr()+"/api/v1/auth/login", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestLoginIgnoresForwardedFor: without --trusted-proxies a client cannot
// escape the per-address budget by rotating X-Forwarded-For (and user
// names).
func TestLoginIgnoresForwardedFor(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	for i := 1; i <= 15; i++ {
		code := a.login(t, "u"+strconv.Itoa(i), "guess-guess", "203.0.113."+strconv.Itoa(i))
		if code == 429 {
			if i > 11 {
				t.Fatalf("first 429 at attempt %d, budget 10", i)
			}
			return
		}
		if code != 401 {
			t.Fatalf("attempt %d: HTTP %d", i, code)
		}
	}
	t.Fatal("15 wrong logins with a rotating X-Forwarded-For met no 429")
}

// TestLoginTrustedProxy: behind a trusted proxy its X-Forwarded-For names
// the client; failures from one address do not lock the user out from
// another.
func TestLoginTrustedProxy(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", func(c *ServeConfig) { c.TrustedProxies = "127.0.0.1/32" })
	for i := 1; i <= 15; i++ {
		if code := a.login(t, "u"+strconv.Itoa(i), "guess-guess", "203.0.113."+strconv.Itoa(i)); code != 401 {
			t.Fatalf("attempt %d from its own address: HTTP %d", i, code)
		}
	}
	if guessAna(t, a, func(int) string { return "198.51.100.1" }) == 0 {
		t.Fatal("20 wrong passwords from one address were not throttled")
	}
	if code := a.login(t, "ana", anaPassword, "198.51.100.2"); code != 200 {
		t.Fatalf("ana's right password from another address: HTTP %d", code)
	}
}

// guessAna tries 20 wrong passwords for ana, guess i from the forwarded
// address from(i), and returns how many were throttled (429).
func guessAna(t *testing.T, a *testApp, from func(i int) string) int {
	t.Helper()
	throttled := 0
	for i := 1; i <= 20; i++ {
		switch code := a.login(t, "ana", "guess-"+strconv.Itoa(i), from(i)); code {
		case 401:
		case 429:
			throttled++
		default:
			t.Fatalf("guess %d: HTTP %d", i, code)
		}
	}
	return throttled
}

// TestLoginThrottleCountsIPv6Prefixes: an IPv6 host holds a whole /64, so
// guesses from many of its addresses share one budget, while another /64
// still logs in.
func TestLoginThrottleCountsIPv6Prefixes(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", func(c *ServeConfig) { c.TrustedProxies = "127.0.0.1/32" })
	if guessAna(t, a, func(i int) string { return fmt.Sprintf("2001:db8:1:2::%x", i) }) == 0 {
		t.Fatal("20 wrong passwords from 20 addresses of one /64 were not throttled")
	}
	if code := a.login(t, "ana", anaPassword, "2001:db8:1:3::1"); code != 200 {
		t.Fatalf("ana's right password from another /64: HTTP %d", code)
	}
}

// syncBuffer is a log sink the appliance's goroutines may write at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSecretsStayHidden: the feed URL's password and API key appear
// nowhere: not in /healthz (which without a token shows only the status
// and the bound addresses), not in the admin's detail, the heartbeat or the
// log, even when the feed fails with an error that quotes the URL.
func TestSecretsStayHidden(t *testing.T) {
	t.Parallel()
	var failing atomic.Bool
	feed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
				c.Close() // the client's error quotes the URL
			}
			return
		}
		io.WriteString(w, feedJSON(42, 2))
	}))
	defer feed.Close()
	const pass, key = "hunter2pass", "SEKRETKEY123"
	u := strings.Replace(feed.URL, "http://", "http://feeduser:"+pass+"@", 1) + "/feed?api_key=" + key + "&depot=DEMO1"
	logs := &syncBuffer{}
	a := startApp(t, "", func(c *ServeConfig) { c.CortexURL = u }, func(m *Main) { m.faults.logTo = logs })

	secret := func(what, s string) {
		t.Helper()
		for _, x := range []string{pass, key} {
			if strings.Contains(s, x) {
				t.Fatalf("%s shows a secret: %s", what, s)
			}
		}
	}
	var pub map[string]any
	if code := a.request(t, "GET", "/healthz", "", nil, &pub); code != 200 {
		t.Fatalf("healthz: %d", code)
	}
	raw, _ := json.Marshal(pub)
	secret("/healthz", string(raw))
	for _, k := range []string{"status", "depot", "version", "mqtt", "http"} {
		if pub[k] == nil || pub[k] == "" {
			t.Fatalf("/healthz without a token lacks %q: %s", k, raw)
		}
	}
	if pub["mqtt"] != a.MQTTAddr() || pub["http"] != a.HTTPAddr() {
		t.Fatalf("/healthz addresses: %s", raw)
	}
	if strings.Contains(string(raw), "api_key") || strings.Contains(string(raw), "feed") || len(pub) != 5 {
		t.Fatalf("/healthz without a token shows more than the status: %s", raw)
	}
	for _, tok := range []string{"garbage", a.disp} {
		var h map[string]any
		a.request(t, "GET", "/healthz", tok, nil, &h)
		if len(h) != 5 {
			t.Fatalf("/healthz with %.10q shows detail: %v", tok, h)
		}
	}

	failing.Store(true)
	var full map[string]any
	checkFor(t, 10*time.Second, func() error {
		full = nil
		a.request(t, "GET", "/healthz", a.admin, nil, &full)
		if f, _ := full["feed"].(map[string]any); f == nil || f["ok"] != false {
			return fmt.Errorf("feed health %v", full["feed"])
		}
		return nil
	})
	raw, _ = json.Marshal(full)
	secret("/healthz as admin", string(raw))
	if f := full["feed"].(map[string]any); !strings.Contains(f["source"].(string), "REDACTED") || !strings.Contains(f["source"].(string), "127.0.0.1") {
		t.Fatalf("admin's feed source %q", f["source"])
	}
	hb, err := a.depot.Heartbeat(bridge.AppStatus{})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ = json.Marshal(hb)
	secret("heartbeat", string(raw))
	var cfg map[string]any
	a.getJSON(t, "/api/v1/config", &cfg)
	raw, _ = json.Marshal(cfg)
	secret("/api/v1/config", string(raw))
	log := logs.String()
	if !strings.Contains(log, "route feed cycle failed") {
		t.Fatalf("no failed feed cycle logged: %s", log)
	}
	secret("the log", log)
}

// TestPprofOff: profiles (whose cmdline shows the flags) are served only
// with --pprof, and then only to admins.
func TestPprofOff(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	for _, p := range []string{"/debug/pprof/cmdline", "/debug/pprof/heap", "/debug/pprof/"} {
		if code := a.request(t, "GET", p, a.admin, nil, nil); code != 404 {
			t.Fatalf("%s without --pprof: HTTP %d", p, code)
		}
	}
	b := startApp(t, "", func(c *ServeConfig) { c.Pprof = true })
	if code := b.request(t, "GET", "/debug/pprof/cmdline", b.admin, nil, nil); code != 200 {
		t.Fatalf("cmdline with --pprof as admin: HTTP %d", code)
	}
	if code := b.request(t, "GET", "/debug/pprof/cmdline", b.disp, nil, nil); code != 403 {
		t.Fatalf("cmdline with --pprof as dispatcher: HTTP %d", code)
	}
}

func secretFile(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSecretFiles: the payroll secret and the feed's credentials can be
// read from files, so they show neither in ps nor in the feed URL.
func TestSecretFiles(t *testing.T) {
	t.Parallel()
	const payroll = "payroll-secret-0123456789"
	m := NewMain(io.Discard)
	if err := m.ParseFlags([]string{"--payroll-secret-file", secretFile(t, "payroll", payroll+"\n", 0o600)}); err != nil {
		t.Fatal(err)
	}
	if m.Config.PayrollSecret != payroll {
		t.Fatalf("payroll secret from file: %q", m.Config.PayrollSecret)
	}
	for _, args := range [][]string{
		{"--payroll-secret-file", secretFile(t, "open", payroll, 0o644)},
		{"--payroll-secret-file", secretFile(t, "short", "short\n", 0o600)},
		{"--payroll-secret-file", filepath.Join(t.TempDir(), "missing")},
		{"--payroll-secret-file", secretFile(t, "p", payroll, 0o600), "--payroll-secret", payroll},
		{"--cortex-url", "file:///x", "--cortex-credentials-file", secretFile(t, "c", "u:p", 0o600)},
		{"--cortex-url", "http://127.0.0.1/x", "--cortex-credentials-file", secretFile(t, "c", "nocolon", 0o600)},
	} {
		if err := NewMain(io.Discard).ParseFlags(args); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	m = NewMain(io.Discard)
	if err := m.ParseFlags([]string{"--payroll-secret", payroll}); err != nil {
		t.Fatal(err)
	}
	if w := strings.Join(m.Config.warnings, "\n"); !strings.Contains(w, "DEPOT_PAYROLL_SECRET") {
		t.Fatalf("no warning for a secret on the command line: %q", w)
	}

	for _, cred := range []struct{ file, check string }{
		{"feeduser:feed pass:word\n", "basic"},
		{"X-Api-Key: k-123\n", "header"},
		{"Authorization: Bearer tok-456\n", "bearer"},
	} {
		var got atomic.Value
		feed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, p, _ := r.BasicAuth()
			ok := map[string]bool{
				"basic":  u == "feeduser" && p == "feed pass:word",
				"header": r.Header.Get("X-Api-Key") == "k-123",
				"bearer": r.Header.Get("Authorization") == "Bearer tok-456",
			}[cred.check]
			got.Store(ok)
			if !ok {
				http.Error(w, "who are you", http.StatusUnauthorized)
				return
			}
			io.WriteString(w, feedJSON(42, 2))
		}))
		a := startApp(t, "", func(c *ServeConfig) {
			c.CortexURL, c.CortexCredentialsFile = feed.URL+"/feed", secretFile(t, "cred", cred.file, 0o600)
		})
		if f := a.depot.Feed(); !f.OK || got.Load() != true {
			t.Errorf("feed with %s credentials: %+v", cred.check, f)
		}
		a.Close()
		feed.Close()
	}
}

// TestWebhookRetryAfterFailure: a signed call that fails (unknown offer,
// offer not yet accepted) can be retried; a successful one cannot be
// replayed.
func TestWebhookRetryAfterFailure(t *testing.T) {
	t.Parallel()
	secret := "payroll-secret-0123456789"
	a := startApp(t, "", func(c *ServeConfig) { c.PayrollSecret = secret })
	now := time.Now().Unix() // one timestamp: the same body is the same signed call
	post := func(b []byte) int {
		req, _ := http.NewRequest("POST", "http://"+a.HTTPAddr()+"/api/v1/webhooks/payroll", bytes.NewReader(b))
		req.Header.Set("X-Payroll-Timestamp", strconv.FormatInt(now, 10))
		req.Header.Set("X-Payroll-Signature", ui.SignPayroll([]byte(secret), now, b))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	unknown := []byte(`{"vtoId":"vto_nope","payrollRef":"PR-0"}`)
	if code := post(unknown); code != 404 {
		t.Fatalf("unknown offer: HTTP %d", code)
	}
	if code := post(unknown); code != 404 {
		t.Fatalf("unknown offer asked again: HTTP %d, want 404 (a failed call must not burn its signature)", code)
	}
	var offer map[string]any
	if code := a.request(t, "POST", "/api/v1/vto", a.disp, map[string]string{"driverId": "D1", "routeId": "R1"}, &offer); code != 201 {
		t.Fatalf("POST /vto: %d", code)
	}
	vto := offer["vtoId"].(string)
	body := []byte(`{"vtoId":"` + vto + `","payrollRef":"PR-1"}`)
	if code := post(body); code != 409 {
		t.Fatalf("confirm before accept: HTTP %d", code)
	}
	if code := a.request(t, "POST", "/api/v1/vto/"+vto+"/accept", a.disp, nil, nil); code != 200 {
		t.Fatalf("accept: %d", code)
	}
	if code := post(body); code != 200 {
		t.Fatalf("the same call after accept: HTTP %d, want 200", code)
	}
	if code := post(body); code != 409 {
		t.Fatalf("replayed successful call: HTTP %d, want 409", code)
	}
}

// TestDeleteUser: an admin deletes a user; her tokens fail at once over
// HTTP and MQTT and her live MQTT session is ended.
func TestDeleteUser(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	c, code, err := mqttConnect(a.MQTTAddr(), "dash-ana:1", "ana", a.disp)
	if err != nil || code != 0 {
		t.Fatalf("ana's dashboard: 0x%02x %v", code, err)
	}
	defer c.Disconnect(&paho.Disconnect{})
	if code := a.request(t, "DELETE", "/api/v1/users/ana", a.disp, nil, nil); code != 403 {
		t.Fatalf("dispatcher deletes a user: HTTP %d", code)
	}
	if code := a.request(t, "DELETE", "/api/v1/users/admin", a.admin, nil, nil); code != 409 {
		t.Fatalf("admin deletes herself: HTTP %d", code)
	}
	if code := a.request(t, "DELETE", "/api/v1/users/nobody", a.admin, nil, nil); code != 404 {
		t.Fatalf("delete a user that does not exist: HTTP %d", code)
	}
	if code := a.request(t, "DELETE", "/api/v1/users/ana", a.admin, nil, nil); code != 204 {
		t.Fatalf("delete ana: HTTP %d", code)
	}
	if code := a.request(t, "GET", "/api/v1/routes", a.disp, nil, nil); code != 401 {
		t.Fatalf("deleted user's token: HTTP %d", code)
	}
	if _, code, _ := mqttConnect(a.MQTTAddr(), "dash-ana:2", "ana", a.disp); code == 0 {
		t.Fatal("deleted user's token opened an MQTT session")
	}
	checkFor(t, 5*time.Second, func() error {
		if n := a.broker.CountByRole()[bridge.RoleDispatcher]; n != 0 {
			return fmt.Errorf("%d dispatcher sessions still open", n)
		}
		return nil
	})
	var users []map[string]any
	a.request(t, "GET", "/api/v1/users", a.admin, nil, &users)
	for _, u := range users {
		if u["username"] == "ana" {
			t.Fatal("ana still listed")
		}
	}
}
