package push

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// errExpired: the message's Expires has passed, so it is not sent at all; a
// late offer on a phone is worse than none.
var errExpired = errors.New("push: message expired before it was sent")

// sendTimeout bounds one request (token or push) when the caller gives no
// client: a stuck push service must not hold the outbox.
const sendTimeout = 15 * time.Second

func clientOrDefault(hc *http.Client) *http.Client {
	if hc != nil {
		return hc
	}
	return &http.Client{Timeout: sendTimeout}
}

// ttlLeft is the whole seconds left until exp, rounded down so that the
// service never holds a message past its expiry. ok is false once expired.
// A zero exp means the message carries no expiry.
func ttlLeft(exp, now time.Time) (secs int64, ok bool) {
	if exp.IsZero() {
		return -1, true
	}
	if !now.Before(exp) {
		return 0, false
	}
	return int64(exp.Sub(now) / time.Second), true
}

// retryAfter reads a Retry-After header: delay-seconds or an HTTP date
// (RFC 9110 §10.2.3). Zero when absent or unreadable.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// retryable reports whether an HTTP status is a passing failure: the
// service is overloaded (429) or broken for now (5xx).
func retryable(status int) bool {
	return status == http.StatusTooManyRequests || status >= 500
}

// readBody reads at most 64 KiB of an answer: error bodies are small, and a
// misbehaving proxy must not make us buffer an unbounded one.
func readBody(resp *http.Response) []byte {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return b
}

// snippet shortens an answer's body for an error message.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// noURL drops the URL from a transport error: a Web Push endpoint holds
// the browser's push token, which must reach no log and no admin's view.
func noURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}
