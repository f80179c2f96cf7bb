package ui

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"
)

// Handhelds is the depot's side of the stock apps and of the driver app
// (docs/handhelds.md).
type Handhelds interface {
	// OwnTracks takes an OwnTracks HTTP post of an authenticated driver
	// and returns the commands waiting for its handheld.
	OwnTracks(driverID string, body []byte) ([]json.RawMessage, error)
	// OsmAnd takes a validated fix from Traccar Client.
	OsmAnd(f bridge.Fix) error
	// RefuseHandheld counts a fix refused here and says whether the app
	// should nevertheless hear it was delivered (a stale fix).
	RefuseHandheld(err error, via string) (delivered bool)
	// Locate asks a driver's handhelds for their position now.
	Locate(driverID string) (sent []string, err error)
	// DriverView is what the driver's own app shows.
	DriverView(driverID string) bridge.DriverView
}

// mountHandhelds adds the handhelds' endpoints. They carry device
// credentials, not login tokens: HTTP Basic (driver id, device token), or
// the token in an OsmAnd URL, whose path is never logged.
func (s *Server) mountHandhelds(read echo.MiddlewareFunc, api *echo.Group) {
	if s.cfg.Handhelds == nil {
		return
	}
	s.e.POST("/api/v1/owntracks", s.ownTracks)
	s.e.GET("/api/v1/osmand/:token", s.osmand)
	s.e.POST("/api/v1/osmand/:token", s.osmand)
	s.e.GET("/api/v1/driver/state", s.driverState)
	s.e.POST("/api/v1/driver/pair", s.pairDriverApp)
	api.POST("/drivers/:id/locate", s.locate, read)
}

// deviceGuard slows down a client that keeps presenting wrong device
// credentials: 20 failures at once, then one every 3 s, per address. Right
// credentials cost nothing, so a depot's drivers behind one address are
// never held back by each other.
type deviceGuard struct {
	mu    sync.Mutex
	fails map[string]*rate.Limiter
}

// refuse records a wrong credential from addr and answers 429 when addr
// is over its budget (nil otherwise: the caller answers 401).
func (g *deviceGuard) refuse(c echo.Context, addr string, now time.Time) error {
	if wait, blocked := g.blocked(addr, now); blocked {
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		return echo.NewHTTPError(http.StatusTooManyRequests, "too many wrong device credentials; try again later")
	}
	g.failed(addr, now)
	return nil
}

func (g *deviceGuard) blocked(addr string, now time.Time) (time.Duration, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	l, ok := g.fails[addr]
	if !ok || l.TokensAt(now) >= 1 {
		return 0, false
	}
	r := l.ReserveN(now, 1)
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return d, true
}

func (g *deviceGuard) failed(addr string, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fails == nil || len(g.fails) >= 10000 {
		g.fails = map[string]*rate.Limiter{} // under a flood of addresses, forget rather than grow
	}
	l, ok := g.fails[addr]
	if !ok {
		l = rate.NewLimiter(rate.Every(3*time.Second), 20)
		g.fails[addr] = l
	}
	l.AllowN(now, 1)
}

var errDeviceCredential = echo.NewHTTPError(http.StatusUnauthorized, "wrong driver id or device token")

// device authenticates a handheld by HTTP Basic auth. A right credential
// is always taken, whatever others at its address did; a wrong one from
// an address that sent many is answered 429, so it stops.
func (s *Server) device(c echo.Context) (string, error) {
	now, addr := s.cfg.Now(), addrKey(c.RealIP())
	driver, token, ok := c.Request().BasicAuth()
	if ok && s.cfg.Accounts.AuthenticateDevice(driver, token) == nil {
		return driver, nil
	}
	if err := s.guard.refuse(c, addr, now); err != nil {
		return "", err
	}
	if c.Path() == "/api/v1/owntracks" {
		// A challenge for the stock app only: the driver app's page must
		// not get one, or the browser shows its own sign-in dialog.
		c.Response().Header().Set("WWW-Authenticate", `Basic realm="depot", charset="UTF-8"`)
	}
	s.cfg.Log.Info("handheld credential refused", "path", c.Path(), "remote", c.RealIP(), "basic", ok)
	return "", errDeviceCredential
}

// handheldBody reads a handheld's body, at most bridge.MaxHandheldPayload.
func handheldBody(c echo.Context) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(c.Request().Body, bridge.MaxHandheldPayload+1))
	if err != nil {
		return nil, echo.NewHTTPError(http.StatusBadRequest, "could not read the body")
	}
	if len(b) > bridge.MaxHandheldPayload {
		// Nothing a handheld sends that large is a fix (OwnTracks' waypoint
		// export can be); it is counted and taken, see takenAndDropped.
		return nil, fmt.Errorf("%w: body over %d bytes", bridge.ErrTooLarge, bridge.MaxHandheldPayload)
	}
	return b, nil
}

// fixError answers a fix the depot could not take: the handheld's fault
// (400 with the reason) or the depot's (503: keep it and send it again).
func fixError(err error) error {
	if bridge.RefusalReason(err) != "other" || errors.Is(err, bridge.ErrInvalid) {
		return echo.NewHTTPError(http.StatusBadRequest, err.Error())
	}
	if errors.Is(err, bridge.ErrClosed) {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "the depot is shutting down; send it again")
	}
	return echo.NewHTTPError(http.StatusServiceUnavailable, "not stored; send it again")
}

// ownTracks is OwnTracks' HTTP mode: any 2xx means delivered; the answer
// is the commands waiting for the handheld.
func (s *Server) ownTracks(c echo.Context) error {
	driver, err := s.device(c)
	if err != nil {
		return err
	}
	body, err := handheldBody(c)
	if errors.Is(err, bridge.ErrTooLarge) && s.cfg.Handhelds.RefuseHandheld(err, "owntracks-http") {
		body = nil
	} else if err != nil {
		return err
	}
	cmds, err := s.cfg.Handhelds.OwnTracks(driver, body)
	if err != nil {
		return fixError(err)
	}
	return c.JSON(http.StatusOK, cmds)
}

// osmand is Traccar Client's OsmAnd protocol: the token in the path is the
// credential, and id/device_id must be the driver it was issued for. The
// client deletes a buffered fix only on 200/201/204.
func (s *Server) osmand(c echo.Context) error {
	now, addr := s.cfg.Now(), addrKey(c.RealIP())
	driver, ok := s.cfg.Accounts.DeviceForToken(c.Param("token"))
	if !ok {
		if err := s.guard.refuse(c, addr, now); err != nil {
			return err
		}
		s.cfg.Log.Info("handheld credential refused", "path", "/api/v1/osmand/…", "remote", c.RealIP())
		return echo.NewHTTPError(http.StatusUnauthorized, "unknown device token")
	}
	body, err := handheldBody(c)
	if errors.Is(err, bridge.ErrTooLarge) && s.cfg.Handhelds.RefuseHandheld(err, "osmand") {
		return c.NoContent(http.StatusOK)
	} else if err != nil {
		return err
	}
	var o bridge.OsmAnd
	q := c.QueryParams()
	switch {
	case c.Request().Method == http.MethodPost && len(q) == 0 && strings.HasPrefix(strings.TrimSpace(string(body)), "{"):
		o, err = bridge.ParseOsmAndJSON(body, now)
	case len(q) == 0:
		// A form post, as Traccar reads a query-less request.
		if q, err = url.ParseQuery(string(body)); err != nil {
			return echo.NewHTTPError(http.StatusBadRequest, "the body is neither JSON nor a form")
		}
		fallthrough
	default:
		o, err = bridge.ParseOsmAndQuery(q, now)
	}
	if err == nil && o.DriverID != driver {
		return echo.NewHTTPError(http.StatusForbidden, fmt.Sprintf("this device token was not issued for driver %q", clipForLog(o.DriverID, 64)))
	}
	if err != nil {
		if s.cfg.Handhelds.RefuseHandheld(err, "osmand") {
			return c.NoContent(http.StatusOK)
		}
		return echo.NewHTTPError(http.StatusBadRequest, err.Error())
	}
	if err := s.cfg.Handhelds.OsmAnd(o.Fix); err != nil {
		return fixError(err)
	}
	return c.NoContent(http.StatusOK)
}

// driverState is the driver app's starting state: its own view, the
// depot it belongs to and the server's clock (for countdowns).
func (s *Server) driverState(c echo.Context) error {
	driver, err := s.device(c)
	if err != nil {
		return err
	}
	type state struct {
		Depot      string `json:"depot"`
		ServerTime int64  `json:"serverTime"`
		bridge.DriverView
	}
	return c.JSON(http.StatusOK, state{Depot: s.cfg.DepotID, ServerTime: s.cfg.Now().UnixMilli(),
		DriverView: s.cfg.Handhelds.DriverView(driver)})
}

// locate is a dispatcher's "where are you now?" to a driver's handhelds.
func (s *Server) locate(c echo.Context) error {
	id := c.Param("id")
	if !s.cfg.Accounts.DeviceValid(id) {
		return echo.NewHTTPError(http.StatusNotFound, fmt.Sprintf("driver %q has no handheld credential", clipForLog(id, 64)))
	}
	sent, err := s.cfg.Handhelds.Locate(id)
	if err != nil {
		return domainError(err)
	}
	s.cfg.Log.Info("locate requested", "driver", id, "by", who(c), "sent", sent)
	return c.JSON(http.StatusAccepted, map[string]any{"driverId": id, "sent": sent})
}
