package push

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"
)

// VAPID is the depot's application server key pair (RFC 8292), in
// base64url without padding: the public key as the browser's
// pushManager.subscribe wants it for applicationServerKey (65-byte
// uncompressed P-256 point), the private key as its 32-byte scalar.
type VAPID struct {
	PublicKey  string `json:"publicKey"`
	PrivateKey string `json:"privateKey"`
}

const vapidFile = "vapid.json"

// LoadOrCreateVAPID reads dir/vapid.json, or makes a new key pair and
// writes it there (mode 0600) on first start. Every browser subscription
// is bound to the public key, so a file that exists but cannot be read is
// an error, never a reason to make new keys: that would silently cut off
// every subscribed handheld.
func LoadOrCreateVAPID(dir string) (VAPID, error) {
	v, err := ReadVAPID(dir)
	if !errors.Is(err, os.ErrNotExist) {
		return v, err
	}

	key, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return VAPID{}, fmt.Errorf("vapid: %w", err)
	}
	v = VAPID{
		PublicKey:  base64.RawURLEncoding.EncodeToString(key.PublicKey().Bytes()),
		PrivateKey: base64.RawURLEncoding.EncodeToString(key.Bytes()),
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	if err := writeFileAtomic(dir, vapidFile, append(b, '\n')); err != nil {
		return VAPID{}, fmt.Errorf("vapid: %w", err)
	}
	return v, nil
}

// ReadVAPID reads and checks dir/vapid.json without ever making keys
// (depot doctor): an error wrapping os.ErrNotExist when there is none.
func ReadVAPID(dir string) (VAPID, error) {
	path := filepath.Join(dir, vapidFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return VAPID{}, fmt.Errorf("vapid: %w", err)
	}
	var v VAPID
	if err := json.Unmarshal(b, &v); err != nil {
		return VAPID{}, fmt.Errorf("vapid: %s: %w", path, err)
	}
	if err := v.check(); err != nil {
		return VAPID{}, fmt.Errorf("vapid: %s: %w", path, err)
	}
	return v, nil
}

// check makes sure the private key is a P-256 scalar and the public key
// is its own, so that a hand-edited file fails at start, not in browsers.
func (v VAPID) check() error {
	d, err := decodeB64URL(v.PrivateKey)
	if err != nil {
		return fmt.Errorf("privateKey: %w", err)
	}
	priv, err := ecdh.P256().NewPrivateKey(d)
	if err != nil {
		return fmt.Errorf("privateKey: %w", err)
	}
	pub, err := decodeB64URL(v.PublicKey)
	if err != nil {
		return fmt.Errorf("publicKey: %w", err)
	}
	if string(pub) != string(priv.PublicKey().Bytes()) {
		return errors.New("publicKey does not belong to privateKey")
	}
	return nil
}

// writeFileAtomic writes through a temporary file in the same directory
// and renames it, so that a crash never leaves half a key file behind.
func writeFileAtomic(dir, name string, b []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, name+".tmp*") // CreateTemp makes it 0600
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}

// WebPush sends encrypted pushes (RFC 8291, aes128gcm) with VAPID
// (RFC 8292). Safe for concurrent use.
type WebPush struct {
	vapid      VAPID
	subscriber string // for webpush-go: without "mailto:" (see NewWebPush)
	hc         *http.Client
	now        func() time.Time
}

var _ Sender = (*WebPush)(nil)

// NewWebPush sends with the key pair v. subscriber is the contact the push
// services may write to about our traffic: "mailto:ops@…", a bare e-mail
// address or an https URL. nil hc means a client with a 15 s timeout.
func NewWebPush(v VAPID, subscriber string, hc *http.Client) *WebPush {
	// webpush-go v1.4.0 puts "mailto:" before anything that is not an
	// https URL, so it must get the address without one.
	subscriber = strings.TrimPrefix(subscriber, "mailto:")
	return &WebPush{vapid: v, subscriber: subscriber, hc: clientOrDefault(hc), now: time.Now}
}

// The payload the driver web app's service worker reads.
type webPushPayload struct {
	ID      string            `json:"id"`
	Title   string            `json:"title"`
	Body    string            `json:"body"`
	Data    map[string]string `json:"data"`
	Expires time.Time         `json:"expires,omitzero"`
}

// noExpiryTTL is the TTL for a message without Expires: four weeks, as long
// as FCM keeps one by default.
const noExpiryTTL = 28 * 24 * 60 * 60

// Send delivers m to the browser subscription t.Subscription.
func (w *WebPush) Send(ctx context.Context, t Target, m Message) Result {
	if t.Subscription == nil {
		return Result{Err: errors.New("webpush: target has no subscription")}
	}
	if err := t.Subscription.validate(); err != nil {
		return Result{Err: err}
	}
	now := w.now()
	ttl, ok := ttlLeft(m.Expires, now)
	if !ok {
		return Result{Err: errExpired}
	}
	if ttl < 0 {
		ttl = noExpiryTTL
	}
	data := m.Data
	if data == nil {
		data = map[string]string{} // the service worker can read data.x without a check
	}
	payload, err := json.Marshal(webPushPayload{ID: m.ID, Title: m.Title, Body: m.Body, Data: data, Expires: m.Expires})
	if err != nil {
		return Result{Err: fmt.Errorf("webpush: %w", err)}
	}

	// Only an error from the HTTP round trip is a network failure worth a
	// retry; webpush-go's other errors (keys, payload too big) will recur.
	d := &doer{hc: w.hc}
	resp, err := webpush.SendNotificationWithContext(ctx, payload, &webpush.Subscription{
		Endpoint: t.Subscription.Endpoint,
		Keys:     webpush.Keys{P256dh: t.Subscription.Keys.P256dh, Auth: t.Subscription.Keys.Auth},
	}, &webpush.Options{
		HTTPClient:      d,
		Subscriber:      w.subscriber,
		Topic:           webPushTopic(m.CollapseKey),
		TTL:             int(ttl),
		Urgency:         webpush.UrgencyHigh,
		VAPIDPublicKey:  w.vapid.PublicKey,
		VAPIDPrivateKey: w.vapid.PrivateKey,
	})
	if err != nil {
		return Result{Retry: d.called, Err: fmt.Errorf("webpush: %w", noURL(err))}
	}
	defer resp.Body.Close()
	answer := readBody(resp)
	switch code := resp.StatusCode; {
	case code/100 == 2:
		return Result{}
	case code == http.StatusNotFound || code == http.StatusGone:
		// RFC 8030 §7.3: the subscription expired or was unsubscribed.
		return Result{Remove: true, Err: fmt.Errorf("webpush: %d: subscription gone", code)}
	case retryable(code):
		return Result{Retry: true, RetryAfter: retryAfter(resp.Header, now), Err: fmt.Errorf("webpush: %d: %s", code, snippet(answer))}
	default:
		return Result{Err: fmt.Errorf("webpush: %d: %s", code, snippet(answer))}
	}
}

// doer hands webpush-go our client and notes whether the request went out.
type doer struct {
	hc     *http.Client
	called bool
}

func (d *doer) Do(r *http.Request) (*http.Response, error) {
	d.called = true
	return d.hc.Do(r)
}

// webPushTopic makes a Topic header (RFC 8030 §5.4) from a collapse key:
// at most 32 characters of the base64url alphabet. A key that does not fit
// is hashed, which keeps "same key, same topic".
func webPushTopic(key string) string {
	if key == "" {
		return ""
	}
	if len(key) <= 32 && strings.Trim(key, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == "" {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:32]
}
