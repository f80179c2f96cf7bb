package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/depotcc/depot/ui"
	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// testClock is the depot's clock in tests that step time.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// handheld is a driver's device with a persistent session (MQTT 5, session
// expiry 1 h) subscribed to its inbox, as a real handheld is.
type handheld struct {
	t      *testing.T
	a      *testApp
	driver string
	c      *paho.Client
	conn   net.Conn
	mu     sync.Mutex
	inbox  []*paho.Publish
	// resumed: the last CONNACK said its session was present.
	resumed bool
}

func (h *handheld) connect(clean bool) {
	h.t.Helper()
	conn, err := net.Dial("tcp", h.a.MQTTAddr())
	if err != nil {
		h.t.Fatal(err)
	}
	h.conn = conn
	h.c = paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn), ClientID: "drv-" + h.driver,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			h.mu.Lock()
			h.inbox = append(h.inbox, pr.Packet)
			h.mu.Unlock()
			return true, nil
		}}})
	expiry := uint32(3600)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, err := h.c.Connect(ctx, &paho.Connect{ClientID: "drv-" + h.driver, KeepAlive: 30, CleanStart: clean,
		Username: h.driver, UsernameFlag: true, Password: []byte(h.a.tokens[h.driver]), PasswordFlag: true,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry, RequestProblemInfo: true}})
	if err != nil || ca.ReasonCode != 0 {
		h.t.Fatalf("connect %s: %v %+v", h.driver, err, ca)
	}
	h.resumed = ca.SessionPresent
	if clean {
		if _, err := h.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
			{Topic: "depot/DEMO1/drivers/" + h.driver + "/inbox", QoS: 1}}}); err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *handheld) drop() { _ = h.c.Disconnect(&paho.Disconnect{}) }

// waitInbox waits for an inbox envelope of type typ.
func (h *handheld) waitInbox(typ string) (bridge.Envelope, *paho.Publish) {
	h.t.Helper()
	var env bridge.Envelope
	var pk *paho.Publish
	checkFor(h.t, 5*time.Second, func() error {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, p := range h.inbox {
			var e bridge.Envelope
			if json.Unmarshal(p.Payload, &e) == nil && e.Type == typ {
				env, pk = e, p
				return nil
			}
		}
		return fmt.Errorf("%s: no %s in the inbox (%d messages)", h.driver, typ, len(h.inbox))
	})
	return env, pk
}

func (h *handheld) reply(ref, action string) (byte, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, _ := h.c.Publish(ctx, &paho.Publish{Topic: "depot/DEMO1/drivers/" + h.driver + "/reply", QoS: 1,
		Payload: []byte(`{"ref":"` + ref + `","action":"` + action + `"}`)})
	if r == nil {
		return 0xff, ""
	}
	reason := ""
	if r.Properties != nil {
		reason = r.Properties.ReasonString
	}
	return r.ReasonCode, reason
}

func (s *wsSubscriber) typed(typ string) []bridge.Envelope {
	var out []bridge.Envelope
	for _, e := range s.events("depot/DEMO1/events") {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

func (s *wsSubscriber) waitType(t *testing.T, typ string, n int) []bridge.Envelope {
	t.Helper()
	var out []bridge.Envelope
	checkFor(t, 5*time.Second, func() error {
		if out = s.typed(typ); len(out) < n {
			return fmt.Errorf("%d %s events, want %d", len(out), typ, n)
		}
		return nil
	})
	return out
}

// rescueFeed: R1 (D1) struggling with `behind`; helpers around it.
func rescueFeed(behind int) string {
	type r = map[string]any
	route := func(id, drv, tier string, b int, lat, lng float64) r {
		return r{"routeId": id, "routeCode": "CX" + id, "driverId": drv, "driverName": "Name " + drv, "performanceTier": tier,
			"totalStops": 180, "completedStops": 40, "totalPackages": 260, "completedPackages": 60, "behindSchedule": b,
			"currentLat": lat, "currentLng": lng, "lastUpdated": "2026-11-26T15:04:05Z", "currentAddress": "1200 J St, Sacramento"}
	}
	b, _ := json.Marshal([]r{
		route("R1", "D1", "AVERAGE", behind, 38.58, -121.49),
		route("R2", "D2", "TOP", 0, 38.60, -121.49),         // ~2.2 km: the nearest on-schedule TOP driver
		route("R3", "D3", "AVERAGE", 0, 38.585, -121.49),    // nearer, but AVERAGE
		route("R4", "D4", "TOP", 3, 38.581, -121.49),        // nearest TOP, but 3 behind
		route("R5", "D5", "STRUGGLING", 0, 38.582, -121.49), // never
		route("R6", "D6", "TOP", 0, 38.70, -121.49),         // TOP, farther
	})
	return string(b)
}

func TestRescueEndToEnd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir+"/feed.json", rescueFeed(5))
	a := startApp(t, dir, nil)
	tok, _ := a.accounts.CreateDevice("D2", "rescuer")
	a.tokens["D2"] = tok
	sub := a.subscribeWS(t, "depot/DEMO1/events")

	// The rescuer's handheld subscribes with a persistent session, then
	// goes offline (a dead zone).
	rescuer := &handheld{t: t, a: a, driver: "D2"}
	rescuer.connect(true)
	rescuer.drop()

	writeFile(t, a.feed, rescueFeed(7)) // 5 → 7 behind
	alerts := sub.waitType(t, bridge.EventRescueAlert, 1)
	var alert bridge.RescueAlert
	json.Unmarshal(alerts[0].Payload, &alert)
	if alerts[0].Priority != bridge.PriorityCritical || alert.StruggleRoute.RouteID != "R1" || alert.StruggleRoute.BehindSchedule != 7 {
		t.Fatalf("alert %+v", alerts[0])
	}
	if alert.RescueDriver == nil || alert.RescueDriver.DriverID != "D2" || alert.EstimatedArrival == nil ||
		alert.TransferLocation.Address != "1200 J St, Sacramento" {
		t.Fatalf("rescuer %+v", alert)
	}
	// Stays behind for more cycles: still one alert.
	writeFile(t, a.feed, rescueFeed(8))
	sub.findDelta(t, "DEMO1", "R1", func(d map[string]any) bool { return d["behindSchedule"] == 8.0 })
	writeFile(t, a.feed, rescueFeed(9))
	sub.findDelta(t, "DEMO1", "R1", func(d map[string]any) bool { return d["behindSchedule"] == 9.0 })
	if n := len(sub.typed(bridge.EventRescueAlert)); n != 1 {
		t.Fatalf("%d rescue alerts while the route stays behind", n)
	}

	// The handheld comes back and finds its assignment waiting.
	rescuer.connect(false)
	env, _ := rescuer.waitInbox(bridge.EventRescueAlert)
	if env.Seq != alerts[0].Seq {
		t.Fatalf("inbox got seq %d, alert was %d", env.Seq, alerts[0].Seq)
	}
	if code, reason := rescuer.reply(alert.RescueID, "ack"); code != 0 {
		t.Fatalf("ack: 0x%02x %s", code, reason)
	}
	if code, reason := rescuer.reply(alert.RescueID, "ack"); code != 0x83 || reason == "" {
		t.Fatalf("second ack: 0x%02x %q, want 0x83 with a reason", code, reason)
	}
	up := sub.waitType(t, bridge.EventRescueUpdated, 1)
	var u map[string]any
	json.Unmarshal(up[0].Payload, &u)
	if u["state"] != "acknowledged" || u["by"] != "driver:D2" {
		t.Fatalf("rescue:updated %v", u)
	}
	var rescues []bridge.Rescue
	a.getJSON(t, "/api/v1/rescues", &rescues)
	if len(rescues) != 1 || rescues[0].State != "acknowledged" {
		t.Fatalf("GET /rescues %+v", rescues)
	}
	if code := a.request(t, "POST", "/api/v1/rescues/"+alert.RescueID+"/resolve", a.disp, nil, nil); code != 200 {
		t.Fatalf("resolve: %d", code)
	}
	if code := a.request(t, "POST", "/api/v1/rescues/"+alert.RescueID+"/resolve", a.disp, nil, nil); code != 409 {
		t.Fatalf("resolve twice: %d", code)
	}
	if code := a.request(t, "POST", "/api/v1/rescues/nope/resolve", a.disp, nil, nil); code != 404 {
		t.Fatalf("resolve unknown: %d", code)
	}
}

func TestVTOEndToEnd(t *testing.T) {
	t.Parallel()
	clk := &testClock{t: time.Now()}
	secret := "payroll-secret-0123456789"
	a := startApp(t, "", func(c *ServeConfig) { c.PayrollSecret = secret }, func(m *Main) { m.Clock = clk.Now })
	sub := a.subscribeWS(t, "depot/DEMO1/events")
	d1 := &handheld{t: t, a: a, driver: "D1"}
	d1.connect(true)

	var offer map[string]any
	if code := a.request(t, "POST", "/api/v1/vto", a.disp, map[string]string{"driverId": "D1", "routeId": "R1", "reason": "light volume"}, &offer); code != 201 {
		t.Fatalf("POST /vto: %d", code)
	}
	if offer["remainingSeconds"].(float64) < 1795 || offer["vtoId"] == "" {
		t.Fatalf("offer %v", offer)
	}
	vto := offer["vtoId"].(string)
	if code := a.request(t, "POST", "/api/v1/vto", a.disp, map[string]string{"driverId": "D1", "routeId": "R1"}, nil); code != 409 {
		t.Fatalf("second open offer: %d", code)
	}
	if code := a.request(t, "POST", "/api/v1/vto", a.disp, map[string]string{"driverId": "D2", "routeId": "R1"}, nil); code != 400 {
		t.Fatalf("offer for a driver not on the route: %d", code)
	}
	// In the event log and the driver's inbox, with the message expiry set.
	ev := sub.waitType(t, bridge.EventVTOOffer, 1)
	var p map[string]any
	json.Unmarshal(ev[0].Payload, &p)
	if ev[0].Priority != "HIGH" || p["remainingSeconds"].(float64) < 1795 || p["expiresAt"] == nil || p["by"] != "ana" {
		t.Fatalf("vto:offer %+v", p)
	}
	// The inbox's copy is the same event without who offered it.
	inEnv, pk := d1.waitInbox(bridge.EventVTOOffer)
	if pk.Properties == nil || pk.Properties.MessageExpiry == nil || *pk.Properties.MessageExpiry < 1790 {
		t.Fatalf("inbox offer without message expiry: %+v", pk.Properties)
	}
	var inP map[string]any
	json.Unmarshal(inEnv.Payload, &inP)
	if _, named := inP["by"]; named || inEnv.Seq != ev[0].Seq || inP["vtoId"] != vto || inP["reason"] != "light volume" {
		t.Fatalf("the inbox's offer (seq %d, event's %d): %v", inEnv.Seq, ev[0].Seq, inP)
	}
	// The driver accepts on its reply topic; the first answer wins.
	if code, reason := d1.reply(vto, "accept"); code != 0 {
		t.Fatalf("accept: 0x%02x %s", code, reason)
	}
	sub.waitType(t, bridge.EventVTOAccepted, 1)
	if code, reason := d1.reply(vto, "decline"); code != 0x83 || reason == "" {
		t.Fatalf("late decline: 0x%02x %q", code, reason)
	}
	if code := a.request(t, "POST", "/api/v1/vto/"+vto+"/decline", a.disp, nil, nil); code != 409 {
		t.Fatalf("REST decline after accept: %d", code)
	}

	// Payroll confirms it, signed; bad, stale and replayed calls change nothing.
	body := []byte(`{"vtoId":"` + vto + `","payrollRef":"PR-1"}`)
	post := func(ts int64, sig string, b []byte) int {
		req, _ := http.NewRequest("POST", "http://"+a.HTTPAddr()+"/api/v1/webhooks/payroll", bytes.NewReader(b))
		req.Header.Set("X-Payroll-Timestamp", strconv.FormatInt(ts, 10))
		req.Header.Set("X-Payroll-Signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	now := clk.Now().Unix()
	if code := post(now, ui.SignPayroll([]byte("wrong-secret-0123456"), now, body), body); code != 401 {
		t.Fatalf("bad signature: %d", code)
	}
	if code := post(now-600, ui.SignPayroll([]byte(secret), now-600, body), body); code != 401 {
		t.Fatalf("stale timestamp: %d", code)
	}
	tampered := []byte(`{"vtoId":"` + vto + `","payrollRef":"PR-2"}`)
	if code := post(now, ui.SignPayroll([]byte(secret), now, body), tampered); code != 401 {
		t.Fatalf("tampered body: %d", code)
	}
	if len(sub.typed(bridge.EventVTOConfirmed)) != 0 {
		t.Fatal("confirmed by a refused call")
	}
	sig := ui.SignPayroll([]byte(secret), now, body)
	if code := post(now, sig, body); code != 200 {
		t.Fatalf("good call: %d", code)
	}
	if code := post(now, sig, body); code != 409 {
		t.Fatalf("replay: %d", code)
	}
	sub.waitType(t, bridge.EventVTOConfirmed, 1)

	// An unanswered offer expires by itself.
	var o2 map[string]any
	a.request(t, "POST", "/api/v1/vto", a.disp, map[string]string{"driverId": "D2", "routeId": "R2"}, &o2)
	clk.Add(30*time.Minute + time.Second)
	exp := sub.waitType(t, bridge.EventVTOExpired, 1)
	json.Unmarshal(exp[0].Payload, &p)
	if p["vtoId"] != o2["vtoId"] {
		t.Fatalf("expired %v, want %v", p["vtoId"], o2["vtoId"])
	}
	if code := a.request(t, "POST", "/api/v1/vto/"+o2["vtoId"].(string)+"/accept", a.disp, nil, nil); code != 409 {
		t.Fatalf("accept after expiry: %d", code)
	}
}

func TestReassignEndToEnd(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	sub := a.subscribeWS(t, "depot/DEMO1/events")
	d1 := &handheld{t: t, a: a, driver: "D1"}
	d1.connect(true)
	d2 := &handheld{t: t, a: a, driver: "D2"}
	d2.connect(true)
	if code := a.request(t, "POST", "/api/v1/routes/R1/reassign", a.disp, map[string]string{"toDriverId": "D2"}, nil); code != 200 {
		t.Fatalf("reassign: %d", code)
	}
	ev := sub.waitType(t, bridge.EventRouteReassign, 1)
	var p map[string]any
	json.Unmarshal(ev[0].Payload, &p)
	if p["routeId"] != "R1" || p["fromDriverId"] != "D1" || p["toDriverId"] != "D2" || p["by"] != "ana" {
		t.Fatalf("route:reassigned %v", p)
	}
	d1.waitInbox(bridge.EventRouteReassign)
	d2.waitInbox(bridge.EventRouteReassign)
	// D2's GPS now moves R1 (as well as being D2's).
	if code, _ := publish(d2.c, "depot/DEMO1/drivers/D2/gps", 1, fixJSON(38.7001, -121.3001, time.Now())); code != 0 {
		t.Fatalf("gps: 0x%02x", code)
	}
	sub.findDelta(t, "DEMO1", "R1", func(d map[string]any) bool { return d["currentLat"] == 38.7001 })
	for body, want := range map[string]int{`{"toDriverId":"D2"}`: 409, `{"toDriverId":""}`: 400, `{}`: 400} {
		var m map[string]string
		json.Unmarshal([]byte(body), &m)
		if code := a.request(t, "POST", "/api/v1/routes/R1/reassign", a.disp, m, nil); code != want {
			t.Errorf("reassign %s: %d, want %d", body, code, want)
		}
	}
}

func TestPresenceAndHeartbeat(t *testing.T) {
	t.Parallel()
	clk := &testClock{t: time.Now()}
	a := startApp(t, "", func(c *ServeConfig) { c.SilentAfter = time.Minute }, func(m *Main) { m.Clock = clk.Now })
	sub := a.subscribeWS(t, "depot/DEMO1/events", "depot/DEMO1/system/heartbeat", "depot/DEMO1/drivers/+/presence")
	states := func() (out []string) {
		for _, e := range sub.typed(bridge.EventDriverPresence) {
			var p map[string]any
			json.Unmarshal(e.Payload, &p)
			if p["driverId"] == "D1" {
				out = append(out, p["state"].(string))
			}
		}
		return out
	}
	wantStates := func(want ...string) {
		t.Helper()
		checkFor(t, 5*time.Second, func() error {
			if got := states(); fmt.Sprint(got) != fmt.Sprint(want) {
				return fmt.Errorf("presence %v, want %v", got, want)
			}
			return nil
		})
	}
	d1 := &handheld{t: t, a: a, driver: "D1"}
	d1.connect(true)
	wantStates("online")
	publish(d1.c, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(38.6, -121.4, clk.Now()))
	clk.Add(2 * time.Minute) // connected, but no fix: the app is dead or the phone is in a drawer
	wantStates("online", "silent")
	publish(d1.c, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(38.6, -121.4, clk.Now()))
	wantStates("online", "silent", "online")
	d1.conn.Close() // the connection dies without a DISCONNECT
	wantStates("online", "silent", "online", "offline")

	// The heartbeat: at least every 5 s, as system:status and retained.
	hb := sub.waitType(t, bridge.EventSystemStatus, 1)
	var st map[string]any
	json.Unmarshal(hb[0].Payload, &st)
	for _, k := range []string{"connections", "eventsPerS", "fixesPerS", "latencyMs", "feed", "uptimeS", "version", "mqttRefused"} {
		if _, ok := st[k]; !ok {
			t.Errorf("system:status lacks %s: %v", k, st)
		}
	}
	if st["connections"].(map[string]any)["dashboards"].(float64) < 1 {
		t.Errorf("the dashboard is not counted: %v", st["connections"])
	}
	sub.mu.Lock()
	retained := len(sub.msgs["depot/DEMO1/system/heartbeat"]) > 0 && len(sub.msgs["depot/DEMO1/drivers/D1/presence"]) > 0
	sub.mu.Unlock()
	if !retained {
		t.Fatal("no retained heartbeat or presence")
	}
}

// TestCatchUpAfterDisconnect: a dashboard that was away for 10 events reads
// exactly those, in order, and nothing twice.
func TestCatchUpAfterDisconnect(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	var snap bridge.Snapshot
	if code := a.getJSON(t, "/api/v1/state", &snap); code != 200 || len(snap.Routes) != 2 || snap.Seq == 0 {
		t.Fatalf("state: %d %+v", code, snap)
	}
	drv := a.driver(t, "D1")
	base := time.Now()
	for i := range 10 {
		publish(drv, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(38.6+float64(i)/1000, -121.4, base.Add(time.Duration(i)*time.Second)))
	}
	var evs []bridge.Envelope
	a.getJSON(t, fmt.Sprintf("/api/v1/events?after=%d", snap.Seq), &evs)
	updates := 0
	for i, e := range evs {
		if e.Seq != snap.Seq+uint64(i)+1 {
			t.Fatalf("event %d: seq %d after %d", i, e.Seq, snap.Seq)
		}
		if e.Type == bridge.EventRouteUpdate {
			updates++
		}
	}
	if updates != 10 {
		t.Fatalf("%d route updates caught up, want 10", updates)
	}
	var page []bridge.Envelope
	a.getJSON(t, fmt.Sprintf("/api/v1/events?after=%d&limit=3", snap.Seq+2), &page)
	if len(page) != 3 || page[0].Seq != snap.Seq+3 {
		t.Fatalf("page %+v", page)
	}
}

// TestPrunedHistoryIsGone: asking for events the retention pruned is a
// clear 410, never a silent gap.
func TestPrunedHistoryIsGone(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	drv := a.driver(t, "D1")
	for i := range 5 {
		publish(drv, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(38.6+float64(i)/1000, -121.4, time.Now().Add(time.Duration(i)*time.Millisecond)))
	}
	if n, err := a.store.PruneEvents(time.Now().Add(time.Hour), 2); err != nil || n < 5 {
		t.Fatalf("pruned %d, %v", n, err)
	}
	publish(drv, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(38.7, -121.4, time.Now().Add(time.Second)))
	var body map[string]any
	if code := a.getJSON(t, "/api/v1/events?after=1", &body); code != http.StatusGone {
		t.Fatalf("after=1 once pruned: %d %v", code, body)
	}
	var snap bridge.Snapshot
	a.getJSON(t, "/api/v1/state", &snap)
	var evs []bridge.Envelope
	if code := a.getJSON(t, fmt.Sprintf("/api/v1/events?after=%d", snap.Seq-1), &evs); code != 200 || len(evs) == 0 {
		t.Fatalf("recent events: %d %d", code, len(evs))
	}
}

// TestTypedEvents: GET /events?types= reads through the log for the events
// of those types only (the drawer's timeline of a day, whose log is nearly
// all route updates), answers where it read to, and refuses a bad list.
func TestTypedEvents(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	drv := a.driver(t, "D1")
	now := time.Now()
	for i := range 5 {
		if code, err := publish(drv, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(38.60+float64(i)*0.001, -121.47, now.Add(time.Duration(i)*time.Second))); err != nil || code != 0 {
			t.Fatalf("fix %d: 0x%02x %v", i, code, err)
		}
	}
	var offer map[string]any
	if code := a.request(t, "POST", "/api/v1/vto", a.disp, map[string]string{"driverId": "D1", "routeId": "R1"}, &offer); code != 201 {
		t.Fatalf("POST /vto: %d", code)
	}
	for i := range 3 {
		if code, err := publish(drv, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(38.61+float64(i)*0.001, -121.47, now.Add(time.Duration(10+i)*time.Second))); err != nil || code != 0 {
			t.Fatalf("fix %d: 0x%02x %v", i, code, err)
		}
	}
	var all []bridge.Envelope
	checkFor(t, 5*time.Second, func() error {
		all = nil
		if code := a.request(t, "GET", "/api/v1/events?after=0", a.disp, nil, &all); code != 200 {
			return fmt.Errorf("GET /events: %d", code)
		}
		if n := len(all); n == 0 || all[n-1].Type != bridge.EventRouteUpdate {
			return fmt.Errorf("the last fix's event not yet in the log")
		}
		return nil
	})
	last := all[len(all)-1].Seq
	var offers []uint64
	for _, e := range all {
		if e.Type == "vto:offer" {
			offers = append(offers, e.Seq)
		}
	}
	if len(offers) != 1 {
		t.Fatalf("want one vto:offer in the log, have %d", len(offers))
	}
	type typed struct {
		Events    []bridge.Envelope `json:"events"`
		ScannedTo uint64            `json:"scannedTo"`
	}
	var got typed
	if code := a.request(t, "GET", "/api/v1/events?after=0&types=vto:offer,rescue:alert", a.disp, nil, &got); code != 200 {
		t.Fatalf("typed GET /events: %d", code)
	}
	if len(got.Events) != 1 || got.Events[0].Seq != offers[0] || got.ScannedTo < last {
		t.Fatalf("typed: %d events (first seq %v), scanned to %d; want the offer at %d and the log read to %d", len(got.Events), got.Events, got.ScannedTo, offers[0], last)
	}
	// limit=1 over two matches: the first, and where to go on from.
	got = typed{}
	if code := a.request(t, "GET", "/api/v1/events?after=0&limit=1&types=route:update", a.disp, nil, &got); code != 200 {
		t.Fatalf("typed GET /events: %d", code)
	}
	if len(got.Events) != 1 || got.Events[0].Type != bridge.EventRouteUpdate || got.ScannedTo != got.Events[0].Seq {
		t.Fatalf("limit 1: %+v", got)
	}
	// After the offer: nothing of its type, and the log read to its end.
	got = typed{}
	if code := a.request(t, "GET", fmt.Sprintf("/api/v1/events?after=%d&types=vto:offer", offers[0]), a.disp, nil, &got); code != 200 || len(got.Events) != 0 || got.ScannedTo < last {
		t.Fatalf("after the offer: %d %+v", code, got)
	}
	for _, bad := range []string{"VTO", "a,,b", "<script>", strings.Repeat("a,", 21) + "a", strings.Repeat("a", 41)} {
		if code := a.request(t, "GET", "/api/v1/events?types="+url.QueryEscape(bad), a.disp, nil, nil); code != 400 {
			t.Fatalf("types=%q: %d, want 400", bad, code)
		}
	}
}
