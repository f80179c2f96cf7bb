package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/eclipse/paho.golang/paho"
)

// ---- An MQTT client that speaks as OwnTracks does: level 3 ("MQIsdp"),
// 4 or 5, a persistent session, a 3600 s keepalive, an lwt will and
// retained QoS 1 locations. Hand-rolled for exact control of every byte.

type otClient struct {
	level byte
	conn  net.Conn
	r     *bufio.Reader
	id    uint16
	inbox []otMessage // PUBLISHes that arrived while waiting for something else
}

type otMessage struct {
	topic   string
	payload []byte
}

func otConnect(t *testing.T, addr string, level byte, clientID, user, pass string) (*otClient, byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &otClient{level: level, conn: conn, r: bufio.NewReader(conn)}
	t.Cleanup(func() { conn.Close() })
	name := "MQTT"
	if level == 3 {
		name = "MQIsdp"
	}
	body := mqttString(nil, name)
	// user, password, will QoS 1, will flag; no clean session (OwnTracks' default)
	body = append(body, level, 0x80|0x40|0x08|0x04, 0x0e, 0x10) // keepalive 3600
	if level == 5 {
		body = append(body, 0) // no properties
	}
	body = mqttString(body, clientID)
	if level == 5 {
		body = append(body, 0) // no will properties
	}
	body = mqttString(body, "owntracks/"+user+"/phone")
	body = mqttString(body, `{"_type":"lwt","tst":`+strconv.FormatInt(time.Now().Unix(), 10)+`}`)
	body = mqttString(body, user)
	body = mqttString(body, pass)
	if _, err := conn.Write(packet(0x10, body)); err != nil {
		t.Fatal(err)
	}
	typ, b, err := c.read()
	if err != nil || typ != 2 || len(b) < 2 {
		t.Fatalf("level %d: no CONNACK: type %d, %v", level, typ, err)
	}
	return c, b[1]
}

func (c *otClient) read() (byte, []byte, error) {
	s := v3session{conn: c.conn, r: c.r}
	return s.read()
}

// next returns the next packet that is not a PUBLISH, keeping PUBLISHes
// (acknowledged) for receive.
func (c *otClient) next() (byte, []byte, error) {
	for {
		typ, b, err := c.read()
		if err != nil || typ != 3 {
			return typ, b, err
		}
		c.keep(b)
	}
}

func (c *otClient) keep(b []byte) {
	n := int(binary.BigEndian.Uint16(b))
	topic, rest := string(b[2:2+n]), b[2+n:]
	id := binary.BigEndian.Uint16(rest) // the server's publishes here are QoS 1
	rest = rest[2:]
	if c.level == 5 {
		pl, k := binary.Uvarint(rest)
		rest = rest[k+int(pl):]
	}
	c.inbox = append(c.inbox, otMessage{topic, append([]byte(nil), rest...)})
	_, _ = c.conn.Write(packet(0x40, binary.BigEndian.AppendUint16(nil, id)))
}

// publish sends a retained QoS 1 PUBLISH and returns the PUBACK's reason
// code (0 for levels 3 and 4, which have none); closed when the server cut
// the connection instead.
func (c *otClient) publish(topic string, payload []byte) (code byte, closed bool) {
	c.id++
	body := mqttString(nil, topic)
	body = binary.BigEndian.AppendUint16(body, c.id)
	if c.level == 5 {
		body = append(body, 0)
	}
	body = append(body, payload...)
	if _, err := c.conn.Write(packet(0x33, body)); err != nil { // QoS 1, retain
		return 0, true
	}
	typ, b, err := c.next()
	if err != nil || typ == 14 {
		return 0, true
	}
	if typ != 4 {
		return 0xff, false
	}
	if c.level == 5 && len(b) > 2 {
		return b[2], false
	}
	return 0, false
}

// subscribe subscribes to OwnTracks' default filters and returns the
// granted codes.
func (c *otClient) subscribe(filters ...string) []byte {
	c.id++
	body := binary.BigEndian.AppendUint16(nil, c.id)
	if c.level == 5 {
		body = append(body, 0)
	}
	for _, f := range filters {
		body = mqttString(body, f)
		body = append(body, 1)
	}
	if _, err := c.conn.Write(packet(0x82, body)); err != nil {
		return nil
	}
	typ, b, err := c.next()
	if err != nil || typ != 9 {
		return nil
	}
	b = b[2:]
	if c.level == 5 {
		pl, k := binary.Uvarint(b)
		b = b[k+int(pl):]
	}
	return b
}

// receive returns the next PUBLISH the server sends.
func (c *otClient) receive(t *testing.T) otMessage {
	t.Helper()
	for len(c.inbox) == 0 {
		typ, b, err := c.read()
		if err != nil {
			t.Fatalf("waiting for a PUBLISH: %v", err)
		}
		if typ == 3 {
			c.keep(b)
		}
	}
	m := c.inbox[0]
	c.inbox = c.inbox[1:]
	return m
}

func otLocation(lat, lon float64, at time.Time) []byte {
	return []byte(fmt.Sprintf(`{"_type":"location","acc":12,"alt":31,"batt":81,"bs":1,"conn":"m","created_at":%d,"lat":%v,"lon":%v,"t":"u","tid":"d1","tst":%d,"vac":3,"vel":36,"cog":270}`,
		at.Unix(), lat, lon, at.Unix()))
}

type historyFixes struct {
	Fixes []bridge.Fix `json:"fixes"`
}

func (a *testApp) history(t *testing.T, route string) []bridge.Fix {
	t.Helper()
	var h historyFixes
	if code := a.getJSON(t, "/api/v1/routes/"+route+"/history", &h); code != 200 {
		t.Fatalf("history: HTTP %d", code)
	}
	return h.Fixes
}

// TestOwnTracksOverMQTT drives the appliance as OwnTracks does, at each
// protocol level the apps use: its fixes reach history and the dashboard,
// its retained locations reach no other driver, its other messages are
// taken and dropped, "locate now" reaches its command topic, and its will
// marks the driver offline.
func TestOwnTracksOverMQTT(t *testing.T) {
	t.Parallel()
	for _, level := range []byte{3, 4, 5} {
		t.Run("level "+strconv.Itoa(int(level)), func(t *testing.T) {
			t.Parallel()
			a := startApp(t, "", nil)
			sub := a.subscribeWS(t, "depot/DEMO1/events")

			if _, code := otConnect(t, a.MQTTAddr(), level, "drv-D1", "D1", "wrong"); code == 0 {
				t.Fatal("a wrong token was let in")
			}
			if _, code := otConnect(t, a.MQTTAddr(), level, "d1phone", "D1", a.tokens["D1"]); code == 0 {
				t.Fatal("OwnTracks' default client id, which could be another driver's, was let in")
			}
			d1, code := otConnect(t, a.MQTTAddr(), level, "drv-D1", "D1", a.tokens["D1"])
			if code != 0 {
				t.Fatalf("connect: 0x%02x", code)
			}
			if got := d1.subscribe("owntracks/+/+", "owntracks/+/+/event", "owntracks/+/+/info", "owntracks/D1/phone/cmd"); !bytes.Equal(got, []byte{1, 1, 1, 1}) {
				t.Fatalf("OwnTracks' subscriptions: granted % x", got)
			}

			at := time.Now().Add(-2 * time.Second).Truncate(time.Second)
			if code, closed := d1.publish("owntracks/D1/phone", otLocation(38.6012, -121.4711, at)); code != 0 || closed {
				t.Fatalf("location: 0x%02x closed=%v", code, closed)
			}
			d := sub.findDelta(t, "DEMO1", "R1", func(d map[string]any) bool { return d["currentLat"] == 38.6012 })
			if d["currentLng"] != -121.4711 {
				t.Fatalf("delta %v", d)
			}
			h := a.history(t, "R1")
			want := bridge.Fix{DriverID: "D1", Lat: 38.6012, Lng: -121.4711, TS: at.UnixMilli(), Acc: 12, Spd: 10, Hdg: 270, Batt: 81}
			if len(h) != 1 || h[0].Lat != want.Lat || h[0].TS != want.TS || h[0].Spd != want.Spd || h[0].Hdg != want.Hdg {
				t.Fatalf("history %+v, want %+v", h, want)
			}
			var st bridge.Snapshot
			a.getJSON(t, "/api/v1/state", &st)
			if dev := st.Devices["D1"]; dev.App != bridge.AppOwnTracks || dev.Batt != 81 || dev.BattState != bridge.BattUnplugged || dev.Conn != bridge.ConnMobile || dev.Acc != 12 {
				t.Fatalf("device health %+v", dev)
			}

			for _, m := range []struct{ topic, payload string }{
				{"owntracks/D1/phone/event", `{"_type":"transition","wtst":1764000000,"lat":38.58,"lon":-121.49,"tst":` + strconv.FormatInt(at.Unix(), 10) + `,"acc":10,"tid":"d1","event":"enter","desc":"Depot","t":"c"}`},
				{"owntracks/D1/phone/waypoints", `{"_type":"waypoints","waypoints":[{"_type":"waypoint","desc":"Depot","lat":38.58,"lon":-121.49,"rad":100,"tst":1764000000}]}`},
				{"owntracks/D1/phone", `{"_type":"status","android":{"wifistate":1}}`},
			} {
				if code, closed := d1.publish(m.topic, []byte(m.payload)); code != 0 || closed {
					t.Fatalf("%s: 0x%02x closed=%v (it must be taken, or the app resends it for ever)", m.topic, code, closed)
				}
			}
			if n := len(a.history(t, "R1")); n != 1 {
				t.Fatalf("%d fixes in history after non-location messages", n)
			}

			// Another driver subscribed as OwnTracks is, after D1's
			// retained location: the first thing it receives is its own
			// command, never D1's position.
			d2, code := otConnect(t, a.MQTTAddr(), 4, "drv-D2", "D2", a.tokens["D2"])
			if code != 0 {
				t.Fatalf("connect D2: 0x%02x", code)
			}
			if got := d2.subscribe("owntracks/+/+", "owntracks/#", "owntracks/D2/phone/cmd"); !bytes.Equal(got, []byte{1, 1, 1}) {
				t.Fatalf("D2's subscriptions: granted % x", got)
			}
			denied := a.broker.Stats.ReadDenied.Load()
			if code, closed := d1.publish("owntracks/D1/phone", otLocation(38.6013, -121.4711, at.Add(time.Second))); code != 0 || closed {
				t.Fatalf("second location: 0x%02x closed=%v", code, closed)
			}
			if n := a.broker.Stats.ReadDenied.Load() - denied; n != 0 {
				t.Fatalf("a location withheld from a friend's subscription counted %d refused reads", n)
			}
			var loc map[string]any
			if code := a.request(t, "POST", "/api/v1/drivers/D2/locate", a.disp, nil, &loc); code != http.StatusAccepted {
				t.Fatalf("locate D2: HTTP %d", code)
			}
			if m := d2.receive(t); m.topic != "owntracks/D2/phone/cmd" || string(m.payload) != string(reportLocation) {
				t.Fatalf("D2 received %s %s", m.topic, m.payload)
			}

			// Locate D1: its command topic, found from its subscription.
			if code := a.request(t, "POST", "/api/v1/drivers/D1/locate", a.disp, nil, &loc); code != http.StatusAccepted {
				t.Fatalf("locate D1: HTTP %d", code)
			}
			if sent := fmt.Sprint(loc["sent"]); !strings.Contains(sent, "owntracks-mqtt") {
				t.Fatalf("locate D1 sent %s", sent)
			}
			if m := d1.receive(t); m.topic != "owntracks/D1/phone/cmd" || string(m.payload) != string(reportLocation) {
				t.Fatalf("D1 received %s %s", m.topic, m.payload)
			}

			// Writing as another driver, or on a command topic, is refused
			// and stores nothing.
			for _, topic := range []string{"owntracks/D2/phone", "owntracks/D1/phone/cmd"} {
				if code, closed := d1.publish(topic, otLocation(1, 1, at)); code == 0 && !closed && level == 5 {
					t.Fatalf("%s: accepted", topic)
				}
			}
			if n := len(a.history(t, "R2")); n != 0 {
				t.Fatalf("D1 wrote %d fixes into D2's history", n)
			}

			// The connection drops without a DISCONNECT: the will is its
			// lwt, and the driver is offline.
			d1.conn.Close()
			checkFor(t, 5*time.Second, func() error {
				var st bridge.Snapshot
				a.getJSON(t, "/api/v1/state", &st)
				if p := st.Presence["D1"]; p.State != bridge.PresenceOffline {
					return fmt.Errorf("D1 is %+v", p)
				}
				return nil
			})
		})
	}
}

// handheldPost sends a handheld's HTTP request with Basic auth (user ""
// for none).
func handheldPost(t *testing.T, method, u, user, pass, contentType string, body []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, u, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestOwnTracksOverHTTP(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	sub := a.subscribeWS(t, "depot/DEMO1/events")
	u := "http://" + a.HTTPAddr() + "/api/v1/owntracks"
	tok := a.tokens["D1"]
	post := func(user, pass string, body []byte) (int, string) {
		code, b := handheldPost(t, "POST", u, user, pass, "application/json", body)
		return code, string(b)
	}
	at := time.Now().Add(-5 * time.Second).Truncate(time.Second)

	if code, body := post("D1", tok, nil); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Fatalf("empty body: %d %s", code, body)
	}
	for _, c := range []struct {
		user, pass string
		body       string
		code       int
	}{
		{"", "", string(otLocation(1, 1, at)), 401},
		{"D1", "wrong", string(otLocation(1, 1, at)), 401},
		{"D2", tok, string(otLocation(1, 1, at)), 401},
		{"D1", tok, `{"_type":"location","lat":1,"tst":1}`, 400},
		{"D1", tok, `{"_type":"location","lat":95,"lon":1,"tst":` + strconv.FormatInt(at.Unix(), 10) + `}`, 400},
		{"D1", tok, `<xml/>`, 400},
	} {
		if code, body := post(c.user, c.pass, []byte(c.body)); code != c.code {
			t.Fatalf("%s/%s %s: %d %s, want %d", c.user, c.pass, c.body, code, body, c.code)
		}
	}
	if n := len(a.history(t, "R1")); n != 0 {
		t.Fatalf("refused posts stored %d fixes", n)
	}
	// A fix too old to keep is taken (else the app sends it for ever) and dropped.
	if code, body := post("D1", tok, otLocation(1, 1, time.Now().Add(-48*time.Hour))); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Fatalf("stale fix: %d %s", code, body)
	}
	if code, body := post("D1", tok, otLocation(1, 1, time.Now().Add(time.Hour))); code != 200 {
		t.Fatalf("a fix from a clock an hour ahead: %d %s", code, body)
	}
	if code, body := post("D1", tok, []byte(`{"_type":"waypoints","waypoints":[`+strings.Repeat(`{"_type":"waypoint","desc":"x","lat":1,"lon":2,"rad":100,"tst":1},`, 400)+`{}]}`)); code != 200 {
		t.Fatalf("a waypoints export over the size limit: %d %s", code, body)
	}
	if code, body := post("D1", tok, []byte(`{"_type":"transition","event":"leave","tst":1}`)); code != 200 {
		t.Fatalf("transition: %d %s", code, body)
	}
	if code, body := post("D1", tok, otLocation(38.6021, -121.4702, at)); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Fatalf("location: %d %s", code, body)
	}
	sub.findDelta(t, "DEMO1", "R1", func(d map[string]any) bool { return d["currentLat"] == 38.6021 })
	if h := a.history(t, "R1"); len(h) != 1 || h[0].Lat != 38.6021 {
		t.Fatalf("history %+v", h)
	}
	// "Locate now" waits for the next post's answer.
	var loc map[string]any
	if code := a.request(t, "POST", "/api/v1/drivers/D1/locate", a.disp, nil, &loc); code != http.StatusAccepted || !strings.Contains(fmt.Sprint(loc["sent"]), "owntracks-http") {
		t.Fatalf("locate: %d %v", code, loc)
	}
	if code, body := post("D1", tok, nil); code != 200 || strings.TrimSpace(body) != string(reportLocation) && strings.TrimSpace(body) != "["+string(reportLocation)+"]" {
		t.Fatalf("answer after locate: %d %s", code, body)
	}
	if code, body := post("D1", tok, nil); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Fatalf("the command was given twice: %d %s", code, body)
	}
	if code := a.request(t, "POST", "/api/v1/drivers/NOPE/locate", a.disp, nil, nil); code != http.StatusNotFound {
		t.Fatalf("locate a driver with no handheld: HTTP %d", code)
	}
}

func TestTraccarClient(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	sub := a.subscribeWS(t, "depot/DEMO1/events")
	tok := a.tokens["D1"]
	base := "http://" + a.HTTPAddr() + "/api/v1/osmand/"
	newest := time.Now().Add(-10 * time.Second).Truncate(time.Second)
	older := newest.Add(-5 * time.Minute)

	// The older client: POST with the fix in the query and an empty body.
	q := fmt.Sprintf("id=D1&timestamp=%d&lat=38.6031&lon=-121.4691&speed=19.438&bearing=90&altitude=31&accuracy=8&batt=64&charge=true", newest.Unix())
	if code, body := handheldPost(t, "POST", base+tok+"?"+q, "", "", "", nil); code != 200 {
		t.Fatalf("query form: %d %s", code, body)
	}
	sub.findDelta(t, "DEMO1", "R1", func(d map[string]any) bool { return d["currentLat"] == 38.6031 })
	// The current client: JSON, after a dead zone, oldest first: it fills
	// history and never moves the live position back.
	js := fmt.Sprintf(`{"location":{"event":"motionchange","is_moving":true,"timestamp":"%s","odometer":1200,"coords":{"latitude":38.5999,"longitude":-121.4699,"accuracy":12.5,"speed":10,"heading":270.5,"altitude":31},"battery":{"is_charging":false,"level":0.81},"activity":{"type":"in_vehicle"},"extras":{}},"device_id":"D1"}`,
		older.UTC().Format("2006-01-02T15:04:05.000Z"))
	if code, body := handheldPost(t, "POST", base+tok, "", "", "application/json", []byte(js)); code != 200 {
		t.Fatalf("JSON: %d %s", code, body)
	}
	// A form body, and a GET.
	form := url.Values{"id": {"D1"}, "timestamp": {strconv.FormatInt(older.Add(time.Minute).Unix(), 10)}, "lat": {"38.6"}, "lon": {"-121.47"}}
	if code, body := handheldPost(t, "POST", base+tok, "", "", "application/x-www-form-urlencoded", []byte(form.Encode())); code != 200 {
		t.Fatalf("form: %d %s", code, body)
	}
	if code, body := handheldPost(t, "GET", base+tok+"?id=D1&lat=38.6001&lon=-121.47&timestamp="+strconv.FormatInt(older.Add(2*time.Minute).UnixMilli(), 10), "", "", "", nil); code != 200 {
		t.Fatalf("GET: %d %s", code, body)
	}
	h := a.history(t, "R1")
	if len(h) != 4 || h[0].TS != older.UnixMilli() || h[len(h)-1].TS != newest.UnixMilli() {
		t.Fatalf("history %+v", h)
	}
	var r bridge.RouteStatus
	a.getJSON(t, "/api/v1/routes/R1", &r)
	if r.CurrentLat != 38.6031 {
		t.Fatalf("a buffered fix moved the live position back: %+v", r)
	}
	var st bridge.Snapshot
	a.getJSON(t, "/api/v1/state", &st)
	if dev := st.Devices["D1"]; dev.App != bridge.AppTraccar || dev.Batt != 64 || dev.BattState != bridge.BattCharging {
		t.Fatalf("device health %+v", dev)
	}

	for _, c := range []struct {
		name, u string
		code    int
	}{
		{"unknown token", base + "nope?" + q, 401},
		{"another driver's id", base + tok + "?" + strings.Replace(q, "id=D1", "id=D2", 1), 403},
		{"malformed", base + tok + "?id=D1&lat=north&lon=1", 400},
		{"no position", base + tok + "?id=D1", 400},
		{"no id", base + tok + "?lat=1&lon=1", 400},
	} {
		if code, body := handheldPost(t, "POST", c.u, "", "", "", nil); code != c.code {
			t.Errorf("%s: %d %s, want %d", c.name, code, body, c.code)
		}
	}
	if code, body := handheldPost(t, "POST", base+tok, "", "", "application/json", []byte(`{"device_id":"D1","location":{`)); code != 400 {
		t.Errorf("broken JSON: %d %s", code, body)
	}
	if n := len(a.history(t, "R1")); n != 4 {
		t.Fatalf("refused requests stored fixes: %d", n)
	}
	if n := len(a.history(t, "R2")); n != 0 {
		t.Fatalf("D2 has %d fixes", n)
	}
}

func TestDriverState(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	u := "http://" + a.HTTPAddr() + "/api/v1/driver/state"
	if code, _ := handheldPost(t, "GET", u, "D1", "wrong", "", nil); code != 401 {
		t.Fatalf("wrong token: %d", code)
	}
	var o map[string]any
	if code := a.request(t, "POST", "/api/v1/vto", a.disp, map[string]string{"driverId": "D1", "routeId": "R1", "reason": "quiet day"}, &o); code != 201 {
		t.Fatalf("offer: %d", code)
	}
	code, body := handheldPost(t, "GET", u, "D1", a.tokens["D1"], "", nil)
	var st struct {
		Depot      string               `json:"depot"`
		ServerTime int64                `json:"serverTime"`
		DriverID   string               `json:"driverId"`
		Route      *bridge.RouteStatus  `json:"route"`
		Offers     []bridge.OfferStatus `json:"offers"`
	}
	if err := json.Unmarshal(body, &st); code != 200 || err != nil {
		t.Fatalf("state: %d %s %v", code, body, err)
	}
	if st.Depot != "DEMO1" || st.DriverID != "D1" || st.Route == nil || st.Route.RouteCode != "CX01" ||
		len(st.Offers) != 1 || st.Offers[0].VTOID != o["vtoId"] || st.Offers[0].State != bridge.StateOpen || st.ServerTime == 0 {
		t.Fatalf("state %s", body)
	}
	code, body = handheldPost(t, "GET", u, "D2", a.tokens["D2"], "", nil)
	if code != 200 || bytes.Contains(body, []byte(fmt.Sprint(o["vtoId"]))) {
		t.Fatalf("D2 sees D1's offer: %s", body)
	}
}

// TestOsmAndPort: Traccar Client pointed at a port of its own, as at a
// Traccar server: http://box:5055/<token>.
func TestOsmAndPort(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", func(c *ServeConfig) { c.OsmAndAddr = "127.0.0.1:0" })
	var h map[string]any
	if code := a.request(t, "GET", "/healthz", "", nil, &h); code != 200 || h["osmand"] == nil {
		t.Fatalf("healthz %d %v", code, h)
	}
	at := time.Now().Add(-time.Second).Truncate(time.Second)
	u := fmt.Sprintf("http://%s/%s?id=D1&timestamp=%d&lat=38.6041&lon=-121.4681", h["osmand"], a.tokens["D1"], at.Unix())
	if code, body := handheldPost(t, "POST", u, "", "", "", nil); code != 200 {
		t.Fatalf("OsmAnd port: %d %s", code, body)
	}
	if f := a.history(t, "R1"); len(f) != 1 || f[0].Lat != 38.6041 {
		t.Fatalf("history %+v", f)
	}
	if code, _ := handheldPost(t, "POST", fmt.Sprintf("http://%s/nope?id=D1&lat=1&lon=1", h["osmand"]), "", "", "", nil); code != 401 {
		t.Fatalf("unknown token on the OsmAnd port: %d", code)
	}
}

// TestOwnTracksOnGPSTopic: OwnTracks-shaped JSON on the depot's own gps
// topic is a fix when it is a location, and refused otherwise: what that
// topic carries reaches every dashboard (a review found any "_type"
// carried there, markup and 8 KB included).
func TestOwnTracksOnGPSTopic(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	sub := a.subscribeWS(t, "depot/DEMO1/drivers/+/gps", "depot/DEMO1/events")
	drv := a.driver(t, "D1")
	at := time.Now().Add(-time.Second).Truncate(time.Second)
	for _, bad := range []string{
		`{"_type":"junk","html":"<img src=x onerror=alert(1)>"}`,
		`{"_type":"lwt","tst":1}`,
		`{"_type":"location","lat":1,"lon":2,"tst":` + strconv.FormatInt(at.Unix(), 10) + `,"pad":"` + strings.Repeat("A", 2000) + `"}`,
	} {
		if code, err := publish(drv, "depot/DEMO1/drivers/D1/gps", 1, []byte(bad)); err == nil && code < 0x80 {
			t.Fatalf("%.40s…: accepted (0x%02x)", bad, code)
		}
	}
	if code, err := publish(drv, "depot/DEMO1/drivers/D1/gps", 1, otLocation(38.6051, -121.4671, at)); err != nil || code != 0 {
		t.Fatalf("an OwnTracks location: 0x%02x %v", code, err)
	}
	sub.findDelta(t, "DEMO1", "R1", func(d map[string]any) bool { return d["currentLat"] == 38.6051 })
	if got := sub.waitFor(t, "depot/DEMO1/drivers/D1/gps", 5*time.Second); len(got) != 1 || !bytes.Contains(got[0], []byte("38.6051")) {
		t.Fatalf("carried on the gps topic: %q", got)
	}
	var st bridge.Snapshot
	a.getJSON(t, "/api/v1/state", &st)
	if p := st.Presence["D1"]; p.State != bridge.PresenceOnline {
		t.Fatalf("a refused lwt changed presence: %+v", p)
	}
}

// TestDeviceGuardSparesRightCredentials: many wrong credentials from one
// address (a revoked phone retrying, behind the depot's Wi-Fi) never stop
// a driver with the right one at the same address.
func TestDeviceGuardSparesRightCredentials(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	u := "http://" + a.HTTPAddr() + "/api/v1/owntracks"
	last := 0
	for i := 0; i < 25; i++ {
		last, _ = handheldPost(t, "POST", u, "D2", "wrong", "application/json", nil)
	}
	if last != http.StatusTooManyRequests {
		t.Fatalf("25 wrong credentials: the last got %d, want 429", last)
	}
	if code, body := handheldPost(t, "POST", u, "D1", a.tokens["D1"], "application/json", nil); code != 200 {
		t.Fatalf("the right credential from the same address: %d %s", code, body)
	}
	if code, _ := handheldPost(t, "POST", "http://"+a.HTTPAddr()+"/api/v1/osmand/"+a.tokens["D1"]+"?id=D1&lat=1&lon=1", "", "", "", nil); code != 200 {
		t.Fatalf("the right OsmAnd token from the same address: %d", code)
	}
}

// TestTakeoverKeepsPresenceRight: a handheld reconnecting under its own
// client id (a takeover, the usual case on a phone whose old connection
// is half-open) and then leaving is offline, not online for good.
func TestTakeoverKeepsPresenceRight(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	first, code, err := mqttConnect(a.MQTTAddr(), "drv-D1", "D1", a.tokens["D1"])
	if err != nil || code != 0 {
		t.Fatalf("connect: 0x%02x %v", code, err)
	}
	defer func() { _ = first.Disconnect(&paho.Disconnect{}) }()
	second, code, err := mqttConnect(a.MQTTAddr(), "drv-D1", "D1", a.tokens["D1"])
	if err != nil || code != 0 {
		t.Fatalf("takeover: 0x%02x %v", code, err)
	}
	presence := func() string {
		var st bridge.Snapshot
		a.getJSON(t, "/api/v1/state", &st)
		return st.Presence["D1"].State
	}
	checkFor(t, 5*time.Second, func() error {
		if p := presence(); p != bridge.PresenceOnline {
			return fmt.Errorf("D1 is %q", p)
		}
		return nil
	})
	_ = second.Disconnect(&paho.Disconnect{})
	checkFor(t, 5*time.Second, func() error {
		if p := presence(); p != bridge.PresenceOffline {
			return fmt.Errorf("D1 is %q after its only connection left", p)
		}
		return nil
	})
}

// TestDriverAppPairing: the driver app's link carries a one-time code,
// not the token (which would stay in the phone's browser history); the
// code gives the credential once.
func TestDriverAppPairing(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	var dev struct {
		Token string `json:"token"`
		Setup struct {
			DriverApp string `json:"driverApp"`
		} `json:"setup"`
	}
	if code := a.request(t, "POST", "/api/v1/devices", a.admin, map[string]string{"driverId": "D1"}, &dev); code != 201 {
		t.Fatalf("provision: %d", code)
	}
	_, frag, _ := strings.Cut(dev.Setup.DriverApp, "#")
	code, ok := strings.CutPrefix(frag, "pair=")
	if !ok || strings.Contains(dev.Setup.DriverApp, dev.Token) || len(code) < 40 {
		t.Fatalf("driver app link %q: want a pairing code, not the token", dev.Setup.DriverApp)
	}
	code, _ = url.QueryUnescape(code)
	pair := func(c string) (int, map[string]string) {
		var out map[string]string
		st := a.request(t, "POST", "/api/v1/driver/pair", "", map[string]string{"code": c}, &out)
		return st, out
	}
	if st, _ := pair("not-a-code"); st != http.StatusGone {
		t.Fatalf("a wrong code: %d", st)
	}
	if st, out := pair(code); st != 200 || out["driverId"] != "D1" || out["token"] != dev.Token {
		t.Fatalf("the code: %d %v", st, out)
	}
	if st, _ := pair(code); st != http.StatusGone {
		t.Fatalf("the code a second time: %d", st)
	}
	// Showing the driver app's QR code again makes a new code; revoking
	// the device makes it worthless.
	var again struct {
		Setup struct {
			DriverApp string `json:"driverApp"`
		} `json:"setup"`
	}
	if st := a.request(t, "POST", "/api/v1/devices", a.admin, map[string]string{"driverId": "D2"}, &again); st != 201 {
		t.Fatalf("provision D2: %d", st)
	}
	_, frag, _ = strings.Cut(again.Setup.DriverApp, "#pair=")
	code2, _ := url.QueryUnescape(frag)
	if st := a.request(t, "DELETE", "/api/v1/devices/D2", a.admin, nil, nil); st/100 != 2 {
		t.Fatalf("revoke: %d", st)
	}
	if st, _ := pair(code2); st != http.StatusGone {
		t.Fatalf("the code of a revoked device: %d", st)
	}
	// The driver app's state call never invites the browser's own
	// sign-in dialog.
	req, _ := http.NewRequest("GET", "http://"+a.HTTPAddr()+"/api/v1/driver/state", nil)
	req.SetBasicAuth("D1", "wrong")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != "" {
		t.Fatalf("driver state with a wrong token: %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}
