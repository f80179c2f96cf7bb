package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/depotcc/depot/ui/auth"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"golang.org/x/crypto/bcrypt"
)

// checkFor polls f until it returns nil or total passes (nats-server style):
// tests wait for outcomes, never for fixed sleeps.
func checkFor(t testing.TB, total time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("after %s: %v", total, err)
}

type testApp struct {
	*Main
	feed   string            // path of the feed file
	tokens map[string]string // device tokens of D1 and D2
	disp   string            // login token of dispatcher "ana"
	admin  string            // login token of "admin"
}

const (
	adminPassword = "admin-secret-1"
	anaPassword   = "ana-secret-1"
)

// feedJSON is a route feed with R1 (driver D1) and R2 (driver D2).
func feedJSON(r1Done, r1Behind int) string {
	return fmt.Sprintf(`[
 {"routeId":"R1","routeCode":"CX01","driverId":"D1","driverName":"Ana Silva","performanceTier":"TOP",
  "totalStops":180,"completedStops":%d,"totalPackages":260,"completedPackages":61,"behindSchedule":%d,
  "currentLat":38.5816,"currentLng":-121.4944,"lastUpdated":"2026-11-26T15:04:05Z"},
 {"routeId":"R2","routeCode":"CX02","driverId":"D2","driverName":"Ben Okafor","performanceTier":"AVERAGE",
  "totalStops":150,"completedStops":30,"totalPackages":200,"completedPackages":40,"behindSchedule":0,
  "currentLat":38.60,"currentLng":-121.50,"lastUpdated":"2026-11-26T15:04:05Z"}]`, r1Done, r1Behind)
}

// startApp runs the whole appliance in-process on 127.0.0.1:0 with its data
// in dir (a new temp dir when ""), fed from a feed file.
func startApp(t testing.TB, dir string, mutate func(*ServeConfig), inject ...func(*Main)) *testApp {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	feed := filepath.Join(dir, "feed.json")
	if _, err := os.Stat(feed); err != nil {
		writeFile(t, feed, feedJSON(42, 2))
	}
	m := NewMain(io.Discard)
	m.Config.Data = filepath.Join(dir, "data")
	m.Config.HTTPAddr, m.Config.MQTTAddr = "127.0.0.1:0", "127.0.0.1:0"
	m.Config.CortexURL = "file://" + feed
	m.Config.CortexInterval = time.Second
	m.Config.LogLevel = "warn"
	m.Config.AdminPassword = adminPassword
	m.faults.bcryptCost = bcrypt.MinCost
	// No backup at start unless a test asks for one: a gzipped copy of the
	// store in every test depot, under -race, was minutes of the suite.
	m.Config.BackupInterval = 0
	if os.Getenv("DEPOT_TEST_LOG") != "" {
		m.Out = os.Stderr
		m.Config.LogLevel = "debug"
	}
	if mutate != nil {
		mutate(&m.Config)
	}
	for _, f := range inject {
		f(m)
	}
	if err := m.Config.validate(); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background()); err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	a := &testApp{Main: m, feed: feed, tokens: map[string]string{}}
	if err := m.accounts.CreateUser("ana", anaPassword, bridge.RoleDispatcher); err != nil && !errors.Is(err, auth.ErrExists) {
		t.Fatal(err)
	}
	for _, d := range []string{"D1", "D2"} {
		if m.Config.Demo {
			break // the demo's own handhelds hold these credentials
		}
		tok, err := m.accounts.CreateDevice(d, "test handheld")
		if err != nil {
			t.Fatal(err)
		}
		a.tokens[d] = tok
	}
	var err error
	if a.disp, _, err = m.accounts.Login("ana", anaPassword); err != nil {
		t.Fatal(err)
	}
	if a.admin, _, err = m.accounts.Login("admin", adminPassword); err != nil {
		t.Fatal(err)
	}
	return a
}

func writeFile(t testing.TB, path, s string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil { // atomically, as a real feed writer should
		t.Fatal(err)
	}
}

// getJSON GETs path as dispatcher ana.
func (a *testApp) getJSON(t *testing.T, path string, v any) int {
	t.Helper()
	return a.request(t, "GET", path, a.disp, nil, v)
}

// getRaw GETs path as dispatcher ana and returns the status and body.
func (a *testApp) getRaw(t *testing.T, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+a.HTTPAddr()+path, nil)
	req.Header.Set("Authorization", "Bearer "+a.disp)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// request sends a JSON request with a bearer token ("" for none) and decodes
// a 2xx answer into v.
func (a *testApp) request(t *testing.T, method, path, token string, in, v any) int {
	t.Helper()
	var r io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+a.HTTPAddr()+path, r)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, body)
		}
	}
	return resp.StatusCode
}

// driver connects driver's handheld with its device credential: a plain
// paho v5 client over TCP, for exact control of each publish and its PUBACK
// reason code.
func (a *testApp) driver(t *testing.T, driver string) *paho.Client {
	t.Helper()
	c, code, err := mqttConnect(a.MQTTAddr(), "drv-"+driver, driver, a.tokens[driver])
	if err != nil || code != 0 {
		t.Fatalf("connect %s: 0x%02x %v", driver, code, err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c
}

// mqttConnect opens an MQTT 5 session over TCP and returns the CONNACK code.
func mqttConnect(addr, clientID, user, password string) (*paho.Client, byte, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, 0, err
	}
	return mqttHandshake(conn, clientID, user, password)
}

func mqttHandshake(conn net.Conn, clientID, user, password string) (*paho.Client, byte, error) {
	// paho writes a packet in several Writes from several goroutines; it
	// keeps each packet whole only on a conn that is also a sync.Locker.
	c := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn), ClientID: clientID})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cp := &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true}
	if user != "" {
		cp.Username, cp.UsernameFlag = user, true
	}
	if password != "" {
		cp.Password, cp.PasswordFlag = []byte(password), true
	}
	ca, err := c.Connect(ctx, cp)
	if ca != nil {
		if ca.ReasonCode != 0 {
			conn.Close()
		}
		return c, ca.ReasonCode, nil
	}
	conn.Close()
	return nil, 0, err
}

func publish(c *paho.Client, topic string, qos byte, payload []byte) (byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Payload: payload})
	if r != nil {
		return r.ReasonCode, err
	}
	return 0, err
}

// wsSubscriber is a dashboard-side client: MQTT over WebSocket at /mqtt.
type wsSubscriber struct {
	mu   sync.Mutex
	msgs map[string][][]byte
	at   map[string][]time.Time // when each message arrived
}

// subscribeWS connects dispatcher ana over MQTT-over-WebSocket, as the
// dashboard does, and subscribes to filters.
func (a *testApp) subscribeWS(t testing.TB, filters ...string) *wsSubscriber {
	t.Helper()
	s := &wsSubscriber{msgs: map[string][][]byte{}, at: map[string][]time.Time{}}
	u, _ := url.Parse("ws://" + a.HTTPAddr() + "/mqtt")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ready := make(chan struct{})
	var once sync.Once
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 30, CleanStartOnInitialConnection: true,
		ConnectUsername: "ana", ConnectPassword: []byte(a.disp),
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			go func() {
				var subs []paho.SubscribeOptions
				for _, f := range filters {
					subs = append(subs, paho.SubscribeOptions{Topic: f, QoS: 1})
				}
				if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: subs}); err == nil {
					once.Do(func() { close(ready) })
				}
			}()
		},
		ClientConfig: paho.ClientConfig{
			ClientID: fmt.Sprintf("dash-ana:%d", time.Now().UnixNano()),
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				now := time.Now()
				s.mu.Lock()
				s.msgs[pr.Packet.Topic] = append(s.msgs[pr.Packet.Topic], pr.Packet.Payload)
				s.at[pr.Packet.Topic] = append(s.at[pr.Packet.Topic], now)
				s.mu.Unlock()
				return true, nil
			}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dctx, c := context.WithTimeout(context.Background(), time.Second)
		defer c()
		_ = cm.Disconnect(dctx)
	})
	select {
	case <-ready:
	case <-time.After(5 * time.Second):
		t.Fatal("websocket subscriber did not connect and subscribe")
	}
	return s
}

// waitFor waits until a message has arrived on topic and returns a copy
// of what arrived there.
func (s *wsSubscriber) waitFor(t testing.TB, topic string, d time.Duration) [][]byte {
	t.Helper()
	var got [][]byte
	checkFor(t, d, func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.msgs[topic]) == 0 {
			return fmt.Errorf("nothing on %s", topic)
		}
		got = append([][]byte(nil), s.msgs[topic]...)
		return nil
	})
	return got
}

// events returns every envelope received on topic, flattening batches.
func (s *wsSubscriber) events(topic string) []bridge.Envelope {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []bridge.Envelope
	for _, p := range s.msgs[topic] {
		p = bytes.TrimSpace(p)
		if len(p) > 0 && p[0] == '[' {
			var batch []bridge.Envelope
			_ = json.Unmarshal(p, &batch)
			out = append(out, batch...)
			continue
		}
		var e bridge.Envelope
		if json.Unmarshal(p, &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

// findDelta waits for a route:update delta of route that satisfies ok.
func (s *wsSubscriber) findDelta(t *testing.T, depot, route string, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	var found map[string]any
	checkFor(t, 5*time.Second, func() error {
		for _, e := range s.events("depot/" + depot + "/events") {
			var d map[string]any
			if e.Type != bridge.EventRouteUpdate || json.Unmarshal(e.Payload, &d) != nil || d["routeId"] != route {
				continue
			}
			if ok(d) {
				found = d
				return nil
			}
		}
		return fmt.Errorf("no matching route:update for %s", route)
	})
	return found
}

func fixJSON(lat, lng float64, ts time.Time) []byte {
	return []byte(fmt.Sprintf(`{"lat":%v,"lng":%v,"ts":%d,"acc":5,"spd":8.2,"hdg":270,"batt":81}`, lat, lng, ts.UnixMilli()))
}

type historyResp struct {
	RouteID string       `json:"routeId"`
	Fixes   []bridge.Fix `json:"fixes"`
}

func TestFixReachesDashboardAndHistory(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	sub := a.subscribeWS(t, "depot/DEMO1/events")
	drv := a.driver(t, "D1")

	now := time.Now()
	if code, err := publish(drv, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(38.6012, -121.4711, now)); err != nil || code != 0 {
		t.Fatalf("publish: code 0x%02x, %v", code, err)
	}
	d := sub.findDelta(t, "DEMO1", "R1", func(d map[string]any) bool { return d["currentLat"] == 38.6012 })
	if d["currentLng"] != -121.4711 || d["completedStops"] != nil {
		t.Fatalf("delta carries more or less than the change: %v", d)
	}
	// PUBACK came after the fix was stored, so history has it now.
	var h historyResp
	if code := a.getJSON(t, "/api/v1/routes/R1/history", &h); code != 200 {
		t.Fatalf("history: HTTP %d", code)
	}
	if len(h.Fixes) != 1 || h.Fixes[0].Lat != 38.6012 || h.Fixes[0].TS != now.UnixMilli() {
		t.Fatalf("history: %+v", h)
	}
	var r bridge.RouteStatus
	a.getJSON(t, "/api/v1/routes/R1", &r)
	if r.CurrentLat != 38.6012 || r.StatusColor != bridge.Yellow {
		t.Fatalf("route: %+v", r)
	}
	// Events are gap-free and readable again.
	var evs []bridge.Envelope
	a.getJSON(t, "/api/v1/events?after=0", &evs)
	updates := 0
	for i, e := range evs {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
		if e.Type == bridge.EventRouteUpdate {
			updates++
		}
	}
	if updates != 3 { // R1 and R2 from the feed, R1 from the fix
		t.Fatalf("%d route updates in %d events", updates, len(evs))
	}
	for _, f := range []string{"geojson", "gpx", "csv"} {
		code, body := a.getRaw(t, "/api/v1/routes/R1/history?format="+f)
		if code != 200 || !bytes.Contains(body, []byte("38.6012")) {
			t.Fatalf("format %s: HTTP %d %s", f, code, body)
		}
	}
}

func TestMalformedFixesAreRefused(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	drv := a.driver(t, "D1")
	now := time.Now()
	bad := map[string][]byte{
		"not json":       []byte("hello"),
		"missing fields": []byte(`{"lat":38.5}`),
		"lat 200":        fixJSON(200, 0, now),
		"future ts":      fixJSON(38.5, -121.4, now.Add(time.Hour)),
		"stale ts":       fixJSON(38.5, -121.4, now.Add(-48*time.Hour)),
		"binary":         {0x00, 0xff, 0x10, 0x80, 0x7b},
		"too large":      bytes.Repeat([]byte("x"), 2000),
	}
	for name, p := range bad {
		code, err := publish(drv, "depot/DEMO1/drivers/D1/gps", 1, p)
		if code != 0x99 || err == nil {
			t.Errorf("%s: reason 0x%02x, err %v; want 0x99", name, code, err)
		}
	}
	// A 2 MB payload is over the broker's packet limit: that client is cut off.
	big := a.driver(t, "D2")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_, err := big.Publish(ctx, &paho.Publish{Topic: "depot/DEMO1/drivers/D2/gps", QoS: 1, Payload: bytes.Repeat([]byte("{"), 2<<20)})
	cancel()
	if err == nil {
		t.Error("2 MB publish acknowledged")
	}

	// The server's own topics cannot be written by clients (the ACL says so).
	if code, _ := publish(drv, "depot/DEMO1/routes/R1/state", 1, []byte(`{"routeId":"R1"}`)); code != 0x87 {
		t.Errorf("route state write: reason 0x%02x, want 0x87", code)
	}
	if code, _ := publish(drv, "depot/DEMO1/drivers/D1/inbox", 1, []byte(`{}`)); code != 0x87 {
		t.Errorf("inbox write: reason 0x%02x, want 0x87", code)
	}

	// The appliance is alive and a good fix still goes through.
	if code, err := publish(drv, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(38.61, -121.47, now)); err != nil || code != 0 {
		t.Fatalf("good fix after bad ones: 0x%02x %v", code, err)
	}
	var h historyResp
	a.getJSON(t, "/api/v1/routes/R1/history?from=0", &h)
	if len(h.Fixes) != 1 || h.Fixes[0].Lat != 38.61 {
		t.Fatalf("history holds %d fixes: %+v", len(h.Fixes), h.Fixes)
	}
	var health map[string]any
	if code := a.request(t, "GET", "/healthz", a.admin, nil, &health); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	refused := health["fixes"].(map[string]any)["refused"].(map[string]any)
	if refused["malformed"] == nil || refused["out_of_range"] == nil || refused["future"] == nil || refused["too_large"] == nil {
		t.Fatalf("refusals not counted by reason: %v", refused)
	}
}

func TestQoS0BadFixesAreDropped(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	drv := a.driver(t, "D1")
	if _, err := publish(drv, "depot/DEMO1/drivers/D1/gps", 0, []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	if code, err := publish(drv, "depot/DEMO1/drivers/D1/gps", 0, fixJSON(38.62, -121.4, time.Now())); err != nil || code != 0 {
		t.Fatal(code, err)
	}
	checkFor(t, 5*time.Second, func() error {
		var h historyResp
		a.getJSON(t, "/api/v1/routes/R1/history", &h)
		if len(h.Fixes) != 1 {
			return fmt.Errorf("%d fixes", len(h.Fixes))
		}
		return nil
	})
}

func TestFeedChangeReachesSubscribers(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	sub := a.subscribeWS(t, "depot/DEMO1/events", "depot/DEMO1/routes/+/state")
	// Retained states give a new dashboard every route at once.
	checkFor(t, 5*time.Second, func() error {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		if len(sub.msgs["depot/DEMO1/routes/R1/state"]) == 0 || len(sub.msgs["depot/DEMO1/routes/R2/state"]) == 0 {
			return fmt.Errorf("retained states missing: %v", sub.msgs)
		}
		return nil
	})
	writeFile(t, a.feed, feedJSON(44, 7))
	d := sub.findDelta(t, "DEMO1", "R1", func(d map[string]any) bool { return d["behindSchedule"] == 7.0 })
	if d["completedStops"] != 44.0 || d["statusColor"] != "RED" || d["driverName"] != nil {
		t.Fatalf("delta %v", d)
	}
	// A broken feed keeps the last good state and is reported.
	writeFile(t, a.feed, `[{"routeId":`)
	checkFor(t, 5*time.Second, func() error {
		var h map[string]any
		a.request(t, "GET", "/healthz", a.admin, nil, &h)
		if f := h["feed"].(map[string]any); f["ok"] != false || f["error"] == "" {
			return fmt.Errorf("feed health %v", f)
		}
		return nil
	})
	var r bridge.RouteStatus
	a.getJSON(t, "/api/v1/routes/R1", &r)
	if r.BehindSchedule != 7 {
		t.Fatalf("last good state lost: %+v", r)
	}
}

func TestHealthzAndRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := startApp(t, dir, nil)
	var h map[string]any
	if code := a.getJSON(t, "/healthz", &h); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if h["mqtt"] != a.MQTTAddr() || h["http"] != a.HTTPAddr() || !strings.HasPrefix(a.MQTTAddr(), "127.0.0.1:") {
		t.Fatalf("healthz addresses %v", h)
	}
	drv := a.driver(t, "D1")
	now := time.Now()
	if _, err := publish(drv, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(38.63, -121.45, now)); err != nil {
		t.Fatal(err)
	}
	seq := a.depot.LastSeq()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	b := startApp(t, dir, func(c *ServeConfig) { c.CortexURL = "" }) // no feed: only what was stored
	var r bridge.RouteStatus
	if code := b.getJSON(t, "/api/v1/routes/R1", &r); code != 200 || r.CurrentLat != 38.63 {
		t.Fatalf("route after restart: %d %+v", code, r)
	}
	var hist historyResp
	b.getJSON(t, "/api/v1/routes/R1/history", &hist)
	if len(hist.Fixes) != 1 {
		t.Fatalf("history after restart: %+v", hist)
	}
	// The log goes on from where it was, without a gap or a repeat.
	var evs []bridge.Envelope
	b.getJSON(t, "/api/v1/events?after=0", &evs)
	for i, e := range evs {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d after restart", i, e.Seq)
		}
	}
	if uint64(len(evs)) < seq {
		t.Fatalf("%d events after restart, had %d", len(evs), seq)
	}
	// The retained route state is served again after a restart.
	b.subscribeWS(t, "depot/DEMO1/routes/+/state").waitFor(t, "depot/DEMO1/routes/R1/state", 5*time.Second)
}

func TestAPIErrors(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	for path, want := range map[string]int{
		"/api/v1/devices":                             403, // a dispatcher is no admin
		"/api/v1/routes/NOPE":                         404,
		"/api/v1/routes/R1/history?format=kml":        400,
		"/api/v1/routes/R1/history?from=yesterday":    400,
		"/api/v1/routes/R1/history?from=2000&to=1000": 400,
		"/api/v1/events?after=-1":                     400,
		"/api/v1/events?limit=0":                      400,
		"/api/v1/nothing":                             404,
		"/api/v1/routes":                              200,
		"/api/v1/config":                              200,
		"/":                                           200,
	} {
		code, body := a.getRaw(t, path)
		if code != want {
			t.Errorf("GET %s: %d, want %d (%s)", path, code, want, body)
		}
		if want >= 400 && !bytes.Contains(body, []byte(`"error"`)) {
			t.Errorf("GET %s: error body %s", path, body)
		}
	}
}

func TestForeignOriginRefused(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	req, _ := http.NewRequest("GET", "http://"+a.HTTPAddr()+"/mqtt", nil)
	for k, v := range map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
		"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol": "mqtt", "Origin": "http://evil.example"} {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin got HTTP %d", resp.StatusCode)
	}
}

// TestStockClient publishes with mosquitto_pub, as a handheld vendor's
// firmware or an integrator's script would.
func TestStockClient(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("mosquitto_pub")
	if err != nil {
		t.Fatal("mosquitto_pub not installed: run `make deps` (scripts/deps.sh)")
	}
	a := startApp(t, "", nil)
	sub := a.subscribeWS(t, "depot/DEMO1/events")
	host, port, _ := net.SplitHostPort(a.MQTTAddr())
	out, err := exec.Command(bin, "-h", host, "-p", port, "-q", "1", "-i", "drv-D1", "-u", "D1", "-P", a.tokens["D1"],
		"-t", "depot/DEMO1/drivers/D1/gps", "-m", string(fixJSON(38.64, -121.44, time.Now()))).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub: %v %s", err, out)
	}
	sub.findDelta(t, "DEMO1", "R1", func(d map[string]any) bool { return d["currentLat"] == 38.64 })
	// MQTT 3.1.1 has no reason codes: a bad fix is acknowledged (resending
	// it can never succeed) and dropped.
	out, err = exec.Command(bin, "-h", host, "-p", port, "-q", "1", "-V", "mqttv311", "-i", "drv-D1", "-u", "D1", "-P", a.tokens["D1"],
		"-t", "depot/DEMO1/drivers/D1/gps", "-m", `{"lat":1000,"lng":0,"ts":1}`).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub v3: %v %s", err, out)
	}
	var h historyResp
	a.getJSON(t, "/api/v1/routes/R1/history", &h)
	if len(h.Fixes) != 1 || h.Fixes[0].Lat != 38.64 {
		t.Fatalf("history %+v", h)
	}
}

func TestDemoRuns(t *testing.T) {
	a := startApp(t, "", func(c *ServeConfig) {
		c.CortexURL, c.Demo, c.DemoRoutes, c.DemoRate = "", true, 30, 200*time.Millisecond
	})
	sub := a.subscribeWS(t, "depot/DEMO1/events")
	// Demo handhelds connect over real loopback MQTT and move their routes.
	sub.findDelta(t, "DEMO1", "R5", func(d map[string]any) bool { return d["currentLat"] != nil })
	var rs []bridge.RouteStatus
	a.getJSON(t, "/api/v1/routes", &rs)
	if len(rs) != 30 {
		t.Fatalf("%d demo routes", len(rs))
	}
}

func TestFlagsAndEnv(t *testing.T) {
	t.Setenv("DEPOT_DEPOT", "SAC2")
	t.Setenv("DEPOT_CORTEX_INTERVAL", "45s")
	m := NewMain(io.Discard)
	if err := m.ParseFlags([]string{"--http-addr", "127.0.0.1:0", "--cortex-interval", "10s"}); err != nil {
		t.Fatal(err)
	}
	if m.Config.Depot != "SAC2" || m.Config.CortexInterval != 10*time.Second || m.Config.HTTPAddr != "127.0.0.1:0" {
		t.Fatalf("config %+v", m.Config)
	}
	for _, args := range [][]string{
		{"--depot", "a/b"}, {"--cortex-url", "ftp://x"}, {"--tls-cert", "x"}, {"--cortex-interval", "1ms"}, {"stray"},
	} {
		if err := NewMain(io.Discard).ParseFlags(args); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	t.Setenv("DEPOT_DEMO", "maybe")
	if err := NewMain(io.Discard).ParseFlags(nil); err == nil {
		t.Error("DEPOT_DEMO=maybe accepted")
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	drv := a.driver(t, "D1")
	publish(drv, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(38.6, -121.4, time.Now()))
	publish(drv, "depot/DEMO1/drivers/D1/gps", 1, []byte("garbage"))
	resp, err := http.Get("http://" + a.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		`depot_mqtt_clients{role="driver"} 1`, `depot_fixes_accepted_total 1`, `depot_fixes_refused_total{reason="malformed"} 1`,
		"depot_events_total", "depot_mqtt_deliveries_total", "depot_fix_to_publish_seconds_count 1", "depot_store_commit_seconds_bucket",
		"depot_store_commit_records_bucket", "depot_feed_cycle_seconds_count", "depot_feed_errors_total 0",
		`depot_mqtt_refused_total{kind="connect"}`, "go_goroutines", "process_resident_memory_bytes", "process_cpu_seconds_total",
		`depot_handheld_clock_offset_seconds{stat="median"}`, "depot_handheld_clock_offset_samples 1", "depot_store_bytes",
		"depot_store_events", "depot_store_oldest_event_timestamp_seconds", "depot_store_newest_event_timestamp_seconds",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestLateTopic: a driver's late fix reaches a dashboard subscribed to its
// route's late topic (through the broker's ACL, over WebSocket), and no
// driver may read or write a late topic: a handheld could otherwise learn
// other drivers' positions, or draw fixes on the dispatchers' trails.
func TestLateTopic(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	sub := a.subscribeWS(t, "depot/DEMO1/routes/+/late")
	d1, d2 := a.driver(t, "D1"), a.driver(t, "D2")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, f := range []string{"depot/DEMO1/routes/R1/late", "depot/DEMO1/routes/+/late", "depot/DEMO1/#"} {
		sa, err := d2.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: f, QoS: 0}}})
		if err == nil && (sa == nil || len(sa.Reasons) != 1 || sa.Reasons[0] < 0x80) {
			t.Fatalf("a driver subscribed to %s: %+v", f, sa)
		}
	}
	if code, _ := publish(d2, "depot/DEMO1/routes/R1/late", 1, []byte(`{"routeId":"R1","fixes":[{"ts":1,"lat":1,"lng":1}]}`)); code != 0x87 {
		t.Fatalf("a driver's publish on a late topic: reason 0x%02x, want 0x87", code)
	}
	now := time.Now()
	if code, err := publish(d1, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(38.61, -121.47, now)); err != nil || code != 0 {
		t.Fatalf("fix: 0x%02x %v", code, err)
	}
	if code, err := publish(d1, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(38.59, -121.48, now.Add(-time.Minute))); err != nil || code != 0 {
		t.Fatalf("late fix: 0x%02x %v", code, err)
	}
	got := sub.waitFor(t, "depot/DEMO1/routes/R1/late", 5*time.Second)
	var m struct {
		RouteID string `json:"routeId"`
		Fixes   []struct {
			TS       int64 `json:"ts"`
			Lat, Lng float64
		} `json:"fixes"`
	}
	if err := json.Unmarshal(got[0], &m); err != nil || m.RouteID != "R1" || len(m.Fixes) != 1 ||
		m.Fixes[0].TS != now.Add(-time.Minute).UnixMilli() || m.Fixes[0].Lat != 38.59 || m.Fixes[0].Lng != -121.48 {
		t.Fatalf("late message %s: %+v %v", got[0], m, err)
	}
	if len(got) != 1 {
		t.Fatalf("%d late messages, want the one (the driver's own was refused)", len(got))
	}
}
