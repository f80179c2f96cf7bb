package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/depotcc/depot/storage"
	"github.com/depotcc/depot/ui/auth"
	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/golang-jwt/jwt/v5"
	mstorage "github.com/mochi-mqtt/server/v2/hooks/storage"
	mpackets "github.com/mochi-mqtt/server/v2/packets"
)

// connectWithWill sends a CONNECT (3.1.1 or 5, clean) carrying a Last Will
// and returns the open connection and the CONNACK code (3.1.1 return code
// or MQTT 5 reason code).
func connectWithWill(t *testing.T, addr string, v5 bool, clientID, user, pass, willTopic string, willPayload []byte, retain bool) (net.Conn, byte) {
	t.Helper()
	conn, code, err := dialWithWill(t, addr, v5, clientID, user, pass, willTopic, willPayload, retain)
	if err != nil {
		t.Fatal(err)
	}
	return conn, code
}

// dialWithWill is connectWithWill that reports a connection closed without
// a CONNACK as an error: the broker does so for a malformed CONNECT (say a
// will topic holding U+0000), which is a refusal too.
func dialWithWill(t *testing.T, addr string, v5 bool, clientID, user, pass, willTopic string, willPayload []byte, retain bool) (net.Conn, byte, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	level := byte(4)
	if v5 {
		level = 5
	}
	flags := byte(0x02 | 0x04 | 0x08 | 0x80 | 0x40) // clean, will, will QoS 1, user, password
	if retain {
		flags |= 0x20
	}
	body := mqttString(nil, "MQTT")
	body = append(body, level, flags, 0, 30)
	if v5 {
		body = append(body, 0) // connect properties
	}
	body = mqttString(body, clientID)
	if v5 {
		body = append(body, 0) // will properties
	}
	body = mqttString(body, willTopic)
	body = binary.BigEndian.AppendUint16(body, uint16(len(willPayload)))
	body = append(body, willPayload...)
	body = mqttString(body, user)
	body = mqttString(body, pass)
	if _, err := conn.Write(packet(0x10, body)); err != nil {
		t.Fatal(err)
	}
	code, err := readConnack(conn)
	return conn, code, err
}

// readConnack reads a CONNACK and returns its code (3.1.1 return code or
// MQTT 5 reason code).
func readConnack(conn net.Conn) (byte, error) {
	s := &v3session{conn: conn, r: bufio.NewReader(conn)}
	typ, b, err := s.read()
	if err != nil || typ != 2 || len(b) < 2 {
		return 0, fmt.Errorf("no CONNACK: type %d, %v", typ, err)
	}
	return b[1], nil
}

// TestWillOutsideOwnPresenceIsRefused is defect 1 of issue 10 (critical):
// mochi sends a Last Will with no ACL check, so a handheld could leave a
// will on the events topic (a forged envelope with markup and a huge seq),
// another driver's inbox, a route state or the heartbeat, retained, 60 KB,
// and kill its connection. Every such CONNECT is now refused with 0x87 (3.1.1:
// 5), so nothing reaches a dashboard or the store.
func TestWillOutsideOwnPresenceIsRefused(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	dash := a.subscribeWS(t, "depot/DEMO1/#")
	forged := []byte(`{"seq":1000000000000,"type":"route:update","payload":{"routeId":"R1","statusColor":"RED\"><img src=x onerror=alert(1)>"}}`)
	wills := []struct {
		name, topic string
		payload     []byte
	}{
		{"events", "depot/DEMO1/events", forged},
		{"another driver's inbox", "depot/DEMO1/drivers/D2/inbox", []byte(`{"seq":1,"type":"rescue:alert"}`)},
		{"another driver's presence", "depot/DEMO1/drivers/D2/presence", []byte("offline")},
		{"a route state", "depot/DEMO1/routes/R1/state", []byte(`{"routeId":"R1","statusColor":"GREEN"}`)},
		{"the heartbeat", "depot/DEMO1/system/heartbeat", []byte(`{"status":"ok"}`)},
		{"own gps", "depot/DEMO1/drivers/D1/gps", fixJSON(38.58, -121.49, time.Now())},
		{"own reply", "depot/DEMO1/drivers/D1/reply", []byte(`{"ref":"x","action":"accept"}`)},
		{"any topic", "anything/at/all", []byte("x")},
		{"own presence, 60 KB", "depot/DEMO1/drivers/D1/presence", bytes.Repeat([]byte("x"), 60<<10)},
		{"own presence, markup", "depot/DEMO1/drivers/D1/presence", []byte(`{"state":"<img src=x onerror=alert(1)>"}`)},
		{"own presence saying online", "depot/DEMO1/drivers/D1/presence", []byte("online")},
	}
	for _, w := range wills {
		for _, v5 := range []bool{true, false} {
			want := byte(5)
			if v5 {
				want = 0x87
			}
			conn, code := connectWithWill(t, a.MQTTAddr(), v5, "drv-D1", "D1", a.tokens["D1"], w.topic, w.payload, true)
			conn.Close()
			if code != want {
				t.Errorf("will on %s (v5 %v): CONNACK 0x%02x, want 0x%02x", w.name, v5, code, want)
			}
		}
	}
	// A will that is allowed, sent after the refused ones, arrives: once it
	// has, nothing of the refused ones can still be on its way.
	conn, code := connectWithWill(t, a.MQTTAddr(), true, "drv-D2", "D2", a.tokens["D2"], "depot/DEMO1/drivers/D2/presence", []byte("offline"), true)
	if code != 0 {
		t.Fatalf("D2's own presence will refused: 0x%02x", code)
	}
	conn.Close()
	checkFor(t, 10*time.Second, func() error {
		dash.mu.Lock()
		defer dash.mu.Unlock()
		for _, p := range dash.msgs["depot/DEMO1/drivers/D2/presence"] {
			if string(p) == "offline" {
				return nil
			}
		}
		return fmt.Errorf("D2's will not seen")
	})
	dash.mu.Lock()
	defer dash.mu.Unlock()
	for topic, msgs := range dash.msgs {
		for _, p := range msgs {
			if bytes.Contains(p, []byte("onerror")) || bytes.Contains(p, []byte("1000000000000")) || len(p) >= 60<<10 ||
				strings.HasPrefix(topic, "anything") || topic == "depot/DEMO1/drivers/D2/inbox" {
				t.Errorf("a refused will reached the dashboard on %s: %.80q", topic, p)
			}
		}
	}
	var evs []bridge.Envelope
	a.request(t, "GET", "/api/v1/events?after=0&limit=1000", a.disp, nil, &evs)
	for _, e := range evs {
		if e.Seq >= 1000000000000 || bytes.Contains(e.Payload, []byte("onerror")) {
			t.Errorf("a refused will reached the event log: %+v", e)
		}
	}
}

// TestOwnPresenceWillIsAccepted: the will every handheld should leave, its
// own presence saying offline (bare or as JSON), retained, is accepted and
// delivered over both protocol versions.
func TestOwnPresenceWillIsAccepted(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	dash := a.subscribeWS(t, "depot/DEMO1/drivers/+/presence")
	for i, w := range []struct {
		v5      bool
		payload string
	}{{true, "offline"}, {false, "offline"}, {true, `{"state":"offline","ts":1764150000123}`}, {false, `{"state":"offline"}`}} {
		conn, code := connectWithWill(t, a.MQTTAddr(), w.v5, "drv-D1:w"+fmt.Sprint(i), "D1", a.tokens["D1"], "depot/DEMO1/drivers/D1/presence", []byte(w.payload), true)
		if code != 0 {
			t.Fatalf("own presence will %q (v5 %v) refused: 0x%02x", w.payload, w.v5, code)
		}
		conn.Close() // no DISCONNECT: the will is due
		checkFor(t, 10*time.Second, func() error {
			dash.mu.Lock()
			defer dash.mu.Unlock()
			for _, p := range dash.msgs["depot/DEMO1/drivers/D1/presence"] {
				if string(p) == w.payload {
					return nil
				}
			}
			return fmt.Errorf("will %q not delivered", w.payload)
		})
	}
}

// TestClientIDOfAnotherDriverIsRefused is defect 4 of issue 10: with
// "drv-<id>-*" as the rule, driver X1 connecting as "drv-X1-b" resumed the
// persistent session of driver X1-b and got its queued messages (likewise
// "dash-ana-…" and a user ana-x). A client id now names one identity only.
func TestClientIDOfAnotherDriverIsRefused(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	for _, d := range []string{"X1", "X1-b"} {
		tok, err := a.accounts.CreateDevice(d, "")
		if err != nil {
			t.Fatal(err)
		}
		a.tokens[d] = tok
	}
	if err := a.accounts.CreateUser("ana-x", anaPassword, bridge.RoleDispatcher); err != nil {
		t.Fatal(err)
	}
	// X1-b's handheld has a persistent session with its inbox subscribed.
	h := &handheld{t: t, a: a, driver: "X1-b"}
	h.connect(true)
	h.drop()

	for _, p := range protocols {
		for _, tc := range []struct {
			clientID, user, pass string
			ok                   bool
		}{
			{"drv-X1-b", "X1", a.tokens["X1"], false},
			{"drv-X1-b:1", "X1", a.tokens["X1"], false},
			{"drv-X1:b", "X1", a.tokens["X1"], true},
			{"drv-X1:b", "X1-b", a.tokens["X1-b"], false},
			{"dash-ana-x", "ana", a.disp, false},
			{"dash-ana-x:tab", "ana", a.disp, false},
			{"dash-ana:x", "ana", a.disp, true},
		} {
			s, code, err := p.connect(tcpDialer(a.MQTTAddr()), tc.clientID, tc.user, tc.pass)
			if err != nil {
				t.Fatalf("%s %s as %s: %v", p.name, tc.user, tc.clientID, err)
			}
			if s != nil {
				s.close()
			}
			want := byte(0)
			if !tc.ok {
				want = p.code(0x87, 5)
			}
			if code != want {
				t.Errorf("%s: %s as %q: 0x%02x, want 0x%02x", p.name, tc.user, tc.clientID, code, want)
			}
		}
	}
	// X1-b's own session is still its own: nobody took it over (a
	// takeover with a clean start would have ended it).
	h.connect(false)
	if !h.resumed {
		t.Error("X1-b's persistent session is gone")
	}
	h.drop()
}

// TestRetainedOnlyOwnPresence: a handheld's retained message is kept only
// for its own presence in the presence schema. A retained fix (OwnTracks
// retains locations) is stored as a fix but not retained, so nobody who
// subscribes later reads the driver's last position from the broker; a
// retained presence that is not a presence is refused (0x99).
func TestRetainedOnlyOwnPresence(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	c := a.driver(t, "D1")
	pub := func(topic string, payload []byte) byte {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Retain: true, Payload: payload})
		if r == nil {
			t.Fatalf("publish %s: %v", topic, err)
		}
		return r.ReasonCode
	}
	if code := pub("depot/DEMO1/drivers/D1/gps", fixJSON(38.58, -121.49, time.Now())); code != 0 {
		t.Fatalf("retained fix: 0x%02x", code)
	}
	// A real answer to a real offer, sent retained: taken, not retained.
	var offer map[string]any
	if code := a.request(t, "POST", "/api/v1/vto", a.disp, map[string]string{"driverId": "D1", "routeId": "R1"}, &offer); code != 201 {
		t.Fatalf("POST /vto: %d", code)
	}
	if code := pub("depot/DEMO1/drivers/D1/reply", []byte(`{"ref":"`+offer["vtoId"].(string)+`","action":"decline"}`)); code != 0 {
		t.Fatalf("retained reply to an offer: 0x%02x", code)
	}
	if code := pub("depot/DEMO1/drivers/D1/presence", []byte(`{"state":"online","html":"<b>x</b>"}`)); code != 0x99 {
		t.Fatalf("retained junk presence: 0x%02x, want 0x99", code)
	}
	if code := pub("depot/DEMO1/drivers/D1/presence", bytes.Repeat([]byte(" "), 10<<10)); code != 0x99 {
		t.Fatalf("retained 10 KB presence: 0x%02x, want 0x99", code)
	}
	if code := pub("depot/DEMO1/drivers/D1/presence", []byte(`{"state":"online","ts":1764150000123}`)); code != 0 {
		t.Fatalf("retained presence: 0x%02x", code)
	}
	// A dashboard that subscribes now gets what is retained. mochi sends
	// the retained messages of one SUBSCRIBE filter by filter, in order
	// (after the SUBACK), so once the presence (the last filter) has come,
	// a retained fix or reply would have come before it.
	const presence = "depot/DEMO1/drivers/D1/presence"
	dash := a.subscribeWS(t, "depot/DEMO1/drivers/D1/gps", "depot/DEMO1/drivers/D1/reply", presence)
	for _, p := range dash.waitFor(t, presence, 10*time.Second) {
		if _, err := bridge.ParsePresence(p); err != nil {
			t.Errorf("retained presence %q: %v", p, err)
		}
	}
	dash.mu.Lock()
	defer dash.mu.Unlock()
	for topic := range dash.msgs {
		if topic != presence {
			t.Errorf("a handheld's message on %s was retained", topic)
		}
	}
}

// TestLoginTokenSessionEndsAtExpiry: a dashboard's MQTT session opened with
// a login token is ended when the token expires (DISCONNECT 0xA0, maximum
// connect time), as a new CONNECT with it would be refused.
func TestLoginTokenSessionEndsAtExpiry(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	c := &auth.Claims{Role: bridge.RoleDispatcher, Depot: "DEMO1", RegisteredClaims: jwt.RegisteredClaims{Subject: "ana", Issuer: "depot",
		IssuedAt: jwt.NewNumericDate(time.Now()), ExpiresAt: jwt.NewNumericDate(time.Now().Add(2 * time.Second))}}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(a.accounts.Key)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", a.MQTTAddr())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var reason = -1
	pc := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn), ClientID: "dash-ana:exp",
		OnServerDisconnect: func(d *paho.Disconnect) { mu.Lock(); reason = int(d.ReasonCode); mu.Unlock() }})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, err := pc.Connect(ctx, &paho.Connect{ClientID: "dash-ana:exp", KeepAlive: 30, CleanStart: true,
		Username: "ana", UsernameFlag: true, Password: []byte(tok), PasswordFlag: true})
	if err != nil || ca.ReasonCode != 0 {
		t.Fatalf("connect: %v %+v", err, ca)
	}
	defer pc.Disconnect(&paho.Disconnect{})
	checkFor(t, 15*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if reason != 0xA0 {
			return fmt.Errorf("no DISCONNECT 0xA0 (reason %d)", reason)
		}
		return nil
	})
}

// FuzzWill sends CONNECTs whose Last Will has any topic and payload to the
// real broker: a CONNECT is accepted only when the will passes the rule
// (the driver's own presence, saying offline), and the appliance goes on
// serving.
func FuzzWill(f *testing.F) {
	for _, s := range []struct {
		topic, payload string
	}{
		{"depot/DEMO1/drivers/D1/presence", "offline"},
		{"depot/DEMO1/drivers/D1/presence", `{"state":"offline","ts":1}`},
		{"depot/DEMO1/events", `{"seq":1000000000000}`},
		{"depot/DEMO1/drivers/D1/gps", `{"lat":1,"lng":2,"ts":3}`},
		{"depot/DEMO1/drivers/D1/presence/", "offline"},
		{"depot/DEMO1/drivers/D1/+", "offline"},
	} {
		f.Add(true, s.topic, []byte(s.payload))
		f.Add(false, s.topic, []byte(s.payload))
	}
	// Iterations come faster than the per-identity publish budget refills.
	a := startApp(f, "", func(c *ServeConfig) { c.PublishRate, c.PublishBurst = 1e6, 1e6 })
	drv := bridge.Identity{Role: bridge.RoleDriver, Subject: "D1"}
	ts := time.Now()
	f.Fuzz(func(t *testing.T, v5 bool, topic string, payload []byte) {
		if len(topic) > 1024 || len(payload) > 8<<10 {
			return
		}
		conn, code, err := dialWithWill(t, a.MQTTAddr(), v5, "drv-D1", "D1", a.tokens["D1"], topic, payload, true)
		conn.Close()
		if err != nil {
			// A malformed CONNECT is dropped without a CONNACK: refused.
			code = 0x80
		}
		if _, err := drv.MayPublish("DEMO1", bridge.Publication{Topic: topic, Payload: payload, QoS: 1, Retain: true, Will: true}); code == 0 && err != nil {
			t.Fatalf("will %q %q accepted: the rule says %v", topic, payload, err)
		}
		ts = ts.Add(time.Millisecond)
		c := a.driver(t, "D2")
		if code, err := publish(c, "depot/DEMO1/drivers/D2/gps", 1, fixJSON(38.6, -121.4, ts)); err != nil || code != 0 {
			t.Fatalf("after a will on %q the appliance stopped serving: 0x%02x %v", topic, code, err)
		}
	})
}

// TestStoredRetainedHeldToTheRule: retained messages an older version
// stored (a will on the events topic, another driver's presence, a
// retained fix, a junk presence) are dropped from the store at the next
// start instead of being served to every dashboard for ever; a driver's
// own valid presence stays.
func TestStoredRetainedHeldToTheRule(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := startApp(t, dir, nil)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := storage.Open(dbDir(filepath.Join(dir, "data")), nil)
	if err != nil {
		t.Fatal(err)
	}
	put := func(client, topic, payload string, user ...mpackets.UserProperty) {
		t.Helper()
		m := mstorage.Message{ID: mstorage.RetainedKey + "_" + topic, T: mstorage.RetainedKey, Client: client, Origin: client,
			TopicName: topic, Payload: []byte(payload), Created: time.Now().Unix(), Properties: mstorage.MessageProperties{User: user}}
		m.FixedHeader.Type, m.FixedHeader.Qos, m.FixedHeader.Retain = mpackets.Publish, 1, true
		b, err := m.MarshalBinary()
		if err == nil {
			err = db.PutSession(m.ID, b)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	const good = "depot/DEMO1/drivers/D1/presence"
	bad := []string{"depot/DEMO1/events", "depot/DEMO1/drivers/D2/presence", "depot/DEMO1/drivers/D1/gps", "depot/DEMO1/drivers/D3/presence"}
	put("drv-D1", good, `{"state":"online","ts":1764150000123}`, mpackets.UserProperty{Key: "x", Val: strings.Repeat("x", 30<<10)})
	put("drv-D1", bad[0], `{"seq":1000000000000,"type":"route:update","payload":{"routeId":"R1","statusColor":"<img src=x onerror=alert(1)>"}}`)
	put("drv-D1", bad[1], "offline")
	put("drv-D1", bad[2], `{"lat":38.5,"lng":-121.4,"ts":1764150000123}`)
	put("drv-D3", bad[3], strings.Repeat("x", 60<<10))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	b := startApp(t, dir, func(c *ServeConfig) { c.CortexURL = "" })
	// mochi sends the retained messages of one SUBSCRIBE filter by filter,
	// in order, so once the last filter's has come the others' would have.
	sub := b.subscribeWS(t, append(bad, good)...)
	sub.waitFor(t, good, 10*time.Second)
	sub.mu.Lock()
	for topic := range sub.msgs {
		if topic != good {
			t.Errorf("a stored retained message the rule refuses was served on %s", topic)
		}
	}
	sub.mu.Unlock()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	var topics []string
	for _, r := range storedSessions(t, dir, mstorage.RetainedKey) {
		var m mstorage.Message
		if err := m.UnmarshalBinary(r); err != nil {
			t.Fatal(err)
		}
		topics = append(topics, m.TopicName)
		if len(m.Properties.User) > 0 {
			t.Errorf("stored retained %s still carries %d user properties", m.TopicName, len(m.Properties.User))
		}
	}
	if len(topics) != 1 || topics[0] != good {
		t.Fatalf("stored retained topics after a start: %q, want only %s", topics, good)
	}
}

// TestRetainedPresenceCarriesNoProperties: a retained presence and a will
// are bounded by the rule on their payload; MQTT 5 application properties
// (a 30 KB user property, a content type with markup, a response topic)
// would otherwise ride along into the store and to every later subscriber.
func TestRetainedPresenceCarriesNoProperties(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	const presence = "depot/DEMO1/drivers/D1/presence"
	props := func() (paho.UserProperties, string, string, []byte) {
		return paho.UserProperties{{Key: "x", Value: strings.Repeat("x", 30<<10)}}, "text/html<script>", "depot/DEMO1/events", []byte("c")
	}
	user, ct, rt, cd := props()
	drv := a.driver(t, "D1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r, err := drv.Publish(ctx, &paho.Publish{Topic: presence, QoS: 1, Retain: true, Payload: []byte("online"),
		Properties: &paho.PublishProperties{User: user, ContentType: ct, ResponseTopic: rt, CorrelationData: cd}}); err != nil || r.ReasonCode >= 0x80 {
		t.Fatalf("presence with properties: %v %+v", err, r)
	}

	// A dashboard that subscribes later gets the retained presence bare.
	var mu sync.Mutex
	var got []*paho.Publish
	conn, err := net.Dial("tcp", a.MQTTAddr())
	if err != nil {
		t.Fatal(err)
	}
	dash := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn), ClientID: "dash-ana:props",
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			mu.Lock()
			got = append(got, pr.Packet)
			mu.Unlock()
			return true, nil
		}}})
	if ca, err := dash.Connect(ctx, &paho.Connect{ClientID: "dash-ana:props", KeepAlive: 30, CleanStart: true,
		Username: "ana", UsernameFlag: true, Password: []byte(a.disp), PasswordFlag: true}); err != nil || ca.ReasonCode != 0 {
		t.Fatalf("dashboard: %v %+v", err, ca)
	}
	defer dash.Disconnect(&paho.Disconnect{})
	if _, err := dash.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: presence, QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	bare := func(want string) {
		t.Helper()
		checkFor(t, 10*time.Second, func() error {
			mu.Lock()
			defer mu.Unlock()
			for _, p := range got {
				if string(p.Payload) != want {
					continue
				}
				if pp := p.Properties; pp != nil && (len(pp.User) > 0 || pp.ContentType != "" || pp.ResponseTopic != "" || pp.CorrelationData != nil) {
					return fmt.Errorf("%q arrived with properties: %d user, content type %q, response topic %q", want, len(pp.User), pp.ContentType, pp.ResponseTopic)
				}
				return nil
			}
			return fmt.Errorf("no %q presence yet", want)
		})
	}
	bare("online")

	// A will with user properties: they are not sent with it.
	wconn, err := net.Dial("tcp", a.MQTTAddr())
	if err != nil {
		t.Fatal(err)
	}
	wc := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(wconn), ClientID: "drv-D2"})
	if ca, err := wc.Connect(ctx, &paho.Connect{ClientID: "drv-D2", KeepAlive: 30, CleanStart: true,
		Username: "D2", UsernameFlag: true, Password: []byte(a.tokens["D2"]), PasswordFlag: true,
		WillMessage:    &paho.WillMessage{Topic: "depot/DEMO1/drivers/D2/presence", QoS: 1, Retain: true, Payload: []byte("offline")},
		WillProperties: &paho.WillProperties{User: user, ContentType: ct, ResponseTopic: rt, CorrelationData: cd}}); err != nil || ca.ReasonCode != 0 {
		t.Fatalf("will with properties: %v %+v", err, ca)
	}
	if _, err := dash.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "depot/DEMO1/drivers/D2/presence", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	wconn.Close() // no DISCONNECT: the will goes out
	bare("offline")
}

// connectSession sends a CONNECT (3.1.1 or 5) with user and password,
// persistent or clean, and returns the CONNACK code.
func connectSession(t *testing.T, addr string, v5, persistent bool, clientID, user, pass string) byte {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	level, flags := byte(4), byte(0x80|0x40)
	if v5 {
		level = 5
	}
	if !persistent {
		flags |= 0x02
	}
	body := mqttString(nil, "MQTT")
	body = append(body, level, flags, 0, 30)
	if v5 {
		if persistent {
			body = append(body, 5, 0x11, 0, 0, 0x0e, 0x10) // session expiry 3600 s
		} else {
			body = append(body, 0)
		}
	}
	body = mqttString(body, clientID)
	body = mqttString(body, user)
	body = mqttString(body, pass)
	if _, err := conn.Write(packet(0x10, body)); err != nil {
		t.Fatal(err)
	}
	code, err := readConnack(conn)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// TestOnePersistentSessionPerIdentity: every persistent session is stored
// and gets its own copy of each inbox message, so one credential could
// open hundreds. An identity keeps one, under its own client id; suffixed
// ids (a second device, a dashboard tab) are for clean sessions.
func TestOnePersistentSessionPerIdentity(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	for _, v5 := range []bool{true, false} {
		refused := byte(2)
		if v5 {
			refused = 0x85
		}
		for _, tc := range []struct {
			clientID, user, pass string
			persistent           bool
			want                 byte
		}{
			{"drv-D1:2", "D1", a.tokens["D1"], true, refused},
			{"drv-D1:", "D1", a.tokens["D1"], true, refused},
			{"drv-D1:2", "D1", a.tokens["D1"], false, 0},
			{"drv-D1", "D1", a.tokens["D1"], true, 0},
			{"dash-ana:tab", "ana", a.disp, true, refused},
			{"dash-ana:tab", "ana", a.disp, false, 0},
		} {
			if code := connectSession(t, a.MQTTAddr(), v5, tc.persistent, tc.clientID, tc.user, tc.pass); code != tc.want {
				t.Errorf("v5 %v: %s as %q, persistent %v: 0x%02x, want 0x%02x", v5, tc.user, tc.clientID, tc.persistent, code, tc.want)
			}
		}
	}
}

// TestStoredSessionsHeldToTheRule: a persistent session an older version
// stored under a client id that now names another identity (driver X1's
// "drv-X1-b", from before ids were bound) is dropped at the next start with
// its subscriptions and queued messages, so driver X1-b does not take it
// over and get X1's queued inbox; a driver's own session stays.
func TestStoredSessionsHeldToTheRule(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := startApp(t, dir, nil)
	for _, d := range []string{"X1", "X1-b"} {
		tok, err := a.accounts.CreateDevice(d, "")
		if err != nil {
			t.Fatal(err)
		}
		a.tokens[d] = tok
	}
	tokens := a.tokens
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := storage.Open(dbDir(filepath.Join(dir, "data")), nil)
	if err != nil {
		t.Fatal(err)
	}
	put := func(key string, v interface{ MarshalBinary() ([]byte, error) }) {
		t.Helper()
		b, err := v.MarshalBinary()
		if err == nil {
			err = db.PutSession(key, b)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	session := func(clientID, identity, driver string) {
		put(mstorage.ClientKey+"_"+clientID, &mstorage.Client{ID: clientID, T: mstorage.ClientKey, Listener: "tcp",
			Username: []byte(identity), ProtocolVersion: 5, Properties: mstorage.ClientProperties{SessionExpiryInterval: 3600}})
		inbox := "depot/DEMO1/drivers/" + driver + "/inbox"
		sk := mstorage.SubscriptionKey + "_" + clientID + ":" + inbox
		put(sk, &mstorage.Subscription{ID: sk, T: mstorage.SubscriptionKey, Client: clientID, Filter: inbox, Qos: 1})
		ik := mstorage.InflightKey + "_" + clientID + ":7"
		m := &mstorage.Message{ID: ik, T: mstorage.InflightKey, Client: clientID, TopicName: inbox, PacketID: 7,
			Payload: []byte(`{"seq":1,"type":"route:reassigned","payload":{"routeId":"R1"}}`), Created: time.Now().Unix()}
		m.FixedHeader.Type, m.FixedHeader.Qos = mpackets.Publish, 1
		put(ik, m)
	}
	session("drv-X1-b", "driver:X1", "X1") // stored when X1 could use X1-b's id
	session("drv-D1:2", "driver:D1", "D1") // a suffixed id is for clean sessions now
	session("drv-D2", "driver:D2", "D2")   // the driver's own: kept
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	b := startApp(t, dir, func(c *ServeConfig) { c.CortexURL = "" })
	b.tokens = tokens
	h := &handheld{t: t, a: b, driver: "X1-b"}
	h.connect(false)
	if h.resumed {
		t.Error("X1-b resumed the session X1 stored under its client id")
	}
	h.drop()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	var clients []string
	for _, prefix := range []string{mstorage.ClientKey, mstorage.SubscriptionKey, mstorage.InflightKey} {
		for _, r := range storedSessions(t, dir, prefix) {
			var v struct {
				Client, ID string
				Username   []byte
			}
			if err := json.Unmarshal(r, &v); err != nil {
				t.Fatal(err)
			}
			if prefix == mstorage.ClientKey {
				v.Client = v.ID + " " + string(v.Username)
			}
			clients = append(clients, prefix+" "+v.Client)
		}
	}
	// X1-b's own new session (identity driver:X1-b) is there too.
	want := []string{mstorage.ClientKey + " drv-D2 driver:D2", mstorage.ClientKey + " drv-X1-b driver:X1-b",
		mstorage.SubscriptionKey + " drv-D2", mstorage.InflightKey + " drv-D2"}
	if fmt.Sprint(clients) != fmt.Sprint(want) {
		t.Fatalf("stored session records after a start: %q, want %q", clients, want)
	}
}

// storedSessions reads the broker's records of one kind (mochi's key
// prefix) from the store of a stopped appliance whose data is in dir.
func storedSessions(t *testing.T, dir, prefix string) [][]byte {
	t.Helper()
	db, err := storage.Open(dbDir(filepath.Join(dir, "data")), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	recs, err := db.ScanSessions(prefix + "_")
	if err != nil {
		t.Fatal(err)
	}
	return recs
}
