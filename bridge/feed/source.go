// Package feed fetches the route-data feed (Cortex) over HTTP or from a
// file, and simulates one for the demo: the RouteSources bridge.Depot.Sync
// polls. The rules that judge a feed document (bridge.ParseSnapshots) and
// the feed's health stay in bridge.
package feed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/depotcc/depot/bridge"
)

// MaxFeedBytes bounds one feed document.
const MaxFeedBytes = 8 << 20

// NewSource returns the source for a --cortex-url: http(s):// or file://.
// Its errors never quote the URL's secrets.
func NewSource(raw string) (bridge.RouteSource, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("cortex url: not a valid URL") // the parser's message quotes it whole
	}
	switch u.Scheme {
	case "http", "https":
		return &HTTPSource{URL: raw, Client: &http.Client{Timeout: bridge.FeedTimeout}}, nil
	case "file":
		p := u.Path
		if u.Host != "" && u.Host != "localhost" {
			p = u.Host + u.Path // file://relative/path
		}
		return FileSource(p), nil
	}
	return nil, fmt.Errorf("cortex url %q: scheme must be http, https or file", RedactURL(raw))
}

// Redacted is what RedactURL shows instead of a secret.
const Redacted = "REDACTED"

// secretParam reports whether a query parameter's name looks like it
// carries a credential (api_key, token, password, signature, …).
func secretParam(name string) bool {
	n := strings.ToLower(name)
	for _, w := range []string{"key", "token", "pass", "pwd", "secret", "sig", "auth", "cred", "session", "jwt"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// RedactURL returns raw fit to be shown (health, heartbeat, logs, errors):
// the userinfo's password and the values of query parameters that look
// like credentials become REDACTED.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), Redacted)
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k, vs := range q {
			if secretParam(k) {
				for i := range vs {
					vs[i] = Redacted
				}
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// urlSecrets lists the secret parts of raw as they may appear in a
// message: the password and the secret query values, plain and escaped.
func urlSecrets(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil {
		return nil
	}
	var out []string
	if p, ok := u.User.Password(); ok && p != "" {
		out = append(out, p, url.QueryEscape(p), url.PathEscape(p))
	}
	for k, vs := range u.Query() {
		if secretParam(k) {
			for _, v := range vs {
				if v != "" {
					out = append(out, v, url.QueryEscape(v))
				}
			}
		}
	}
	return out
}

// HTTPSource GETs the feed JSON.
type HTTPSource struct {
	URL    string
	Client *http.Client
	// Header is sent with every request: the feed's credentials when they
	// come from a file rather than the URL.
	Header http.Header
}

func (s *HTTPSource) String() string { return RedactURL(s.URL) }

// scrub makes err's message safe to show: an http.Client error quotes the
// request URL, query and all.
func (s *HTTPSource) scrub(err error) error {
	msg := strings.ReplaceAll(err.Error(), s.URL, RedactURL(s.URL))
	for _, x := range urlSecrets(s.URL) {
		msg = strings.ReplaceAll(msg, x, Redacted)
	}
	for _, vs := range s.Header {
		for _, v := range vs {
			if v != "" {
				msg = strings.ReplaceAll(msg, v, Redacted)
			}
		}
	}
	return fmt.Errorf("%w: %s", bridge.ErrFeed, msg)
}

// Fetch implements bridge.RouteSource.
func (s *HTTPSource) Fetch(ctx context.Context) ([]bridge.RouteSnapshot, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	if err != nil {
		return nil, s.scrub(err)
	}
	for k, vs := range s.Header {
		req.Header[k] = vs
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.Client.Do(req)
	if err != nil {
		return nil, s.scrub(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: HTTP %s", bridge.ErrFeed, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxFeedBytes+1))
	if err != nil {
		return nil, s.scrub(fmt.Errorf("read: %w", err))
	}
	if len(data) > MaxFeedBytes {
		return nil, fmt.Errorf("%w: document over %d bytes", bridge.ErrFeed, MaxFeedBytes)
	}
	return bridge.ParseSnapshots(data)
}

// FileSource reads the feed JSON from disk on every fetch.
type FileSource string

func (s FileSource) String() string { return "file://" + string(s) }

// Fetch implements bridge.RouteSource.
func (s FileSource) Fetch(ctx context.Context) ([]bridge.RouteSnapshot, error) {
	f, err := os.Open(string(s))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", bridge.ErrFeed, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFeedBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read: %v", bridge.ErrFeed, err)
	}
	if len(data) > MaxFeedBytes {
		return nil, fmt.Errorf("%w: document over %d bytes", bridge.ErrFeed, MaxFeedBytes)
	}
	return bridge.ParseSnapshots(data)
}
