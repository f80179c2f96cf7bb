package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/depotcc/depot/push"
	"github.com/eclipse/paho.golang/paho"
	"github.com/golang-jwt/jwt/v5"
)

// fakeFirebase is Google's side of FCM HTTP v1 at the HTTP boundary: an
// OAuth2 token endpoint that checks the service account's JWT grant, and
// the messages:send endpoint, which checks the bearer token and records
// each message; its answers are scripted.
type fakeFirebase struct {
	srv    *httptest.Server
	key    *rsa.PrivateKey
	mu     sync.Mutex
	got    []map[string]any // messages delivered (answered 200)
	calls  int
	answer func(n int) (status int, body string, header http.Header) // nil: 200
	errs   []string
}

const fcmScope = "https://www.googleapis.com/auth/firebase.messaging"

func newFakeFirebase(t *testing.T) *fakeFirebase {
	t.Helper()
	f := &fakeFirebase{}
	var err error
	if f.key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		claims := jwt.MapClaims{}
		_, err := jwt.ParseWithClaims(r.PostForm.Get("assertion"), claims, func(*jwt.Token) (any, error) { return &f.key.PublicKey, nil },
			jwt.WithValidMethods([]string{"RS256"}))
		switch {
		case r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
			f.fail("grant_type " + r.PostForm.Get("grant_type"))
		case err != nil:
			f.fail("assertion: " + err.Error())
		case claims["scope"] != fcmScope || claims["iss"] != "sa@depot-test.iam.gserviceaccount.com" || claims["aud"] != f.srv.URL+"/token":
			f.fail(fmt.Sprintf("claims %v", claims))
		default:
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"access_token":"ya29.fake","token_type":"Bearer","expires_in":3600}`)
			return
		}
		http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
	})
	mux.HandleFunc("POST /v1/projects/depot-test/messages:send", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer ya29.fake" {
			f.fail("bearer " + r.Header.Get("Authorization"))
			http.Error(w, "{}", http.StatusUnauthorized)
			return
		}
		var body struct {
			Message map[string]any `json:"message"`
		}
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &body); err != nil || body.Message == nil {
			f.fail("body " + string(b))
			http.Error(w, "{}", http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.calls++
		n, answer := f.calls, f.answer
		f.mu.Unlock()
		status, resp, h := 200, `{"name":"projects/depot-test/messages/1"}`, http.Header{}
		if answer != nil {
			status, resp, h = answer(n)
		}
		for k, v := range h {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, resp)
		if status == 200 {
			f.mu.Lock()
			f.got = append(f.got, body.Message)
			f.mu.Unlock()
		}
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeFirebase) fail(s string) {
	f.mu.Lock()
	f.errs = append(f.errs, s)
	f.mu.Unlock()
}

func (f *fakeFirebase) delivered() []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.errs) > 0 {
		panic("fake firebase saw a bad request: " + strings.Join(f.errs, "; "))
	}
	return append([]map[string]any(nil), f.got...)
}

func (f *fakeFirebase) script(answer func(n int) (int, string, http.Header)) {
	f.mu.Lock()
	f.answer, f.calls = answer, 0
	f.mu.Unlock()
}

// serviceAccount writes the service-account file FCM is turned on with.
func (f *fakeFirebase) serviceAccount(t *testing.T, dir string) string {
	t.Helper()
	der, _ := x509.MarshalPKCS8PrivateKey(f.key)
	sa, _ := json.Marshal(map[string]string{"type": "service_account", "project_id": "depot-test", "private_key_id": "k1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "sa@depot-test.iam.gserviceaccount.com", "client_id": "1", "token_uri": f.srv.URL + "/token"})
	p := filepath.Join(dir, "fcm.json")
	if err := os.WriteFile(p, sa, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startPushApp runs the appliance with FCM pointed at f, a short head
// start for the live session, and a fast outbox; clock, when set, is the
// depot's clock.
func startPushApp(t *testing.T, dir string, f *fakeFirebase, clock func() time.Time) *testApp {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	sa := f.serviceAccount(t, dir)
	return startApp(t, dir, func(c *ServeConfig) { c.FCMCredentials, c.FCMEndpoint = sa, f.srv.URL+"/v1" }, func(m *Main) {
		m.faults.pushGrace, m.faults.pushPoll = 300*time.Millisecond, 50*time.Millisecond
		if clock != nil {
			m.Clock = clock
		}
	})
}

func (a *testApp) registerFCM(t *testing.T, driver, token string) {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"kind": "fcm", "token": token})
	if code, body := handheldPost(t, "POST", "http://"+a.HTTPAddr()+"/api/v1/push/register", driver, a.tokens[driver], "application/json", b); code != 201 {
		t.Fatalf("register: %d %s", code, body)
	}
}

func (a *testApp) offerVTO(t *testing.T, driver, route string) string {
	t.Helper()
	var o struct {
		VTOID string `json:"vtoId"`
	}
	if code := a.request(t, "POST", "/api/v1/vto", a.disp, map[string]string{"driverId": driver, "routeId": route, "reason": "light volume"}, &o); code != 201 {
		t.Fatalf("offer: %d", code)
	}
	return o.VTOID
}

func waitHealth(t *testing.T, a *testApp, what string, ok func(push.Health) bool) push.Health {
	t.Helper()
	var h push.Health
	checkFor(t, 10*time.Second, func() error {
		if h = a.push.Health(); !ok(h) {
			return fmt.Errorf("push health %+v: not yet %s", h, what)
		}
		return nil
	})
	return h
}

// TestPushFCM: a VTO offer to a driver whose app is asleep reaches FCM in
// the exact shape of HTTP v1, once; one whose live session took it is not
// pushed; a dead token is forgotten; 429 with Retry-After and an outage
// end in one delivery.
func TestPushFCM(t *testing.T) {
	t.Parallel()
	f := newFakeFirebase(t)
	a := startPushApp(t, "", f, nil)
	a.registerFCM(t, "D1", "fcm-token-D1")

	vto := a.offerVTO(t, "D1", "R1")
	checkFor(t, 10*time.Second, func() error {
		if n := len(f.delivered()); n != 1 {
			return fmt.Errorf("%d delivered", n)
		}
		return nil
	})
	m := f.delivered()[0]
	data, _ := m["data"].(map[string]any)
	note, _ := m["notification"].(map[string]any)
	android, _ := m["android"].(map[string]any)
	if m["token"] != "fcm-token-D1" || data["type"] != "vto:offer" || data["ref"] != vto || data["driverId"] != "D1" ||
		note["title"] != "Time off offered · CX01" || android["priority"] != "high" || android["collapse_key"] != vto {
		t.Fatalf("message %v", m)
	}
	for k, v := range data {
		if _, ok := v.(string); !ok {
			t.Fatalf("data[%q] is %T: FCM takes strings only", k, v)
		}
	}
	if ttl, _ := android["ttl"].(string); !strings.HasSuffix(ttl, "s") || ttl < "1700s" || ttl > "1800s" {
		t.Fatalf("ttl %q: the offer's 30 minutes", android["ttl"])
	}

	// The live path: D2's session acknowledges its inbox message in time.
	d2, code, err := mqttConnect(a.MQTTAddr(), "drv-D2", "D2", a.tokens["D2"])
	if err != nil || code != 0 {
		t.Fatalf("D2: 0x%02x %v", code, err)
	}
	defer func() { _ = d2.Disconnect(&paho.Disconnect{}) }()
	got := make(chan struct{}, 4)
	d2.AddOnPublishReceived(func(paho.PublishReceived) (bool, error) { got <- struct{}{}; return true, nil })
	if _, err := d2.Subscribe(t.Context(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "depot/DEMO1/drivers/D2/inbox", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	a.registerFCM(t, "D2", "fcm-token-D2")
	a.offerVTO(t, "D2", "R2")
	waitHealth(t, a, "the live session's message not pushed", func(h push.Health) bool { return h.Live == 1 })
	if n := len(f.delivered()); n != 1 {
		t.Fatalf("%d delivered: the live session took it", n)
	}

	// 429 with Retry-After, then a 503, then it goes: one delivery.
	f.script(func(n int) (int, string, http.Header) {
		switch n {
		case 1:
			return 429, `{"error":{"code":429,"status":"RESOURCE_EXHAUSTED"}}`, http.Header{"Retry-After": {"1"}}
		case 2:
			return 503, `{"error":{"code":503,"status":"UNAVAILABLE"}}`, nil
		}
		return 200, `{"name":"projects/depot-test/messages/2"}`, nil
	})
	start := time.Now()
	a.request(t, "POST", "/api/v1/vto/"+vto+"/decline", a.disp, nil, nil)
	writeFile(t, a.feed, feedR2Behind(7)) // a rescue: D1 is the rescuer
	checkFor(t, 15*time.Second, func() error {
		if n := len(f.delivered()); n != 2 {
			return fmt.Errorf("%d delivered", n)
		}
		return nil
	})
	if d := time.Since(start); d < time.Second {
		t.Fatalf("delivered after %s: Retry-After 1 s not honoured", d)
	}
	if m := f.delivered()[1]; m["data"].(map[string]any)["type"] != "rescue:alert" || !strings.HasPrefix(m["notification"].(map[string]any)["title"].(string), "Rescue: help CX02") {
		t.Fatalf("rescue message %v", m)
	}

	// A dead token is forgotten.
	f.script(func(int) (int, string, http.Header) {
		return 404, `{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}`, nil
	})
	a.offerVTO(t, "D1", "R1")
	waitHealth(t, a, "the dead target removed", func(h push.Health) bool { return h.Removed == 1 && h.Queued == 0 })
	var devs []struct {
		DriverID string           `json:"driverId"`
		Push     []map[string]any `json:"push"`
	}
	a.request(t, "GET", "/api/v1/devices", a.admin, nil, &devs)
	for _, d := range devs {
		if d.DriverID == "D1" && len(d.Push) != 0 {
			t.Fatalf("D1's dead target still listed: %v", d.Push)
		}
		if d.DriverID == "D2" && (len(d.Push) != 1 || d.Push[0]["kind"] != "fcm" || d.Push[0]["token"] != nil) {
			t.Fatalf("D2's targets as admins see them: %v", d.Push)
		}
	}
}

// offsetClock is the depot's clock, moved on by a test.
type offsetClock struct{ off atomic.Int64 }

func (c *offsetClock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *offsetClock) advance(d time.Duration) { c.off.Add(int64(d)) }

// TestPushOutboxDurable: with the push service down, an offer that expires
// while queued is never sent; a queue left at shutdown drains after a
// restart, each message once.
func TestPushOutboxDurable(t *testing.T) {
	t.Parallel()
	f := newFakeFirebase(t)
	down := func(int) (int, string, http.Header) { return 503, `{"error":{"code":503,"status":"UNAVAILABLE"}}`, nil }
	f.script(down)
	dir := t.TempDir()
	clock := &offsetClock{}
	a := startPushApp(t, dir, f, clock.now)
	a.registerFCM(t, "D1", "fcm-token-D1")

	a.offerVTO(t, "D1", "R1")
	waitHealth(t, a, "the offer queued and failing", func(h push.Health) bool { return h.Queued == 1 && h.FailingTargets == 1 })
	clock.advance(31 * time.Minute) // the offer is over
	waitHealth(t, a, "the expired offer dropped", func(h push.Health) bool { return h.Expired == 1 && h.Queued == 0 })

	// A reassignment queued while the service is down, then a restart.
	// (The restart issues D1 and D2 new credentials, which drops their
	// targets: D3's is the one whose queue must drain.)
	tok3, err := a.accounts.CreateDevice("D3", "spare handheld")
	if err != nil {
		t.Fatal(err)
	}
	a.tokens["D3"] = tok3
	a.registerFCM(t, "D3", "fcm-token-D3")
	if code := a.request(t, "POST", "/api/v1/routes/R1/reassign", a.disp, map[string]string{"toDriverId": "D3"}, nil); code != 200 {
		t.Fatalf("reassign: %d", code)
	}
	waitHealth(t, a, "the reassignment queued for D1 and D3", func(h push.Health) bool { return h.Queued == 2 })
	a.Close()
	if n := len(f.delivered()); n != 0 {
		t.Fatalf("%d delivered while the service was down", n)
	}
	f.script(nil) // the service is back
	b := startPushApp(t, dir, f, clock.now)
	checkFor(t, 10*time.Second, func() error {
		if n := len(f.delivered()); n != 1 {
			return fmt.Errorf("%d delivered after the restart", n)
		}
		return nil
	})
	waitHealth(t, b, "the queue drained", func(h push.Health) bool { return h.Queued == 0 && h.Sent == 1 })
	if m := f.delivered()[0]; m["data"].(map[string]any)["type"] != "route:reassigned" || m["token"] != "fcm-token-D3" {
		t.Fatalf("after the restart: %v", m)
	}
}
