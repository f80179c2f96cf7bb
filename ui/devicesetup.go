package ui

import (
	"crypto/subtle"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/depotcc/depot/ui/auth"
	"github.com/depotcc/depot/ui/setup"
	"github.com/labstack/echo/v4"
)

// SetupHold is how long the depot holds a new device token in memory so
// the device's set-ups can be shown again as QR codes; only a hash of the
// token is stored, so afterwards (and after a restart) they cannot.
const SetupHold = 30 * time.Minute

// setupHeldMax bounds the tokens held at once; the oldest goes first.
const setupHeldMax = 1000

// errSetupGone is the answer for a device whose token is no longer held.
const errSetupGone = "the token of this device is no longer held (30 minutes after provisioning, or a restart): provision it again"

// heldTokens are the tokens of the devices provisioned in the last
// SetupHold, by driver id: in memory only, never written or logged.
type heldTokens struct {
	mu sync.Mutex
	m  map[string]heldToken
}

type heldToken struct {
	token string
	at    time.Time
	// code is the driver app's one-time pairing code for the token
	// (exchange); "" once used.
	code string
}

// newPairCode is a one-time pairing code: 256 random bits, base64url.
func newPairCode() string { return auth.RandomSecret(32) }

// put holds driverID's new token, replacing an older one; when full, the
// expired and then the oldest are dropped.
func (h *heldTokens) put(driverID, token string, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string]heldToken{}
	}
	delete(h.m, driverID)
	if len(h.m) >= setupHeldMax {
		for id, t := range h.m {
			if now.Sub(t.at) >= SetupHold {
				delete(h.m, id)
			}
		}
	}
	for len(h.m) >= setupHeldMax {
		oldest, first := "", true
		var at time.Time
		for id, t := range h.m {
			if first || t.at.Before(at) {
				oldest, at, first = id, t.at, false
			}
		}
		delete(h.m, oldest)
	}
	h.m[driverID] = heldToken{token: token, at: now, code: newPairCode()}
}

// pairCode returns driverID's unused pairing code, making a new one if the
// last was used (an admin showing the driver app's QR code again).
func (h *heldTokens) pairCode(driverID string, now time.Time) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.m[driverID]
	if !ok || now.Sub(t.at) >= SetupHold {
		return ""
	}
	if t.code == "" {
		t.code = newPairCode()
		h.m[driverID] = t
	}
	return t.code
}

// exchange gives the token of an unused pairing code, once. Every held
// code is compared, in constant time each.
func (h *heldTokens) exchange(code string, now time.Time) (driverID, token string, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, t := range h.m {
		if t.code != "" && subtle.ConstantTimeCompare([]byte(t.code), []byte(code)) == 1 {
			driverID, token, ok = id, t.token, true
		}
	}
	if !ok {
		return "", "", false
	}
	t := h.m[driverID]
	t.code = ""
	h.m[driverID] = t
	if d := now.Sub(t.at); d >= SetupHold || d < -time.Minute {
		return "", "", false
	}
	return driverID, token, true
}

// get returns driverID's held token while it is held.
func (h *heldTokens) get(driverID string, now time.Time) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.m[driverID]
	if !ok {
		return "", false
	}
	if d := now.Sub(t.at); d >= SetupHold || d < -time.Minute { // a clock set back: not trusted either
		delete(h.m, driverID)
		return "", false
	}
	return t.token, true
}

func (h *heldTokens) drop(driverID string) {
	h.mu.Lock()
	delete(h.m, driverID)
	h.mu.Unlock()
}

func (h *heldTokens) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.m)
}

// publicBase is where handhelds reach the depot: Config.PublicURL, or the
// scheme and Host of the request (nil when its Host is not a plain name or
// address and port). The scheme is https for a TLS connection, or when a
// trusted proxy says so with X-Forwarded-Proto.
func (s *Server) publicBase(r *http.Request) *url.URL {
	if s.cfg.PublicURL != nil {
		return s.cfg.PublicURL
	}
	if !validHost(r.Host) {
		return nil
	}
	scheme := "http"
	if r.TLS != nil || s.fromTrustedProxy(r) && strings.EqualFold(strings.TrimSpace(r.Header.Get("X-Forwarded-Proto")), "https") {
		scheme = "https"
	}
	u, err := setup.ParseBase(scheme + "://" + r.Host)
	if err != nil {
		return nil
	}
	return u
}

// fromTrustedProxy reports whether the request's peer is one of
// Config.TrustedProxies.
func (s *Server) fromTrustedProxy(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	for _, n := range s.cfg.TrustedProxies {
		if ip != nil && n.Contains(ip) {
			return true
		}
	}
	return false
}

// setupFor makes the set-ups of driverID's handheld for the request r, or
// nil when the depot's public address cannot be told.
func (s *Server) setupFor(r *http.Request, driverID, token string) *setup.Set {
	base := s.publicBase(r)
	if base == nil {
		return nil
	}
	set, err := setup.Make(setup.Params{Base: base, MQTTPort: s.cfg.MQTTPort, MQTTTLS: s.cfg.MQTTTLS, DriverID: driverID, Token: token,
		PairCode: s.held.pairCode(driverID, s.cfg.Now())})
	if err != nil {
		return nil
	}
	return &set
}

// deviceSetup answers a set-up of a device provisioned in the last
// SetupHold as a QR code: GET /devices/:driverId/setup?kind=…&format=png|svg.
func (s *Server) deviceSetup(c echo.Context) error {
	kind, format := c.QueryParam("kind"), c.QueryParam("format")
	if kind == "" {
		kind = setup.KindDriverApp
	}
	if format == "" {
		format = setup.FormatPNG
	}
	if !slices.Contains(setup.Kinds, kind) {
		return echo.NewHTTPError(http.StatusBadRequest, "kind: want "+strings.Join(setup.Kinds, ", "))
	}
	if format != setup.FormatPNG && format != setup.FormatSVG {
		return echo.NewHTTPError(http.StatusBadRequest, "format: want png or svg")
	}
	id := c.Param("driverId")
	if !s.cfg.Accounts.DeviceValid(id) {
		return echo.NewHTTPError(http.StatusNotFound, "no such device")
	}
	tok, ok := s.held.get(id, s.cfg.Now())
	if ok && !s.cfg.Accounts.DeviceTokenValid(id, tok) {
		s.held.drop(id) // replaced by a credential this server did not issue
		ok = false
	}
	if !ok {
		return echo.NewHTTPError(http.StatusGone, errSetupGone)
	}
	set := s.setupFor(c.Request(), id, tok)
	if set == nil {
		return echo.NewHTTPError(http.StatusBadRequest, "cannot tell the depot's address from this request's Host: start the depot with --public-url")
	}
	text, err := set.Text(kind)
	if err != nil {
		return echo.NewHTTPError(http.StatusNotFound, err.Error())
	}
	// Whoever holds an admin's token can show a driver's credential for
	// the hold: each showing is on record.
	s.cfg.Log.Info("device set-up shown", "driver", id, "kind", kind, "by", who(c), "remote", c.RealIP())
	img, mediaType, err := setup.Image(text, format)
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Disposition", `inline; filename="setup-`+id+`-`+kind+`.`+format+`"`)
	return c.Blob(http.StatusOK, mediaType, img)
}

// pairDriverApp exchanges a one-time pairing code from a driver app link
// for the device credential: POST /api/v1/driver/pair {"code"}. 410 for a
// code used, expired or unknown (one answer for all three); wrong codes
// from one address are slowed down like wrong credentials.
func (s *Server) pairDriverApp(c echo.Context) error {
	var req struct {
		Code string `json:"code"`
	}
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	now, addr := s.cfg.Now(), addrKey(c.RealIP())
	id, tok, ok := "", "", len(req.Code) > 0 && len(req.Code) <= 64
	if ok {
		id, tok, ok = s.held.exchange(req.Code, now)
	}
	if ok && !s.cfg.Accounts.DeviceTokenValid(id, tok) {
		s.held.drop(id)
		ok = false
	}
	if !ok {
		if err := s.guard.refuse(c, addr, now); err != nil {
			return err
		}
		return echo.NewHTTPError(http.StatusGone, "this pairing code was already used or has expired: ask for a new QR code")
	}
	s.cfg.Log.Info("driver app paired", "driver", id, "remote", c.RealIP())
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, map[string]string{"driverId": id, "token": tok})
}
