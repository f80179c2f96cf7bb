package push

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const testSubscriber = "mailto:ops@depot.example"

// browser is a subscribed browser: its key pair and auth secret (what
// PushSubscription keeps), and the push service it subscribed with.
type browser struct {
	key    *ecdh.PrivateKey
	auth   []byte
	target Target
}

func newBrowser(t *testing.T, endpoint string) *browser {
	key, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	rand.Read(auth)
	return &browser{key: key, auth: auth, target: webTarget(endpoint,
		base64.RawURLEncoding.EncodeToString(key.PublicKey().Bytes()),
		base64.RawURLEncoding.EncodeToString(auth))}
}

// decrypt undoes RFC 8291 message encryption as the browser does, written
// from the RFC and not from the sender's library.
func (b *browser) decrypt(body []byte) ([]byte, error) {
	// RFC 8188 §2.1 header: salt(16) | rs(4) | idlen(1) | keyid(idlen).
	if len(body) < 21 {
		return nil, errors.New("short body")
	}
	salt, rs, idlen := body[:16], binary.BigEndian.Uint32(body[16:20]), int(body[20])
	if len(body) < 21+idlen {
		return nil, errors.New("short header")
	}
	keyid, record := body[21:21+idlen], body[21+idlen:]
	if rs < 18 || uint32(len(record)) > rs {
		return nil, fmt.Errorf("one record of %d bytes, rs %d: want a single record", len(record), rs)
	}
	// RFC 8291 §3.4: keyid is the application server's ephemeral key.
	asPub, err := ecdh.P256().NewPublicKey(keyid)
	if err != nil {
		return nil, fmt.Errorf("keyid: %w", err)
	}
	ecdhSecret, err := b.key.ECDH(asPub)
	if err != nil {
		return nil, err
	}
	// §3.3: IKM = HKDF(auth_secret, ecdh_secret, "WebPush: info" 0x00 ua_public as_public, 32)
	keyInfo := "WebPush: info\x00" + string(b.key.PublicKey().Bytes()) + string(keyid)
	ikm, err := hkdf.Key(sha256.New, ecdhSecret, b.auth, keyInfo, 32)
	if err != nil {
		return nil, err
	}
	// RFC 8188 §2.2, 2.3: CEK and NONCE from salt and IKM.
	cek, _ := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: aes128gcm\x00", 16)
	nonce, _ := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: nonce\x00", 12)
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, _ := cipher.NewGCM(block)
	plain, err := gcm.Open(nil, nonce, record, nil) // the first record: sequence number 0
	if err != nil {
		return nil, fmt.Errorf("AES-GCM: %w", err)
	}
	// The last record ends in 0x02 and then zero padding.
	end := bytes.LastIndexFunc(plain, func(r rune) bool { return r != 0 })
	if end < 0 || plain[end] != 0x02 {
		return nil, errors.New("no 0x02 padding delimiter")
	}
	return plain[:end], nil
}

// pushRequest is what the fake push service saw, once verified.
type pushRequest struct {
	payload webPushPayload
	header  http.Header
}

// fakePushService verifies each push as a push service and the browser
// would (VAPID, then decryption), records it, and answers with reply.
func fakePushService(t *testing.T, v VAPID, reply http.HandlerFunc) (srv *httptest.Server, b *browser, got chan pushRequest) {
	got = make(chan pushRequest, 10)
	var bp atomic.Pointer[browser]
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := bp.Load()
		if r.Method != http.MethodPost || r.URL.Path != "/push/sub-1" {
			t.Errorf("push service: %s %s", r.Method, r.URL.Path)
		}
		checkVAPID(t, r.Header.Get("Authorization"), "http://"+r.Host, v)
		if ce := r.Header.Get("Content-Encoding"); ce != "aes128gcm" {
			t.Errorf("push service: Content-Encoding %q", ce)
		}
		body, _ := io.ReadAll(r.Body)
		plain, err := b.decrypt(body)
		if err != nil {
			t.Errorf("push service: decrypt: %v", err)
		}
		var p webPushPayload
		dec := json.NewDecoder(bytes.NewReader(plain))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			t.Errorf("push service: payload %q: %v", plain, err)
		}
		got <- pushRequest{p, r.Header.Clone()}
		reply(w, r)
	}))
	t.Cleanup(srv.Close)
	b = newBrowser(t, srv.URL+"/push/sub-1")
	bp.Store(b)
	return srv, b, got
}

// checkVAPID verifies "vapid t=<JWT>, k=<public key>" (RFC 8292 §3).
func checkVAPID(t *testing.T, authz, origin string, v VAPID) {
	t.Helper()
	rest, ok := strings.CutPrefix(authz, "vapid ")
	if !ok {
		t.Errorf("vapid: Authorization %q", authz)
		return
	}
	params := map[string]string{}
	for _, p := range strings.Split(rest, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		params[k] = val
	}
	if params["k"] != v.PublicKey {
		t.Errorf("vapid: k=%q, want the VAPID public key %q", params["k"], v.PublicKey)
	}
	raw, err := base64.RawURLEncoding.DecodeString(params["k"])
	if err != nil {
		t.Errorf("vapid: k: %v", err)
		return
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	if err != nil {
		t.Errorf("vapid: k: %v", err)
		return
	}
	claims := jwt.MapClaims{}
	_, err = jwt.ParseWithClaims(params["t"], claims,
		func(*jwt.Token) (any, error) { return pub, nil },
		jwt.WithValidMethods([]string{"ES256"}),
		jwt.WithAudience(origin),
		jwt.WithExpirationRequired(),
	)
	if err != nil {
		t.Errorf("vapid: JWT: %v", err)
		return
	}
	if exp, _ := claims.GetExpirationTime(); exp.After(time.Now().Add(24 * time.Hour)) {
		t.Errorf("vapid: exp %v is more than 24 h ahead", exp)
	}
	if claims["sub"] != testSubscriber {
		t.Errorf("vapid: sub %v, want %q", claims["sub"], testSubscriber)
	}
}

func testVAPID(t *testing.T) VAPID {
	v, err := LoadOrCreateVAPID(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestWebPushSend(t *testing.T) {
	cases := []struct {
		name  string
		reply http.HandlerFunc
		want  Result
	}{
		{"delivered", answer(201, nil, ""), Result{}},
		{"gone", answer(410, nil, "push subscription has unsubscribed or expired"), Result{Remove: true, Err: errAny}},
		{"not found", answer(404, nil, ""), Result{Remove: true, Err: errAny}},
		{"too many", answer(429, map[string]string{"Retry-After": "7"}, ""), Result{Retry: true, RetryAfter: 7 * time.Second, Err: errAny}},
		{"server error", answer(502, nil, ""), Result{Retry: true, Err: errAny}},
		{"bad request", answer(400, nil, "bad"), Result{Err: errAny}},
		{"payload too large", answer(413, nil, ""), Result{Err: errAny}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := testVAPID(t)
			_, b, got := fakePushService(t, v, c.reply)
			m := testMessage()
			r := NewWebPush(v, testSubscriber, nil).Send(context.Background(), b.target, m)
			checkResult(t, r, c.want)
			select {
			case p := <-got:
				checkPush(t, p, m)
			default:
				t.Error("no push reached the service")
			}
		})
	}
}

func checkPush(t *testing.T, p pushRequest, m Message) {
	t.Helper()
	want := webPushPayload{ID: m.ID, Title: m.Title, Body: m.Body, Data: m.Data, Expires: m.Expires}
	if p.payload.ID != want.ID || p.payload.Title != want.Title || p.payload.Body != want.Body ||
		fmt.Sprint(p.payload.Data) != fmt.Sprint(want.Data) || !p.payload.Expires.Equal(want.Expires) {
		t.Errorf("payload %+v, want %+v", p.payload, want)
	}
	ttl, err := strconv.Atoi(p.header.Get("TTL"))
	if err != nil || ttl < 1790 || ttl > 1800 {
		t.Errorf("TTL %q, want about 1799", p.header.Get("TTL"))
	}
	if u := p.header.Get("Urgency"); u != "high" {
		t.Errorf("Urgency %q", u)
	}
	if tp := p.header.Get("Topic"); tp != webPushTopic(m.CollapseKey) {
		t.Errorf("Topic %q, want %q", tp, webPushTopic(m.CollapseKey))
	}
}

func TestWebPushLongCollapseKey(t *testing.T) {
	v := testVAPID(t)
	_, b, got := fakePushService(t, v, answer(201, nil, ""))
	m := testMessage()
	m.CollapseKey = "rescue:route-17/2026-03-01:leg-4:driver-0042" // too long, and ':' '/' are not allowed
	if r := NewWebPush(v, testSubscriber, nil).Send(context.Background(), b.target, m); r != (Result{}) {
		t.Fatalf("Send: %+v", r)
	}
	tp := (<-got).header.Get("Topic")
	if len(tp) != 32 || strings.Trim(tp, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
		t.Errorf("Topic %q: want 32 base64url characters", tp)
	}
	if webPushTopic(m.CollapseKey) != tp || webPushTopic(m.CollapseKey+"x") == tp {
		t.Error("Topic is not a function of the collapse key")
	}
	if webPushTopic("off_9") != "off_9" {
		t.Error("a key that fits is not kept as it is")
	}
}

func TestWebPushExpiredNotSent(t *testing.T) {
	v := testVAPID(t)
	_, b, got := fakePushService(t, v, answer(201, nil, ""))
	m := testMessage()
	m.Expires = time.Now().Add(-time.Minute)
	r := NewWebPush(v, testSubscriber, nil).Send(context.Background(), b.target, m)
	if !errors.Is(r.Err, errExpired) || r.Retry || r.Remove {
		t.Errorf("Send: %+v, want errExpired", r)
	}
	if len(got) != 0 {
		t.Error("an expired message was sent")
	}
}

func TestWebPushNetworkErrorRetries(t *testing.T) {
	v := testVAPID(t)
	srv, b, _ := fakePushService(t, v, answer(201, nil, ""))
	srv.Close()
	if r := NewWebPush(v, testSubscriber, nil).Send(context.Background(), b.target, testMessage()); !r.Retry || r.Err == nil {
		t.Errorf("Send to a closed port: %+v, want Retry", r)
	}
	// A payload too big for one record is our fault and never passes.
	m := testMessage()
	m.Body = strings.Repeat("x", 5000)
	if r := NewWebPush(v, testSubscriber, nil).Send(context.Background(), b.target, m); r.Retry || r.Remove || r.Err == nil {
		t.Errorf("Send of an oversized payload: %+v, want Err only", r)
	}
}

func TestLoadOrCreateVAPID(t *testing.T) {
	dir := t.TempDir()
	v1, err := LoadOrCreateVAPID(dir)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := LoadOrCreateVAPID(dir)
	if err != nil {
		t.Fatal(err)
	}
	if v1 != v2 {
		t.Errorf("second start: %+v, first: %+v", v2, v1)
	}
	fi, err := os.Stat(filepath.Join(dir, "vapid.json"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("vapid.json mode %v, want 0600", fi.Mode().Perm())
	}
	if pub, _ := base64.RawURLEncoding.DecodeString(v1.PublicKey); len(pub) != 65 || pub[0] != 4 {
		t.Errorf("public key %q is not a base64url uncompressed P-256 point", v1.PublicKey)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("data dir holds %d files, want only vapid.json", len(ents))
	}

	// A damaged file stops the start rather than being replaced.
	os.WriteFile(filepath.Join(dir, "vapid.json"), []byte(`{"publicKey":"x","privateKey":"y"}`), 0o600)
	if _, err := LoadOrCreateVAPID(dir); err == nil {
		t.Error("damaged vapid.json loaded")
	}
	other := testVAPID(t)
	b, _ := json.Marshal(VAPID{PublicKey: other.PublicKey, PrivateKey: v1.PrivateKey})
	os.WriteFile(filepath.Join(dir, "vapid.json"), b, 0o600)
	if _, err := LoadOrCreateVAPID(dir); err == nil {
		t.Error("vapid.json with keys of two pairs loaded")
	}
}
