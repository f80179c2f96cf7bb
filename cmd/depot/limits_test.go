package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// faultyListener fails Accept with queued errors before it passes through.
type faultyListener struct {
	net.Listener
	mu   sync.Mutex
	errs []error
}

func (l *faultyListener) inject(errs ...error) {
	l.mu.Lock()
	l.errs = append(l.errs, errs...)
	l.mu.Unlock()
}

func (l *faultyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		l.mu.Unlock()
		return nil, err
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

// TestMQTTListenerSurvivesEMFILE: after "too many open files" on accept,
// handhelds still connect; a listener that fails for good turns /healthz
// and /readyz to 503.
func TestMQTTListenerSurvivesEMFILE(t *testing.T) {
	var fl *faultyListener
	a := startApp(t, "", nil, func(m *Main) {
		m.faults.wrapMQTTListener = func(ln net.Listener) net.Listener { fl = &faultyListener{Listener: ln}; return fl }
	})
	a.driver(t, "D1")
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	fl.inject(emfile, emfile, emfile, emfile, emfile)
	for i := range 3 {
		c, code, err := mqttConnect(a.MQTTAddr(), "drv-D2", "D2", a.tokens["D2"])
		if err != nil || code != 0 {
			t.Fatalf("connect %d after EMFILE: 0x%02x %v", i, code, err)
		}
		_ = c.Disconnect(&paho.Disconnect{})
	}
	if code, body := a.getRaw(t, "/healthz"); code != 200 {
		t.Fatalf("healthz after passing errors: %d %s", code, body)
	}
	fl.inject(errors.New("listener broken for good"))
	if c, _, err := mqttConnect(a.MQTTAddr(), "drv-D2", "D2", a.tokens["D2"]); err == nil {
		_ = c.Disconnect(&paho.Disconnect{}) // accepted before the failure
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		checkFor(t, 5*time.Second, func() error {
			if code, body := a.getRaw(t, path); code != 503 {
				return fmt.Errorf("%s: %d %s", path, code, body)
			}
			return nil
		})
	}
}

// quickPublish is a QoS 1 publish that gives up after a second: paho does
// not notice at once that the broker cut the connection. A late PUBACK
// counts as not accepted, which only makes the limit tests stricter.
func quickPublish(c *paho.Client, topic string, payload []byte) (byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	r, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload})
	if r != nil {
		return r.ReasonCode, err
	}
	return 0, err
}

// TestPublishLimitSurvivesReconnect: the budget belongs to the credential,
// so reconnecting does not refill it.
func TestPublishLimitSurvivesReconnect(t *testing.T) {
	const rate, burst = 1.0, 5
	a := startApp(t, "", func(c *ServeConfig) { c.PublishRate, c.PublishBurst = rate, burst })
	base := time.Now().Add(-time.Minute)
	accepted, n := 0, 0
	start := time.Now()
	for range 4 {
		c, code, err := mqttConnect(a.MQTTAddr(), "drv-D1", "D1", a.tokens["D1"])
		if err != nil || code != 0 {
			t.Fatalf("connect: 0x%02x %v", code, err)
		}
		for range 10 {
			n++
			code, err := quickPublish(c, "depot/DEMO1/drivers/D1/gps", fixJSON(38.6, -121.4, base.Add(time.Duration(n)*time.Second)))
			if err == nil && code == 0 {
				accepted++
			}
			if err != nil && code == 0 {
				break // cut off
			}
		}
		_ = c.Disconnect(&paho.Disconnect{})
	}
	elapsed := time.Since(start).Seconds()
	if max := burst + int(rate*elapsed) + 1; accepted > max {
		t.Fatalf("%d of %d fixes accepted in %.1fs over 4 connections; the budget allows %d", accepted, n, elapsed, max)
	}
}

// TestRefusedPublishesCount: publishes the ACL refuses use up the budget
// and the strikes too, so a client flooding a topic it may not write is
// cut off.
func TestRefusedPublishesCount(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", func(c *ServeConfig) { c.PublishRate, c.PublishBurst = 1, 5 })
	c, code, err := mqttConnect(a.MQTTAddr(), "drv-D1", "D1", a.tokens["D1"])
	if err != nil || code != 0 {
		t.Fatalf("connect: 0x%02x %v", code, err)
	}
	defer c.Disconnect(&paho.Disconnect{})
	refused := 0
	checkFor(t, 10*time.Second, func() error {
		code, err := quickPublish(c, "depot/DEMO1/drivers/D2/gps", fixJSON(38.6, -121.4, time.Now()))
		if err != nil && code == 0 {
			return nil // disconnected
		}
		refused++
		return fmt.Errorf("still connected after %d refused publishes (last 0x%02x)", refused, code)
	})
	if a.broker.Stats.RateLimited.Load() == 0 {
		t.Fatal("not counted as rate limited")
	}
}

// TestTopicAliases: MQTT 5 topic aliases work, and stay inside the ACL.
func TestTopicAliases(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	c := a.driver(t, "D1")
	own, other := "depot/DEMO1/drivers/D1/gps", "depot/DEMO1/drivers/D2/gps"
	base := time.Now().Add(-time.Minute)
	pub := func(topic string, alias uint16, i int) byte {
		t.Helper()
		r, err := c.Publish(t.Context(), &paho.Publish{Topic: topic, QoS: 1, Payload: fixJSON(38.6, -121.4, base.Add(time.Duration(i)*time.Second)),
			Properties: &paho.PublishProperties{TopicAlias: &alias}})
		if r == nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		return r.ReasonCode
	}
	steps := []struct {
		topic string
		alias uint16
		want  byte
	}{
		{own, 1, 0},      // sets alias 1
		{"", 1, 0},       // uses it
		{other, 1, 0x87}, // cannot point it elsewhere
		{"", 1, 0},       // still the driver's own
		{other, 2, 0x87}, // an alias first used with another driver's topic
		{"", 2, 0x87},    // is never set
	}
	for i, s := range steps {
		if got := pub(s.topic, s.alias, i+1); got != s.want {
			t.Fatalf("step %d (%q alias %d): 0x%02x, want 0x%02x", i, s.topic, s.alias, got, s.want)
		}
	}
	var h historyResp
	a.getJSON(t, "/api/v1/routes/R1/history", &h)
	if len(h.Fixes) != 3 {
		t.Fatalf("%d fixes stored for D1, want 3", len(h.Fixes))
	}
	a.getJSON(t, "/api/v1/routes/R2/history", &h)
	if len(h.Fixes) != 0 {
		t.Fatalf("%d fixes stored for D2 by D1", len(h.Fixes))
	}
}

// TestStalledDashboardIsBounded: a WebSocket dashboard that subscribes at
// QoS 1 and then never reads holds a bounded number of inflight messages
// (mochi's default would keep 8,192, each stored with the session), and a
// dashboard that reads still gets every message.
func TestStalledDashboardIsBounded(t *testing.T) {
	a := startApp(t, "", nil)
	conn, err := wsDialer(a.HTTPAddr(), "")()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s := &v3session{conn: conn, r: bufio.NewReader(conn)}
	const stuckID = "dash-ana:stalled"
	body := mqttString(nil, "MQTT")
	body = append(body, 5, 0x02|0x80|0x40, 0, 60, 0) // v5, clean start, user, password; keepalive 60; no properties
	body = mqttString(body, stuckID)
	body = mqttString(body, "ana")
	body = mqttString(body, a.disp)
	if _, err := conn.Write(packet(0x10, body)); err != nil {
		t.Fatal(err)
	}
	if typ, b, err := s.read(); err != nil || typ != 2 || len(b) < 2 || b[1] != 0 {
		t.Fatalf("CONNACK: type %d % x %v", typ, b, err)
	}
	sub := binary.BigEndian.AppendUint16(nil, 1)
	sub = append(sub, 0) // no properties
	sub = mqttString(sub, "depot/DEMO1/#")
	sub = append(sub, 1)
	if _, err := conn.Write(packet(0x82, sub)); err != nil {
		t.Fatal(err)
	}
	if typ, b, err := s.read(); err != nil || typ != 9 || len(b) < 4 || b[3] != 1 {
		t.Fatalf("SUBACK: type %d % x %v", typ, b, err)
	}
	// From here on the stalled dashboard reads nothing.
	reader := a.subscribeWS(t, "depot/DEMO1/#")
	const n = 5000
	pad := strings.Repeat("x", 400)
	got := func() int {
		reader.mu.Lock()
		defer reader.mu.Unlock()
		k := 0
		for _, p := range reader.msgs["depot/DEMO1/events"] {
			if bytes.HasPrefix(p, []byte(`{"marker":`)) {
				k++
			}
		}
		return k
	}
	// In steps a reading dashboard keeps up with (a burst beyond its
	// outbound queue is dropped by design).
	for i := 0; i < n; i += 100 {
		for j := i; j < i+100; j++ {
			if err := a.broker.Publish("depot/DEMO1/events", fmt.Appendf(nil, `{"marker":%d,"pad":%q}`, j, pad), false, 1); err != nil {
				t.Fatal(err)
			}
		}
		checkFor(t, 10*time.Second, func() error {
			if k := got(); k < i+100 {
				return fmt.Errorf("the reading dashboard got %d of %d", k, i+100)
			}
			return nil
		})
	}
	if inf := a.broker.Inflight(stuckID); inf < 0 || inf > 256 {
		t.Fatalf("the stalled dashboard holds %d inflight messages", inf)
	}
}
