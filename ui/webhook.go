package ui

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// The payroll webhook: the payroll system confirms that an accepted VTO was
// logged. It signs each call:
//
//	X-Payroll-Timestamp: <unix seconds>
//	X-Payroll-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>
//
// A call older or newer than webhookWindow is refused, and so is a
// signature that has already succeeded (a replay). A call that failed (an
// offer not known or not accepted yet) does not use up its signature, so
// the payroll system can retry the same call.
const webhookWindow = 5 * time.Minute

// replays remembers the signatures of the last webhookWindow: held while
// their call runs (so two copies cannot both succeed), kept when it
// succeeded, forgotten when it failed.
type replays struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func (r *replays) forget(sig string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.seen, sig)
}

func (r *replays) firstTime(sig string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[string]time.Time{}
	}
	for k, t := range r.seen {
		if now.Sub(t) > 2*webhookWindow {
			delete(r.seen, k)
		}
	}
	if _, ok := r.seen[sig]; ok {
		return false
	}
	r.seen[sig] = now
	return true
}

// SignPayroll is how the payroll system signs a call (used by tests and
// integrators' examples).
func SignPayroll(secret []byte, ts int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts, 10) + "."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (s *Server) payroll(c echo.Context) (err error) {
	if s.cfg.PayrollSecret == "" {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "payroll webhook not configured (--payroll-secret)")
	}
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, 64<<10+1))
	if err != nil || len(body) > 64<<10 {
		return echo.NewHTTPError(http.StatusBadRequest, "body: at most 64 KiB")
	}
	now := s.cfg.Now()
	ts, err := strconv.ParseInt(c.Request().Header.Get("X-Payroll-Timestamp"), 10, 64)
	if err != nil {
		return echo.NewHTTPError(http.StatusUnauthorized, "X-Payroll-Timestamp missing or not Unix seconds")
	}
	if d := now.Sub(time.Unix(ts, 0)); d > webhookWindow || d < -webhookWindow {
		return echo.NewHTTPError(http.StatusUnauthorized, "timestamp outside the 5-minute window")
	}
	sig := c.Request().Header.Get("X-Payroll-Signature")
	want := SignPayroll([]byte(s.cfg.PayrollSecret), ts, body)
	if !strings.HasPrefix(sig, "sha256=") || !hmac.Equal([]byte(sig), []byte(want)) {
		s.cfg.Log.Warn("payroll webhook: bad signature", "remote", c.RealIP())
		return echo.NewHTTPError(http.StatusUnauthorized, "bad signature")
	}
	if !s.replays.firstTime(sig, now) {
		return echo.NewHTTPError(http.StatusConflict, "replayed call")
	}
	defer func() {
		if err != nil {
			s.replays.forget(sig)
		}
	}()
	var req struct {
		VTOID      string `json:"vtoId"`
		PayrollRef string `json:"payrollRef"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.VTOID == "" || len(req.PayrollRef) > 128 {
		return echo.NewHTTPError(http.StatusBadRequest, `body: want {"vtoId":…,"payrollRef":…}`)
	}
	o, err := s.cfg.Dispatch.ConfirmVTO(req.VTOID, req.PayrollRef)
	if err != nil {
		return domainError(err)
	}
	return c.JSON(http.StatusOK, map[string]any{"vtoId": o.VTOID, "state": o.State})
}
