package push

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	testProject = "depot-test"
	testEmail   = "pusher@depot-test.iam.gserviceaccount.com"
	testAccess  = "ya29.test-access-token"
	testFCMTok  = "fcm-token:APA91b_driver-1"
)

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

// testRSAKey is made once: RSA key generation is slow under -race.
func testRSAKey(t *testing.T) *rsa.PrivateKey {
	rsaOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		rsaKey = k
	})
	return rsaKey
}

// fakeTokenServer checks the service account JWT grant as Google's token
// endpoint would, and answers an access token.
func fakeTokenServer(t *testing.T, key *rsa.PrivateKey) (srv *httptest.Server, grants *atomic.Int32) {
	grants = new(atomic.Int32)
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tokenURI := "http://" + r.Host + r.URL.Path
		if r.Method != http.MethodPost || r.URL.Path != "/token" {
			t.Errorf("token server: %s %s", r.Method, r.URL.Path)
			http.Error(w, "no", http.StatusNotFound)
			return
		}
		if err := r.ParseForm(); err != nil {
			t.Errorf("token server: form: %v", err)
		}
		if g := r.PostForm.Get("grant_type"); g != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
			t.Errorf("token server: grant_type %q", g)
		}
		claims := jwt.MapClaims{}
		_, err := jwt.ParseWithClaims(r.PostForm.Get("assertion"), claims,
			func(*jwt.Token) (any, error) { return &key.PublicKey, nil },
			jwt.WithValidMethods([]string{"RS256"}),
			jwt.WithIssuer(testEmail),
			jwt.WithAudience(tokenURI),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
		)
		if err != nil {
			t.Errorf("token server: assertion: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":"invalid_grant"}`))
			return
		}
		if claims["scope"] != "https://www.googleapis.com/auth/firebase.messaging" {
			t.Errorf("token server: scope %v", claims["scope"])
		}
		grants.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"access_token":"` + testAccess + `","token_type":"Bearer","expires_in":3600}`))
	}))
	t.Cleanup(srv.Close)
	return srv, grants
}

func serviceAccountJSON(t *testing.T, key *rsa.PrivateKey, tokenURI string) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     testProject,
		"private_key_id": "k1",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   testEmail,
		"client_id":      "1234",
		"auth_uri":       "http://127.0.0.1/unused",
		"token_uri":      tokenURI,
	})
	return b
}

// fcmBody is the shape the fake FCM accepts, and nothing more.
type fcmBody struct {
	Message struct {
		Token        string            `json:"token"`
		Data         map[string]string `json:"data"`
		Notification struct {
			Title string `json:"title"`
			Body  string `json:"body"`
		} `json:"notification"`
		Android struct {
			Priority     string `json:"priority"`
			TTL          string `json:"ttl"`
			CollapseKey  string `json:"collapse_key"`
			Notification struct {
				Tag string `json:"tag"`
			} `json:"notification"`
		} `json:"android"`
		APNS struct {
			Headers map[string]string `json:"headers"`
		} `json:"apns"`
	} `json:"message"`
}

// fakeFCM checks each send request, then answers with reply.
func fakeFCM(t *testing.T, reply http.HandlerFunc) (srv *httptest.Server, sends *atomic.Int32) {
	sends = new(atomic.Int32)
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sends.Add(1)
		if r.Method != http.MethodPost || r.URL.Path != "/v1/projects/"+testProject+"/messages:send" {
			t.Errorf("fcm: %s %s", r.Method, r.URL.Path)
		}
		if a := r.Header.Get("Authorization"); a != "Bearer "+testAccess {
			t.Errorf("fcm: Authorization %q", a)
		}
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("fcm: Content-Type %q", ct)
		}
		var b fcmBody
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&b); err != nil {
			t.Errorf("fcm: body: %v", err)
		}
		m := b.Message
		if m.Token != testFCMTok {
			t.Errorf("fcm: token %q", m.Token)
		}
		wantData := map[string]string{"type": "offer", "ref": "off_9", "seq": "42", "id": "evt_42"}
		if len(m.Data) != len(wantData) {
			t.Errorf("fcm: data %v, want %v", m.Data, wantData)
		}
		for k, v := range wantData {
			if m.Data[k] != v {
				t.Errorf("fcm: data[%s] = %q, want %q", k, m.Data[k], v)
			}
		}
		if m.Notification.Title != "New load" || m.Notification.Body != "Bay 4 → Leeds" {
			t.Errorf("fcm: notification %+v", m.Notification)
		}
		if m.Android.Priority != "high" || m.Android.CollapseKey != "off_9" || m.Android.Notification.Tag != "off_9" {
			t.Errorf("fcm: android %+v", m.Android)
		}
		if h := m.APNS.Headers; h["apns-collapse-id"] != "off_9" || h["apns-priority"] != "10" || h["apns-expiration"] == "" {
			t.Errorf("fcm: apns %+v: an iPhone's push must collapse and expire with the offer", h)
		}
		// Expires is 30 min ahead; whole seconds rounded down, so "1799s"
		// (or "1800s" on a clock that did not move).
		if ttl := m.Android.TTL; !regexp.MustCompile(`^\d+s$`).MatchString(ttl) {
			t.Errorf("fcm: ttl %q", ttl)
		} else if n, _ := strconv.Atoi(strings.TrimSuffix(ttl, "s")); n < 1790 || n > 1800 {
			t.Errorf("fcm: ttl %q, want about 1799s", ttl)
		}
		reply(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, sends
}

func testMessage() Message {
	return Message{
		ID:          "evt_42",
		CollapseKey: "off_9",
		Title:       "New load",
		Body:        "Bay 4 → Leeds",
		Data:        map[string]string{"type": "offer", "ref": "off_9", "seq": "42"},
		Expires:     time.Now().Add(30 * time.Minute),
	}
}

func newTestFCM(t *testing.T, reply http.HandlerFunc) (*FCM, *atomic.Int32, *atomic.Int32) {
	key := testRSAKey(t)
	tokens, grants := fakeTokenServer(t, key)
	fcm, sends := fakeFCM(t, reply)
	f, err := NewFCM(serviceAccountJSON(t, key, tokens.URL+"/token"), fcm.URL+"/v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.Project() != testProject {
		t.Fatalf("Project() = %q", f.Project())
	}
	return f, grants, sends
}

func answer(status int, header map[string]string, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write([]byte(body))
	}
}

func TestFCMSend(t *testing.T) {
	target := Target{Kind: KindFCM, Token: testFCMTok}
	cases := []struct {
		name  string
		reply http.HandlerFunc
		want  Result // Err only as "set or not"
	}{
		{"delivered", answer(200, nil, `{"name":"projects/depot-test/messages/0:1"}`), Result{}},
		{"unregistered", answer(404, nil, `{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}`),
			Result{Remove: true, Err: errAny}},
		{"invalid token by field", answer(400, nil, `{"error":{"code":400,"message":"Invalid value at 'message.token'","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"message.token","description":"Invalid registration token"}]}]}}`),
			Result{Remove: true, Err: errAny}},
		{"invalid token by message", answer(400, nil, `{"error":{"code":400,"message":"The registration token is not a valid FCM registration token","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"INVALID_ARGUMENT"}]}}`),
			Result{Remove: true, Err: errAny}},
		{"other invalid argument", answer(400, nil, `{"error":{"code":400,"message":"Invalid JSON payload received.","status":"INVALID_ARGUMENT"}}`),
			Result{Err: errAny}},
		{"bare 404 (wrong project) keeps the target", answer(404, nil, `{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND"}}`),
			Result{Err: errAny}},
		{"quota", answer(429, map[string]string{"Retry-After": "7"}, `{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","message":"Quota exceeded"}}`),
			Result{Retry: true, RetryAfter: 7 * time.Second, Err: errAny}},
		{"unavailable", answer(503, nil, `{"error":{"code":503,"status":"UNAVAILABLE","message":"The service is currently unavailable."}}`),
			Result{Retry: true, Err: errAny}},
		{"forbidden", answer(403, nil, `{"error":{"code":403,"status":"PERMISSION_DENIED","message":"SenderId mismatch"}}`),
			Result{Err: errAny}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, grants, sends := newTestFCM(t, c.reply)
			got := f.Send(context.Background(), target, testMessage())
			checkResult(t, got, c.want)
			if sends.Load() != 1 || grants.Load() != 1 {
				t.Errorf("sends %d, grants %d; want 1, 1", sends.Load(), grants.Load())
			}
		})
	}
}

func TestFCMReusesAccessToken(t *testing.T) {
	f, grants, sends := newTestFCM(t, answer(200, nil, `{}`))
	for range 3 {
		if r := f.Send(context.Background(), Target{Kind: KindFCM, Token: testFCMTok}, testMessage()); r != (Result{}) {
			t.Fatalf("Send: %+v", r)
		}
	}
	if sends.Load() != 3 || grants.Load() != 1 {
		t.Errorf("sends %d, grants %d; want 3, 1", sends.Load(), grants.Load())
	}
}

func TestFCMExpiredNotSent(t *testing.T) {
	f, grants, sends := newTestFCM(t, answer(200, nil, `{}`))
	m := testMessage()
	m.Expires = time.Now().Add(-time.Second)
	r := f.Send(context.Background(), Target{Kind: KindFCM, Token: testFCMTok}, m)
	if !errors.Is(r.Err, errExpired) || r.Retry || r.Remove {
		t.Errorf("Send: %+v, want errExpired", r)
	}
	if sends.Load() != 0 || grants.Load() != 0 {
		t.Errorf("sends %d, grants %d; want none", sends.Load(), grants.Load())
	}
}

func TestFCMNetworkErrorRetries(t *testing.T) {
	key := testRSAKey(t)
	tokens, _ := fakeTokenServer(t, key)
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close() // nothing listens there now
	f, err := NewFCM(serviceAccountJSON(t, key, tokens.URL+"/token"), dead.URL+"/v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := f.Send(context.Background(), Target{Kind: KindFCM, Token: testFCMTok}, testMessage()); !r.Retry || r.Err == nil {
		t.Errorf("Send to a closed port: %+v, want Retry", r)
	}

	// The token server down is a passing failure too.
	f, err = NewFCM(serviceAccountJSON(t, key, dead.URL+"/token"), dead.URL+"/v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := f.Send(context.Background(), Target{Kind: KindFCM, Token: testFCMTok}, testMessage()); !r.Retry || r.Err == nil {
		t.Errorf("Send with the token server down: %+v, want Retry", r)
	}
}

func TestNewFCMRejects(t *testing.T) {
	key := testRSAKey(t)
	good := serviceAccountJSON(t, key, "http://127.0.0.1:1/token")
	without := func(field string) []byte {
		var m map[string]string
		json.Unmarshal(good, &m)
		delete(m, field)
		b, _ := json.Marshal(m)
		return b
	}
	with := func(field, value string) []byte {
		var m map[string]string
		json.Unmarshal(good, &m)
		m[field] = value
		b, _ := json.Marshal(m)
		return b
	}
	cases := map[string]struct {
		json []byte
		want string
	}{
		"not JSON":        {[]byte("project_id=x"), "not a JSON"},
		"user credential": {with("type", "authorized_user"), "service account"},
		"no project":      {without("project_id"), "project_id"},
		"no key":          {without("private_key"), "private_key"},
		"no email":        {without("client_email"), "client_email"},
		"no token uri":    {without("token_uri"), "token_uri"},
		"broken key":      {with("private_key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), "private_key"},
	}
	for name, c := range cases {
		if _, err := NewFCM(c.json, "", nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want one naming %q", name, err, c.want)
		}
	}
	if _, err := NewFCM(good, "", nil); err != nil {
		t.Errorf("good file: %v", err)
	}
}

// errAny in a wanted Result means "some error".
var errAny = errors.New("any error")

func checkResult(t *testing.T, got, want Result) {
	t.Helper()
	if got.Remove != want.Remove || got.Retry != want.Retry || got.RetryAfter != want.RetryAfter || (got.Err != nil) != (want.Err != nil) {
		t.Errorf("Result %+v, want %+v", got, want)
	}
}

func TestFCMTokenRefused(t *testing.T) {
	for _, c := range []struct {
		status int
		retry  bool
	}{{400, false}, {401, false}, {503, true}} {
		tokens := httptest.NewServer(answer(c.status, nil, `{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`))
		fcm, sends := fakeFCM(t, answer(200, nil, `{}`))
		f, err := NewFCM(serviceAccountJSON(t, testRSAKey(t), tokens.URL+"/token"), fcm.URL+"/v1", nil)
		if err != nil {
			t.Fatal(err)
		}
		r := f.Send(context.Background(), Target{Kind: KindFCM, Token: testFCMTok}, testMessage())
		if r.Retry != c.retry || r.Remove || r.Err == nil {
			t.Errorf("token server %d: %+v, want Retry %v and an error", c.status, r, c.retry)
		}
		if sends.Load() != 0 {
			t.Errorf("token server %d: sent without a token", c.status)
		}
		tokens.Close()
	}
}

func TestFCMConcurrentSends(t *testing.T) {
	f, grants, sends := newTestFCM(t, answer(200, nil, `{}`))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if r := f.Send(context.Background(), Target{Kind: KindFCM, Token: testFCMTok}, testMessage()); r != (Result{}) {
				t.Errorf("Send: %+v", r)
			}
		})
	}
	wg.Wait()
	if sends.Load() != 8 || grants.Load() != 1 {
		t.Errorf("sends %d, grants %d; want 8, 1", sends.Load(), grants.Load())
	}
}

func TestFCMCancelledContext(t *testing.T) {
	f, grants, sends := newTestFCM(t, answer(200, nil, `{}`))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if r := f.Send(ctx, Target{Kind: KindFCM, Token: testFCMTok}, testMessage()); !r.Retry || !errors.Is(r.Err, context.Canceled) {
		t.Errorf("Send: %+v, want Retry with context.Canceled", r)
	}
	if sends.Load() != 0 || grants.Load() != 0 {
		t.Errorf("sends %d, grants %d; want none", sends.Load(), grants.Load())
	}
}
