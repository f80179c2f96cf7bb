package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// RouteSource is the route-data feed: one call returns the current plan and
// progress of every route.
type RouteSource interface {
	Fetch(ctx context.Context) ([]RouteSnapshot, error)
	String() string
}

// Limits on one feed fetch.
const (
	FeedTimeout  = 10 * time.Second
	maxFeedBytes = 8 << 20
	// MaxFeedRoutes bounds one feed document (a depot has 25–35 routes;
	// the benchmark's feeds have one per simulated handheld).
	MaxFeedRoutes = 5000
)

// ErrFeed wraps every feed failure: unreachable, slow, or malformed.
var ErrFeed = errors.New("route feed")

// ParseSnapshots decodes and checks a feed document (docs/design.md §2). It
// refuses the whole document when any entry is invalid, so a half-broken
// feed never replaces a good state.
func ParseSnapshots(data []byte) ([]RouteSnapshot, error) {
	var snaps []RouteSnapshot
	if err := json.Unmarshal(data, &snaps); err != nil {
		return nil, fmt.Errorf("%w: malformed JSON: %v", ErrFeed, err)
	}
	if len(snaps) > MaxFeedRoutes {
		return nil, fmt.Errorf("%w: %d routes, limit %d", ErrFeed, len(snaps), MaxFeedRoutes)
	}
	seen := make(map[string]bool, len(snaps))
	for i, s := range snaps {
		bad := func(what string) error {
			return fmt.Errorf("%w: route %d (%q): %s", ErrFeed, i, s.RouteID, what)
		}
		switch {
		case !ValidID(s.RouteID):
			return nil, bad("invalid routeId")
		case seen[s.RouteID]:
			return nil, bad("duplicate routeId")
		case s.DriverID != "" && !ValidID(s.DriverID):
			return nil, bad("invalid driverId")
		case s.TotalStops < 0 || s.CompletedStops < 0 || s.CompletedStops > s.TotalStops:
			return nil, bad("stops out of range")
		case s.TotalPackages < 0 || s.CompletedPackages < 0 || s.CompletedPackages > s.TotalPackages:
			return nil, bad("packages out of range")
		case s.BehindSchedule < 0 || s.BehindSchedule > s.TotalStops:
			return nil, bad("behindSchedule out of range")
		case s.CurrentLat < -90 || s.CurrentLat > 90 || s.CurrentLng < -180 || s.CurrentLng > 180:
			return nil, bad("position out of range")
		case len(s.RouteCode) > 64 || len(s.DriverName) > 128 || len(s.PerformanceTier) > 32:
			return nil, bad("text field too long")
		}
		seen[s.RouteID] = true
	}
	return snaps, nil
}

// NewSource returns the source for a --cortex-url: http(s):// or file://.
// Its errors never quote the URL's secrets.
func NewSource(raw string) (RouteSource, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("cortex url: not a valid URL") // the parser's message quotes it whole
	}
	switch u.Scheme {
	case "http", "https":
		return &HTTPSource{URL: raw, Client: &http.Client{Timeout: FeedTimeout}}, nil
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
	return fmt.Errorf("%w: %s", ErrFeed, msg)
}

// Fetch implements RouteSource.
func (s *HTTPSource) Fetch(ctx context.Context) ([]RouteSnapshot, error) {
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
		return nil, fmt.Errorf("%w: HTTP %s", ErrFeed, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxFeedBytes+1))
	if err != nil {
		return nil, s.scrub(fmt.Errorf("read: %w", err))
	}
	if len(data) > maxFeedBytes {
		return nil, fmt.Errorf("%w: document over %d bytes", ErrFeed, maxFeedBytes)
	}
	return ParseSnapshots(data)
}

// FileSource reads the feed JSON from disk on every fetch.
type FileSource string

func (s FileSource) String() string { return "file://" + string(s) }

// Fetch implements RouteSource.
func (s FileSource) Fetch(ctx context.Context) ([]RouteSnapshot, error) {
	f, err := os.Open(string(s))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFeed, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFeedBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read: %v", ErrFeed, err)
	}
	if len(data) > maxFeedBytes {
		return nil, fmt.Errorf("%w: document over %d bytes", ErrFeed, maxFeedBytes)
	}
	return ParseSnapshots(data)
}

// Sync polls src every interval until ctx ends, applying each good cycle to
// the depot and recording the feed's health. The first cycle runs one
// interval from now (run SyncOnce before for one at once). A failed cycle
// keeps the last good state; the next cycle retries.
func (d *Depot) Sync(ctx context.Context, src RouteSource, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.SyncOnce(ctx, src)
	}
}

// SyncOnce runs one feed cycle.
func (d *Depot) SyncOnce(ctx context.Context, src RouteSource) error {
	h := d.Feed()
	h.Source = src.String()
	h.LastAttempt = d.Now().UTC()
	start := time.Now()
	fctx, cancel := context.WithTimeout(ctx, FeedTimeout)
	snaps, err := src.Fetch(fctx)
	cancel()
	if err == nil {
		_, err = d.ApplySnapshots(snaps)
	}
	if d.Metrics != nil {
		d.Metrics.FeedCycle(time.Since(start), err)
	}
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		if h.OK || h.Error != err.Error() {
			d.Log.Warn("route feed cycle failed; keeping last good state", "source", h.Source, "err", err)
		}
		h.OK, h.Error = false, err.Error()
	} else {
		if !h.OK && h.Error != "" {
			d.Log.Info("route feed recovered", "source", h.Source)
		}
		h.OK, h.Error, h.LastSuccess, h.Routes = true, "", h.LastAttempt, len(snaps)
	}
	d.SetFeedHealth(h)
	return err
}
