package push

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

// fcmScope is the one OAuth2 scope sending needs.
const fcmScope = "https://www.googleapis.com/auth/firebase.messaging"

// DefaultFCMEndpoint is FCM's HTTP v1 API.
const DefaultFCMEndpoint = "https://fcm.googleapis.com/v1"

// FCM sends through Firebase Cloud Messaging's HTTP v1 API with a service
// account's credentials. Safe for concurrent use.
type FCM struct {
	project string
	sendURL string
	hc      *http.Client
	tokens  oauth2.TokenSource // caches the access token until near expiry
	now     func() time.Time
}

// NewFCM reads a service account's JSON key file. endpoint "" means FCM
// itself; another one is a proxy or a test double. hc carries both the
// token and the send requests; nil means a client with a 15 s timeout.
func NewFCM(credentialsJSON []byte, endpoint string, hc *http.Client) (*FCM, error) {
	var f struct {
		Type        string `json:"type"`
		ProjectID   string `json:"project_id"`
		PrivateKey  string `json:"private_key"`
		ClientEmail string `json:"client_email"`
		TokenURI    string `json:"token_uri"`
	}
	if err := json.Unmarshal(credentialsJSON, &f); err != nil {
		return nil, fmt.Errorf("fcm credentials: not a JSON key file: %w", err)
	}
	if f.Type != "service_account" {
		return nil, fmt.Errorf("fcm credentials: type is %q, want a service account key (\"service_account\")", f.Type)
	}
	var missing []string
	for _, kv := range [][2]string{{"project_id", f.ProjectID}, {"private_key", f.PrivateKey}, {"client_email", f.ClientEmail}, {"token_uri", f.TokenURI}} {
		if kv[1] == "" {
			missing = append(missing, kv[0])
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("fcm credentials: missing %s", strings.Join(missing, ", "))
	}
	// The oauth2 package parses the key only when it first needs a token;
	// a broken key should stop the start, not every push.
	if err := checkRSAKey(f.PrivateKey); err != nil {
		return nil, fmt.Errorf("fcm credentials: private_key: %w", err)
	}
	if u, err := url.Parse(f.TokenURI); err != nil || u.Host == "" {
		return nil, fmt.Errorf("fcm credentials: token_uri %q is not a URL", f.TokenURI)
	}
	conf, err := google.JWTConfigFromJSON(credentialsJSON, fcmScope)
	if err != nil {
		return nil, fmt.Errorf("fcm credentials: %w", err)
	}
	if endpoint == "" {
		endpoint = DefaultFCMEndpoint
	}
	hc = clientOrDefault(hc)
	// The token source keeps this context for every token request: it only
	// carries the client, so that tests and proxies see those requests too.
	tctx := context.WithValue(context.Background(), oauth2.HTTPClient, hc)
	return &FCM{
		project: f.ProjectID,
		sendURL: strings.TrimRight(endpoint, "/") + "/projects/" + url.PathEscape(f.ProjectID) + "/messages:send",
		hc:      hc,
		tokens:  conf.TokenSource(tctx),
		now:     time.Now,
	}, nil
}

func checkRSAKey(p string) error {
	block, _ := pem.Decode([]byte(p))
	if block == nil {
		return errors.New("not PEM")
	}
	if _, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		return nil
	}
	if _, err := x509.ParsePKCS1PrivateKey(block.Bytes); err != nil {
		return errors.New("not a PKCS#8 or PKCS#1 private key")
	}
	return nil
}

var _ Sender = (*FCM)(nil)

// CheckToken asks the credentials' token_uri for an access token (depot
// doctor): it proves the service account's key is accepted. The client
// given to NewFCM bounds how long it waits.
func (f *FCM) CheckToken() error {
	_, err := f.tokens.Token()
	return err
}

// Project is the Firebase project the credentials belong to.
func (f *FCM) Project() string { return f.project }

// The HTTP v1 request body, only the fields we set.
type fcmRequest struct {
	Message fcmMessage `json:"message"`
}

type fcmMessage struct {
	Token        string            `json:"token"`
	Data         map[string]string `json:"data,omitempty"`
	Notification *fcmNotification  `json:"notification,omitempty"`
	Android      fcmAndroid        `json:"android"`
	APNS         *fcmAPNS          `json:"apns,omitempty"`
}

// fcmAPNS is what FCM passes on to Apple for an iPhone: without it an
// offer's push would live Apple's default of weeks and stack.
type fcmAPNS struct {
	Headers map[string]string `json:"headers"`
}

type fcmNotification struct {
	Title string `json:"title,omitempty"`
	Body  string `json:"body,omitempty"`
}

type fcmAndroid struct {
	Priority     string               `json:"priority"`
	TTL          string               `json:"ttl,omitempty"`
	CollapseKey  string               `json:"collapse_key,omitempty"`
	Notification *fcmAndroidNotifying `json:"notification,omitempty"`
}

// fcmAndroidNotifying's tag makes a newer notification of the same offer
// or rescue replace the one on screen instead of stacking under it.
type fcmAndroidNotifying struct {
	Tag string `json:"tag"`
}

// fcmError is Google's error answer (google.rpc.Status), with the details
// that tell a dead token from other failures.
type fcmError struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
		Details []struct {
			ErrorCode       string `json:"errorCode"`
			FieldViolations []struct {
				Field string `json:"field"`
			} `json:"fieldViolations"`
		} `json:"details"`
	} `json:"error"`
}

// Send delivers m to the registration token t.Token.
func (f *FCM) Send(ctx context.Context, t Target, m Message) Result {
	if err := validToken(t.Token); err != nil {
		return Result{Err: err}
	}
	ttl, ok := ttlLeft(m.Expires, f.now())
	if !ok {
		return Result{Err: errExpired}
	}
	msg := fcmMessage{
		Token: t.Token,
		Data:  m.Data,
		// High priority wakes a dozing phone: an offer waits for no one.
		Android: fcmAndroid{Priority: "high", CollapseKey: m.CollapseKey},
	}
	if m.ID != "" && m.Data["id"] == "" {
		// The app tells a push from the same event on MQTT by this id.
		msg.Data = make(map[string]string, len(m.Data)+1)
		for k, v := range m.Data {
			msg.Data[k] = v
		}
		msg.Data["id"] = m.ID
	}
	if m.Title != "" || m.Body != "" {
		msg.Notification = &fcmNotification{Title: m.Title, Body: m.Body}
	}
	if ttl >= 0 {
		msg.Android.TTL = fmt.Sprintf("%ds", ttl)
	}
	if m.CollapseKey != "" {
		msg.Android.Notification = &fcmAndroidNotifying{Tag: m.CollapseKey}
		h := map[string]string{"apns-priority": "10", "apns-collapse-id": clipBytes(m.CollapseKey, 64)}
		if !m.Expires.IsZero() {
			h["apns-expiration"] = strconv.FormatInt(m.Expires.Unix(), 10)
		}
		msg.APNS = &fcmAPNS{Headers: h}
	}
	body, err := json.Marshal(fcmRequest{Message: msg})
	if err != nil {
		return Result{Err: fmt.Errorf("fcm: %w", err)}
	}

	// The token source does not take ctx (it fetches with the client alone,
	// bounded by its timeout), so a caller that has given up stops here.
	if err := ctx.Err(); err != nil {
		return Result{Retry: true, Err: fmt.Errorf("fcm: %w", err)}
	}
	tok, err := f.tokens.Token()
	if err != nil {
		// The token server refusing the grant (bad key, disabled account)
		// will refuse again; anything else (network, 5xx) may pass.
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && !retryable(re.Response.StatusCode) {
			return Result{Err: fmt.Errorf("fcm: access token: %w", err)}
		}
		return Result{Retry: true, Err: fmt.Errorf("fcm: access token: %w", err)}
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.sendURL, bytes.NewReader(body))
	if err != nil {
		return Result{Err: fmt.Errorf("fcm: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	tok.SetAuthHeader(req)
	resp, err := f.hc.Do(req)
	if err != nil {
		return Result{Retry: true, Err: fmt.Errorf("fcm: %w", noURL(err))}
	}
	defer resp.Body.Close()
	answer := readBody(resp)
	if resp.StatusCode/100 == 2 {
		return Result{}
	}
	return fcmFailure(resp, answer, f.now())
}

// fcmFailure sorts a non-2xx answer into Remove, Retry or Err.
func fcmFailure(resp *http.Response, answer []byte, now time.Time) Result {
	var e fcmError
	_ = json.Unmarshal(answer, &e) // a proxy's HTML error page is just not understood
	err := fmt.Errorf("fcm: %d %s: %s", resp.StatusCode, e.Error.Status, e.Error.Message)
	if e.Error.Status == "" && e.Error.Message == "" {
		err = fmt.Errorf("fcm: %d: %s", resp.StatusCode, snippet(answer))
	}
	if retryable(resp.StatusCode) {
		return Result{Retry: true, RetryAfter: retryAfter(resp.Header, now), Err: err}
	}
	// Only an answer that names the token as dead removes the target: a bare
	// 404 may come from a wrong endpoint or project, and must not wipe every
	// target.
	var unregistered, badToken bool
	for _, d := range e.Error.Details {
		unregistered = unregistered || d.ErrorCode == "UNREGISTERED"
		for _, v := range d.FieldViolations {
			badToken = badToken || v.Field == "message.token"
		}
	}
	msg := strings.ToLower(e.Error.Message)
	if strings.Contains(msg, "registration token") && strings.Contains(msg, "not a valid") {
		badToken = true
	}
	if unregistered || (resp.StatusCode == http.StatusBadRequest && e.Error.Status == "INVALID_ARGUMENT" && badToken) {
		return Result{Remove: true, Err: err}
	}
	return Result{Err: err}
}

// clipBytes cuts s to at most n bytes (apns-collapse-id's limit).
func clipBytes(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
