package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/eclipse/paho.golang/paho"
)

// TestQueuedInboxSurvivesRestart: a handheld with a persistent session is
// offline while a message for it is queued and the appliance restarts; it
// gets the message when it comes back.
func TestQueuedInboxSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := startApp(t, dir, nil)
	d2 := &handheld{t: t, a: a, driver: "D2"}
	d2.connect(true) // subscribes to its inbox, session expiry 1 h
	d2.drop()
	if code := a.request(t, "POST", "/api/v1/routes/R1/reassign", a.disp, map[string]string{"toDriverId": "D2"}, nil); code != 200 {
		t.Fatalf("reassign: %d", code)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	b := startApp(t, dir, func(c *ServeConfig) { c.CortexURL = "" }) // (issues D2 a new token)
	back := &handheld{t: t, a: b, driver: "D2"}
	back.connect(false) // resumes its session: no new subscription
	env, _ := back.waitInbox(bridge.EventRouteReassign)
	if env.Type != bridge.EventRouteReassign {
		t.Fatalf("inbox %+v", env)
	}
}

// TestStreamResumesFromLastEventID: the SSE fallback sends every event
// after Last-Event-ID, with id: = seq, then live ones.
func TestStreamResumesFromLastEventID(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	drv := a.driver(t, "D1")
	base := time.Now()
	for i := range 5 {
		publish(drv, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(38.6+float64(i)/1000, -121.4, base.Add(time.Duration(i)*time.Second)))
	}
	from := a.depot.LastSeq() - 3
	req, _ := http.NewRequest("GET", "http://"+a.HTTPAddr()+"/api/v1/stream?access_token="+a.disp, nil)
	req.Header.Set("Last-Event-ID", strconv.FormatUint(from, 10))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, ct)
	}
	sc := bufio.NewScanner(resp.Body)
	var ids []uint64
	for sc.Scan() && len(ids) < 4 {
		if v, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
			n, _ := strconv.ParseUint(v, 10, 64)
			ids = append(ids, n)
			if len(ids) == 3 { // the replay is out, so the stream is live: one more fix
				go publish(drv, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(38.7, -121.4, base.Add(time.Minute)))
			}
		}
	}
	for i, id := range ids {
		if id != from+uint64(i)+1 {
			t.Fatalf("ids %v after %d", ids, from)
		}
	}
	if len(ids) != 4 {
		t.Fatalf("ids %v", ids)
	}
	// Without a token: refused.
	if r, err := http.Get("http://" + a.HTTPAddr() + "/api/v1/stream"); err != nil || r.StatusCode != 401 {
		t.Fatalf("stream without a token: %v %v", r.StatusCode, err)
	}
}

// TestFloodingClientIsSlowed: a handheld flooding publishes is refused
// over its rate (MQTT 5: PUBACK 0x96; 3.1.1: disconnected); another
// handheld is not affected.
func TestFloodingClientIsSlowed(t *testing.T) {
	a := startApp(t, "", nil)
	flood, calm := a.driver(t, "D1"), a.driver(t, "D2")
	base := time.Now()
	limited, cut := 0, false
	for i := 0; i < 400 && !cut; i++ {
		code, err := publish(flood, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(38.6, -121.4, base.Add(time.Duration(i)*time.Millisecond)))
		switch {
		case code == 0x96:
			limited++
		case err != nil:
			cut = true // went on flooding after its refusals: disconnected
		}
	}
	if limited < 30 || !cut {
		t.Fatalf("%d publishes refused with 0x96, cut off: %v", limited, cut)
	}
	for i := range 5 {
		if code, err := publish(calm, "depot/DEMO1/drivers/D2/gps", 1, fixJSON(38.6, -121.4, base.Add(time.Duration(i)*time.Second))); code != 0 || err != nil {
			t.Fatalf("the calm handheld was refused: 0x%02x %v", code, err)
		}
	}
	// A 3.1.1 flooder cannot be told: it is disconnected.
	tok, _ := a.accounts.CreateDevice("D3", "")
	s, code, err := connectV3(tcpDialer(a.MQTTAddr()), "drv-D3", "D3", tok)
	if err != nil || code != 0 {
		t.Fatalf("connect: %v %d", err, code)
	}
	closed := false
	for i := 0; i < 200 && !closed; i++ {
		_, closed = s.publish("depot/DEMO1/drivers/D3/gps", fixJSON(38.6, -121.4, base.Add(time.Duration(i)*time.Millisecond)))
	}
	if !closed {
		t.Fatal("a 3.1.1 flooder was not disconnected")
	}
	if a.broker.Stats.RateLimited.Load() == 0 {
		t.Fatal("not counted")
	}
}

// TestDeadHandheldIsDetected: a handheld that stops talking (no DISCONNECT,
// no FIN) is dropped within 1.5× its keepalive and shown offline.
func TestDeadHandheldIsDetected(t *testing.T) {
	a := startApp(t, "", nil)
	sub := a.subscribeWS(t, "depot/DEMO1/events")
	d := tcpDialer(a.MQTTAddr())
	conn, err := d()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// CONNECT with a 1 s keepalive, then silence.
	body := mqttString(nil, "MQTT")
	body = append(body, 4, 0xC2, 0, 1)
	body = mqttString(body, "drv-D1")
	body = mqttString(body, "D1")
	body = mqttString(body, a.tokens["D1"])
	conn.Write(packet(0x10, body))
	var got []string
	checkFor(t, 5*time.Second, func() error {
		got = got[:0]
		for _, e := range sub.typed(bridge.EventDriverPresence) {
			got = append(got, string(e.Payload))
		}
		if len(got) < 2 || !strings.Contains(got[len(got)-1], `"offline"`) {
			return fmt.Errorf("presence %v", got)
		}
		return nil
	})
}

// TestReconnectStorm: every handheld reconnects at once (the depot came
// back); all are accepted.
func TestReconnectStorm(t *testing.T) {
	a := startApp(t, "", nil)
	const n = 300
	tokens := make([]string, n)
	for i := range n {
		tok, err := a.accounts.CreateDevice(fmt.Sprintf("S%d", i), "")
		if err != nil {
			t.Fatal(err)
		}
		tokens[i] = tok
	}
	storm := func() []*paho.Client {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var clients []*paho.Client
		refused := 0
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("S%d", i)
				c, code, err := mqttConnect(a.MQTTAddr(), "drv-"+id, id, tokens[i])
				mu.Lock()
				defer mu.Unlock()
				if err != nil || code != 0 {
					refused++
					return
				}
				clients = append(clients, c)
			}()
		}
		wg.Wait()
		if refused > 0 {
			t.Fatalf("%d of %d refused in the storm", refused, n)
		}
		return clients
	}
	for _, c := range storm() {
		c.Disconnect(&paho.Disconnect{})
	}
	for _, c := range storm() {
		c.Disconnect(&paho.Disconnect{})
	}
}

// failingStore fails every commit while broken is set: a full or failing disk.
type failingStore struct {
	bridge.Store
	broken atomic.Bool
}

func (f *failingStore) Commit(b *bridge.Batch) error {
	if f.broken.Load() {
		return errors.New("write /data/db/3.dat: no space left on device")
	}
	return f.Store.Commit(b)
}

// TestDiskTrouble: while writes fail, live delivery goes on, QoS 1 fixes
// are refused rather than acknowledged unstored, /readyz and system:status
// say so; when the disk is back the appliance heals by itself and the
// event log has no hole.
func TestDiskTrouble(t *testing.T) {
	fs := &failingStore{}
	a := startApp(t, "", nil, func(m *Main) {
		m.faults.wrapStore = func(s bridge.Store) bridge.Store { fs.Store = s; return fs }
	})
	sub := a.subscribeWS(t, "depot/DEMO1/events")
	drv := a.driver(t, "D1")
	fs.broken.Store(true)
	code, _ := publish(drv, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(38.6301, -121.4, time.Now()))
	if code != 0x80 {
		t.Fatalf("fix during disk failure: PUBACK 0x%02x, want 0x80 (refused, not acknowledged)", code)
	}
	sub.findDelta(t, "DEMO1", "R1", func(d map[string]any) bool { return d["currentLat"] == 38.6301 }) // live goes on
	var body map[string]any
	if st := a.request(t, "GET", "/readyz", "", nil, &body); st != http.StatusServiceUnavailable {
		t.Fatalf("/readyz while failing: %d", st)
	}
	checkFor(t, 10*time.Second, func() error {
		for _, e := range sub.typed(bridge.EventSystemStatus) {
			var st map[string]any
			json.Unmarshal(e.Payload, &st)
			if s, _ := st["store"].(map[string]any); s != nil && s["ok"] == false {
				return nil
			}
		}
		return errors.New("system:status does not report the failing store")
	})

	fs.broken.Store(false)
	if code, err := publish(drv, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(38.6302, -121.4, time.Now().Add(time.Second))); code != 0 || err != nil {
		t.Fatalf("fix after recovery: 0x%02x %v", code, err)
	}
	if st := a.request(t, "GET", "/readyz", "", nil, nil); st != 200 {
		t.Fatalf("/readyz after recovery: %d", st)
	}
	var evs []bridge.Envelope
	a.getJSON(t, "/api/v1/events?after=0", &evs)
	for i, e := range evs {
		if e.Seq != uint64(i+1) {
			t.Fatalf("hole in the event log at %d: seq %d", i+1, e.Seq)
		}
	}
	if uint64(len(evs)) != a.depot.LastSeq() {
		t.Fatalf("%d events stored, last seq %d", len(evs), a.depot.LastSeq())
	}
}

// TestSubscriptionCap: a client may hold at most 100 subscriptions; more
// are refused (SUBACK 0x87), and deliveries to the ones it has go on.
func TestSubscriptionCap(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	s, code, err := connectV5(tcpDialer(a.MQTTAddr()), "dash-ana:many", "ana", a.disp)
	if err != nil || code != 0 {
		t.Fatalf("connect: %v 0x%02x", err, code)
	}
	defer s.close()
	for i := range 100 {
		if c := s.subscribe(fmt.Sprintf("depot/DEMO1/x/%d", i)); c != 1 {
			t.Fatalf("subscription %d: SUBACK 0x%02x", i, c)
		}
	}
	if c := s.subscribe("depot/DEMO1/events"); c != 0x87 {
		t.Fatalf("subscription 101: SUBACK 0x%02x, want 0x87", c)
	}
	if c := s.subscribe("depot/DEMO1/x/7"); c != 1 {
		t.Fatalf("renewing a subscription it has: SUBACK 0x%02x", c)
	}
}
