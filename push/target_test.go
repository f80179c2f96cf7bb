package push

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func webTarget(endpoint, p256dh, auth string) Target {
	s := &Subscription{Endpoint: endpoint}
	s.Keys.P256dh, s.Keys.Auth = p256dh, auth
	return Target{Kind: KindWebPush, Subscription: s}
}

func TestTargetValidate(t *testing.T) {
	key, _ := ecdh.P256().GenerateKey(rand.Reader)
	pub := key.PublicKey().Bytes()
	p256dh := base64.RawURLEncoding.EncodeToString(pub)
	auth := base64.RawURLEncoding.EncodeToString(make([]byte, 16))
	ep := "https://fcm.googleapis.com/fcm/send/abc:def"

	offCurve := append([]byte(nil), pub...)
	offCurve[64] ^= 1

	good := []Target{
		{Kind: KindFCM, Token: "cX1:APA91b_driver-1"},
		{Kind: KindFCM, Token: strings.Repeat("a", 4096)},
		webTarget(ep, p256dh, auth),
		webTarget(ep, base64.URLEncoding.EncodeToString(pub), base64.URLEncoding.EncodeToString(make([]byte, 16))), // padded
		webTarget("http://127.0.0.1:8080/push/1", p256dh, auth),
		webTarget("http://localhost/push/1", p256dh, auth),
	}
	for _, tg := range good {
		if err := tg.Validate(); err != nil {
			t.Errorf("%+v: %v", tg, err)
		}
	}
	bad := map[string]Target{
		"no kind":           {Token: "cX1:APA91b_driver-1"},
		"empty token":       {Kind: KindFCM},
		"long token":        {Kind: KindFCM, Token: strings.Repeat("a", 4097)},
		"token with space":  {Kind: KindFCM, Token: "abc def"},
		"token with ctl":    {Kind: KindFCM, Token: "abc\ndef"},
		"token not ascii":   {Kind: KindFCM, Token: "abcé"},
		"no subscription":   {Kind: KindWebPush},
		"plain http":        webTarget("http://push.example.com/1", p256dh, auth),
		"relative":          webTarget("/push/1", p256dh, auth),
		"userinfo":          webTarget("https://u:p@push.example.com/1", p256dh, auth),
		"long endpoint":     webTarget("https://push.example.com/"+strings.Repeat("a", 2048), p256dh, auth),
		"p256dh compressed": webTarget(ep, base64.RawURLEncoding.EncodeToString(append([]byte{2}, pub[1:33]...)), auth),
		"p256dh off curve":  webTarget(ep, base64.RawURLEncoding.EncodeToString(offCurve), auth),
		"p256dh std b64":    webTarget(ep, strings.Repeat("+", 87), auth),
		"auth short":        webTarget(ep, p256dh, base64.RawURLEncoding.EncodeToString(make([]byte, 15))),
		"auth missing":      webTarget(ep, p256dh, ""),
	}
	for name, tg := range bad {
		if err := tg.Validate(); err == nil {
			t.Errorf("%s: valid, want an error", name)
		}
	}
}

func TestTargetID(t *testing.T) {
	a := TargetID(Target{Kind: KindFCM, Token: "tok"})
	if len(a) != 32 || strings.Trim(a, "0123456789abcdef") != "" {
		t.Fatalf("TargetID %q: want 32 hex digits", a)
	}
	if b := TargetID(Target{Kind: KindFCM, Token: "tok", DriverID: "d2", Created: time.Now()}); b != a {
		t.Errorf("id depends on more than kind and token: %q vs %q", a, b)
	}
	if b := TargetID(Target{Kind: KindFCM, Token: "tok2"}); b == a {
		t.Error("two tokens, one id")
	}
	w1 := TargetID(webTarget("https://push.example.com/1", "x", "y"))
	if w1 != TargetID(webTarget("https://push.example.com/1", "other", "keys")) {
		t.Error("webpush id depends on the keys, not only the endpoint")
	}
	if w1 == TargetID(webTarget("https://push.example.com/2", "x", "y")) {
		t.Error("two endpoints, one id")
	}
	if TargetID(Target{Kind: KindWebPush, Token: "https://push.example.com/1"}) == TargetID(Target{Kind: KindFCM, Token: "https://push.example.com/1"}) {
		t.Error("kind is not part of the id")
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"7":                             7 * time.Second,
		" 120 ":                         2 * time.Minute,
		"-3":                            0,
		"soon":                          0,
		"Sun, 01 Mar 2026 12:00:30 GMT": 30 * time.Second,
		"Sun, 01 Mar 2026 11:00:00 GMT": 0, // in the past
	} {
		h := http.Header{}
		if v != "" {
			h.Set("Retry-After", v)
		}
		if got := retryAfter(h, now); got != want {
			t.Errorf("Retry-After %q: %v, want %v", v, got, want)
		}
	}
}

func TestTTLLeft(t *testing.T) {
	now := time.Now()
	if s, ok := ttlLeft(now.Add(1799*time.Second+900*time.Millisecond), now); !ok || s != 1799 {
		t.Errorf("29:59.9 left: %d %v, want 1799 true", s, ok)
	}
	if s, ok := ttlLeft(now.Add(300*time.Millisecond), now); !ok || s != 0 {
		t.Errorf("0.3 s left: %d %v, want 0 true", s, ok)
	}
	if _, ok := ttlLeft(now, now); ok {
		t.Error("expiring now: sendable")
	}
	if s, ok := ttlLeft(time.Time{}, now); !ok || s >= 0 {
		t.Errorf("no expiry: %d %v, want negative true", s, ok)
	}
}

// FuzzTargetValidate: whatever a handheld registers, Validate answers
// without panicking, and what it accepts is bounded and well-formed.
func FuzzTargetValidate(f *testing.F) {
	f.Add([]byte(`{"kind":"fcm","token":"abc:DEF-123"}`))
	f.Add([]byte(`{"kind":"webpush","subscription":{"endpoint":"https://push.example/x","expirationTime":null,"keys":{"p256dh":"BCCl5R15vm39L8K7vKCthqfwGzve6FnH1GViiolwwq1iLpIxnZapNRj8JYt3rDLZI9Dya0M1mEf-WNR0cyj5IWg","auth":"AAAAAAAAAAAAAAAAAAAAAA"}}}`))
	f.Add([]byte(`{"kind":"webpush","subscription":{"endpoint":"javascript:alert(1)"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var tg Target
		if json.Unmarshal(b, &tg) != nil {
			return
		}
		if err := tg.Validate(); err != nil {
			return
		}
		if len(TargetID(tg)) != 32 {
			t.Fatalf("id %q", TargetID(tg))
		}
		switch tg.Kind {
		case KindFCM:
			if len(tg.Token) == 0 || len(tg.Token) > 4096 {
				t.Fatalf("accepted token of %d bytes", len(tg.Token))
			}
		case KindWebPush:
			u, err := url.Parse(tg.Subscription.Endpoint)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || len(tg.Subscription.Endpoint) > 2048 {
				t.Fatalf("accepted endpoint %q", tg.Subscription.Endpoint)
			}
		default:
			t.Fatalf("accepted kind %q", tg.Kind)
		}
	})
}

// TestEndpointNotLocal: in the product, a handheld cannot name an address
// of the box or its network as its push service (the depot would POST
// there), nor plain http.
func TestEndpointNotLocal(t *testing.T) {
	allowLocalHTTP = false
	defer func() { allowLocalHTTP = true }()
	b := newBrowser(t, "https://push.example/x")
	for _, ep := range []string{"http://127.0.0.1:9/x", "https://127.0.0.1/x", "https://10.1.2.3/x", "https://192.168.1.1/x",
		"https://[::1]/x", "https://169.254.169.254/latest", "http://push.example/x", "https://localhost/x"} {
		tg := b.target
		sub := *tg.Subscription
		sub.Endpoint = ep
		tg.Subscription = &sub
		if err := tg.Validate(); err == nil {
			t.Errorf("%s accepted", ep)
		}
	}
	if err := b.target.Validate(); err != nil {
		t.Errorf("a push service on the internet refused: %v", err)
	}
}
