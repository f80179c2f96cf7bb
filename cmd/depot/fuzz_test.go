package main

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// FuzzRawMQTT writes arbitrary bytes after a valid CONNECT into the real
// broker over TCP. The appliance must neither crash nor stall: after each
// input another handheld still publishes and is acknowledged.
func FuzzRawMQTT(f *testing.F) {
	for _, s := range [][]byte{
		{0x30, 0x05, 0x00, 0x01, 'a', 'b', 'c'},              // QoS 0 publish
		{0x32, 0x7f},                                         // truncated QoS 1 publish
		{0x82, 0x06, 0x00, 0x01, 0x00, 0x01, '#', 0x01},      // subscribe #
		{0xc0, 0x00}, {0xe0, 0x00}, {0xff, 0xff, 0xff, 0xff}, // ping, disconnect, garbage
		append([]byte{0x32, 0x20, 0x00, 0x1a}, []byte("depot/DEMO1/drivers/D1/gps\x00\x01{}")...),
	} {
		f.Add(s)
	}
	a := startApp(f, "", func(c *ServeConfig) { c.PublishRate, c.PublishBurst = 1e6, 1e6 }) // the probe publishes a lot
	connect := func() []byte {
		body := mqttString(nil, "MQTT")
		body = append(body, 4, 0xC2, 0, 30)
		body = mqttString(body, "drv-D1")
		body = mqttString(body, "D1")
		body = mqttString(body, a.tokens["D1"])
		return packet(0x10, body)
	}()
	probe, code, err := mqttConnect(a.MQTTAddr(), "drv-D2", "D2", a.tokens["D2"])
	if err != nil || code != 0 {
		f.Fatalf("probe: %v 0x%02x", err, code)
	}
	ts := time.Now()
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := net.Dial("tcp", a.MQTTAddr())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(time.Second))
		c.Write(connect)
		c.Write(b)
		buf := make([]byte, 512)
		c.Read(buf) // whatever the broker answers, or nothing
		c.Close()
		ts = ts.Add(time.Millisecond)
		if code, err := publish(probe, "depot/DEMO1/drivers/D2/gps", 1, fixJSON(38.6, -121.4, ts)); err != nil || code != 0 {
			t.Fatalf("after %x the appliance stopped serving: 0x%02x %v", b, code, err)
		}
	})
}

// FuzzAPI sends arbitrary methods, paths, queries and bodies to the real
// API as a dispatcher: every answer is a deliberate status, never a 5xx.
func FuzzAPI(f *testing.F) {
	for _, s := range []struct{ m, p, b string }{
		{"GET", "/api/v1/routes/R1/history?from=0&to=99999999999999&format=gpx", ""},
		{"GET", "/api/v1/events?after=18446744073709551615&limit=99999", ""},
		{"POST", "/api/v1/vto", `{"driverId":"D1","routeId":"R1","reason":"x"}`},
		{"POST", "/api/v1/routes/R1/reassign", `{"toDriverId":"../../x"}`},
		{"POST", "/api/v1/vto/%00/accept", ""},
		{"POST", "/api/v1/webhooks/payroll", `{"vtoId":1}`},
		{"GET", "/api/v1/stream?after=x", ""},
	} {
		f.Add(s.m, s.p, s.b)
	}
	a := startApp(f, "", nil)
	h := a.web.Handler()
	f.Fuzz(func(t *testing.T, method, path, body string) {
		if !strings.HasPrefix(path, "/") || strings.Contains(path, "/stream") || strings.ContainsAny(method, " \t\r\n") || method == "" {
			return // not a request a client can send; the stream never ends by design
		}
		req, err := newRequest(method, path, body)
		if err != nil {
			return
		}
		req.Header.Set("Authorization", "Bearer "+a.disp)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != 501 && rec.Code != 503 {
			t.Fatalf("%s %s %q: HTTP %d %s", method, path, body, rec.Code, rec.Body)
		}
	})
}

// newRequest builds a request the way a server would have parsed it, or
// says it could not be sent at all (httptest panics on those).
func newRequest(method, path, body string) (r *http.Request, err error) {
	defer func() {
		if recover() != nil {
			r, err = nil, errors.New("not a request")
		}
	}()
	return httptest.NewRequest(method, path, bytes.NewReader([]byte(body))), nil
}
