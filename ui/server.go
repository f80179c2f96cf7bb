// Package ui is the depot's web face: the Echo server with the REST API,
// health endpoints, the MQTT-over-WebSocket mount and the embedded
// dashboard. It reads the domain through the small interfaces below.
package ui

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/depotcc/depot/ui/auth"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// Depot is the live state the API reads.
type Depot interface {
	Routes() []bridge.RouteStatus
	Route(id string) (bridge.RouteStatus, bool)
	Feed() bridge.FeedHealth
	LastSeq() uint64
}

// Archive is the stored history the API reads.
type Archive interface {
	History(routeID string, from, to time.Time) ([]bridge.Fix, error)
	EventsAfter(after uint64, limit int) ([]json.RawMessage, error)
	OldestSeq() (uint64, error)
}

// Config sets up a Server.
type Config struct {
	Addr     string      // e.g. ":8080" or "127.0.0.1:0"
	TLS      *tls.Config // HTTPS when set
	DepotID  string
	Center   [2]float64 // where the map opens: the depot
	MapTiles string     // optional XYZ tile URL template; none: a plain map
	Version  string
	Depot    Depot
	Archive  Archive
	Accounts *auth.Accounts
	Dispatch Dispatch
	// Handhelds serves the stock apps and the driver app; nil: off.
	Handhelds Handhelds
	// Push is the push outbox; nil: off.
	Push Push
	// OsmAndAddr, when set, also serves Traccar Client's OsmAnd requests
	// on a port of their own (Traccar's is 5055): /<token> and
	// /api/v1/osmand/<token>, plain HTTP or TLS as the main port.
	OsmAndAddr string
	// PayrollSecret verifies the payroll webhook; empty: webhook off.
	PayrollSecret string
	// Metrics serves /metrics (Prometheus text format), when set.
	Metrics http.Handler
	// Ready says why the appliance is not fully ready (nil: it is).
	Ready func() error
	// Live says why the appliance is broken for good (nil: it is not):
	// /healthz and /readyz answer 503 then, so a supervisor restarts it.
	Live func() error
	// Backup writes a backup of the store now and returns its file.
	Backup func() (string, error)
	// Box is what the admin page shows of the appliance (GET
	// /api/v1/admin/box): version, uptime, store, retention, backups, feed
	// and upstream health; nil: 501.
	Box func() map[string]any
	// NoStream answers /api/v1/stream with 502, as a proxy that cuts
	// streaming responses would (tests of the polling fallback).
	NoStream bool
	MQTT     http.Handler // MQTT over WebSocket, mounted at /mqtt
	Health   func() map[string]any
	Log      *slog.Logger
	Now      func() time.Time

	// ReadTimeout bounds how long a request may take to send its body;
	// 30 s when zero.
	ReadTimeout time.Duration
	// MaxConns and MaxConnsPerIP cap the open connections in total and
	// per peer address (4096 and 256 when zero).
	MaxConns, MaxConnsPerIP int
	// TrustedProxies are the reverse proxies whose X-Forwarded-For is
	// believed; none: the peer address is the client's.
	TrustedProxies []*net.IPNet
	// Pprof mounts /debug/pprof (admins only).
	Pprof bool

	// PublicURL is scheme://host[:port] where handhelds reach the depot
	// (setup.ParseBase), for the set-ups of provisioned devices; nil: the
	// scheme and Host of the admin's request.
	PublicURL *url.URL
	// MQTTPort and MQTTTLS describe the MQTT-over-TCP listener for the
	// OwnTracks MQTT set-up, reached at PublicURL's host name (0: none).
	MQTTPort int
	MQTTTLS  bool

	// Fleet, when set, makes this the web server of `depot hq`: no depot
	// of its own (Depot, Archive and the depot's parts stay nil), the fleet
	// page at /, and Fleet mounts the fleet's routes on /api/v1 (read: any
	// signed-in role; stream: read for an EventSource, which passes its
	// token in the query). Log-in, renewal and users are the depot's.
	Fleet func(api *echo.Group, read echo.MiddlewareFunc, e *echo.Echo, stream echo.MiddlewareFunc)
}

// Server is the HTTP side of the appliance.
type Server struct {
	cfg      Config
	e        *echo.Echo
	ln       net.Listener
	done     chan struct{}
	throttle *auth.Throttle
	replays  replays
	hub      Hub
	guard    deviceGuard
	osmandE  *echo.Echo // on Config.OsmAndAddr
	osmandLn net.Listener
	held     heldTokens // new device tokens, for their set-ups' QR codes
}

// New builds the server and its routes; Start binds it.
func New(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxConnsPerIP <= 0 {
		cfg.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	s := &Server{cfg: cfg, e: echo.New(), done: make(chan struct{}), throttle: auth.NewThrottle()}
	e := s.e
	e.IPExtractor = ipExtractor(cfg.TrustedProxies)
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.errorHandler
	e.Server.ReadHeaderTimeout = 10 * time.Second
	e.Server.IdleTimeout = 120 * time.Second
	e.Server.ErrorLog = slog.NewLogLogger(cfg.Log.Handler(), slog.LevelDebug)
	e.Use(middleware.Recover())
	e.Use(securityHeaders(cfg.MapTiles, cfg.Log))
	e.Use(middleware.BodyLimit("1M"))
	e.Use(s.bodyDeadline)

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	if cfg.Metrics != nil {
		e.GET("/metrics", echo.WrapHandler(cfg.Metrics))
	}
	if cfg.MQTT != nil {
		e.GET("/mqtt", echo.WrapHandler(cfg.MQTT))
	}
	e.POST("/api/v1/auth/login", s.login)
	if cfg.Fleet != nil {
		api := e.Group("/api/v1", s.bearer)
		read := role(bridge.RoleDispatcher, bridge.RoleAdmin)
		admin := role(bridge.RoleAdmin)
		api.POST("/auth/renew", s.renew, read)
		api.GET("/config", s.fleetConfig, read)
		s.mountUsers(api, admin)
		cfg.Fleet(api, read, e, s.bearerOrQuery)
		api.Any("/*", func(c echo.Context) error { return echo.ErrNotFound })
		s.mountDashboard()
		return s
	}
	e.POST("/api/v1/webhooks/payroll", s.payroll) // signed, no login
	// Everything else under /api/v1 needs a login token.
	api := e.Group("/api/v1", s.bearer)
	read := role(bridge.RoleDispatcher, bridge.RoleAdmin)
	admin := role(bridge.RoleAdmin)
	api.POST("/auth/renew", s.renew, read)
	api.GET("/config", s.config, read)
	api.GET("/routes", s.routes, read)
	api.GET("/routes/:id", s.route, read)
	api.GET("/routes/:id/history", s.history, read)
	api.GET("/events", s.events, read)
	api.GET("/events/export", s.exportEvents, read)
	api.GET("/state", s.state, read)
	if cfg.NoStream {
		e.GET("/api/v1/stream", func(c echo.Context) error { return echo.NewHTTPError(http.StatusBadGateway, "stream cut") })
	} else {
		e.GET("/api/v1/stream", s.stream, s.bearerOrQuery, read)
	}
	api.GET("/vto", s.listOffers, read)
	api.POST("/vto", s.offerVTO, read)
	api.POST("/vto/:id/accept", s.answerVTO("accept"), read)
	api.POST("/vto/:id/decline", s.answerVTO("decline"), read)
	api.GET("/rescues", s.listRescues, read)
	api.POST("/rescues/:id/resolve", s.resolveRescue, read)
	api.POST("/routes/:id/reassign", s.reassign, read)
	s.mountUsers(api, admin)
	api.POST("/devices", s.createDevice, admin)
	api.GET("/devices", s.listDevices, admin)
	api.DELETE("/devices/:driverId", s.revokeDevice, admin)
	api.GET("/devices/:driverId/setup", s.deviceSetup, admin)
	api.POST("/admin/backup", s.backup, admin)
	api.GET("/admin/box", s.box, admin)
	s.mountHandhelds(read, api)
	s.mountPush()
	api.Any("/*", func(c echo.Context) error { return echo.ErrNotFound })
	if cfg.Pprof {
		s.mountPprof(admin)
	}
	s.mountDashboard()
	return s
}

// mountUsers serves the user administration (admins only).
func (s *Server) mountUsers(api *echo.Group, admin echo.MiddlewareFunc) {
	api.POST("/users", s.createUser, admin)
	api.GET("/users", s.listUsers, admin)
	api.DELETE("/users/:username", s.deleteUser, admin)
	api.PATCH("/users/:username", s.changeUser, admin)
	api.POST("/users/:username/password", s.resetPassword, admin)
}

// mountPprof serves profiles of the running appliance, for admins only and
// only with --pprof (its cmdline shows the flags):
// curl -H "Authorization: Bearer $TOKEN" …/debug/pprof/profile?seconds=10 > cpu.prof
func (s *Server) mountPprof(admin echo.MiddlewareFunc) {
	e := s.e
	dbg := e.Group("/debug/pprof", s.bearer, admin)
	dbg.GET("/", echo.WrapHandler(http.HandlerFunc(pprof.Index)))
	dbg.GET("/cmdline", echo.WrapHandler(http.HandlerFunc(pprof.Cmdline)))
	dbg.GET("/profile", echo.WrapHandler(http.HandlerFunc(pprof.Profile)))
	dbg.GET("/symbol", echo.WrapHandler(http.HandlerFunc(pprof.Symbol)))
	dbg.GET("/trace", echo.WrapHandler(http.HandlerFunc(pprof.Trace)))
	dbg.GET("/:name", func(c echo.Context) error {
		pprof.Handler(c.Param("name")).ServeHTTP(c.Response(), c.Request())
		return nil
	})
}

// Events is where the depot's published events go for SSE clients.
func (s *Server) Events() *Hub { return &s.hub }

// Handler exposes the routes for tests that use httptest.
func (s *Server) Handler() http.Handler { return s.e }

// Start binds the listener and serves in the background.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("http listen %s: %w", s.cfg.Addr, err)
	}
	ln = newLimitListener(ln, s.mainConns(), s.cfg.MaxConnsPerIP)
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	s.ln = ln
	go func() {
		if err := s.e.Server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.cfg.Log.Error("http server stopped", "err", err)
		}
	}()
	return s.startOsmAnd()
}

// mainConns is the main port's share of MaxConns: all of it, or 7/8 when
// the OsmAnd port takes the rest. The two together stay within the cap the
// open files limit allows.
func (s *Server) mainConns() int {
	if s.cfg.OsmAndAddr == "" || s.cfg.Handhelds == nil || s.cfg.MaxConns < 16 {
		return s.cfg.MaxConns
	}
	return s.cfg.MaxConns - s.cfg.MaxConns/8
}

// startOsmAnd serves OsmAnd requests on Config.OsmAndAddr, with the
// main server's limits, error answers and address rules.
func (s *Server) startOsmAnd() error {
	if s.cfg.OsmAndAddr == "" || s.cfg.Handhelds == nil {
		return nil
	}
	if s.cfg.MaxConns < 16 {
		return fmt.Errorf("osmand: %d connections are too few to share with the HTTP port", s.cfg.MaxConns)
	}
	ln, err := net.Listen("tcp", s.cfg.OsmAndAddr)
	if err != nil {
		return fmt.Errorf("osmand listen %s: %w", s.cfg.OsmAndAddr, err)
	}
	ln = newLimitListener(ln, s.cfg.MaxConns-s.mainConns(), min(s.cfg.MaxConnsPerIP, s.cfg.MaxConns-s.mainConns()))
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	e := echo.New()
	e.IPExtractor = s.e.IPExtractor
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.errorHandler
	e.Server.ReadHeaderTimeout, e.Server.IdleTimeout = s.e.Server.ReadHeaderTimeout, s.e.Server.IdleTimeout
	e.Server.ErrorLog = s.e.Server.ErrorLog
	e.Use(middleware.Recover(), middleware.BodyLimit("64K"), s.bodyDeadline)
	for _, path := range []string{"/:token", "/api/v1/osmand/:token"} {
		e.GET(path, s.osmand)
		e.POST(path, s.osmand)
	}
	s.osmandE, s.osmandLn = e, ln
	go func() {
		if err := e.Server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.cfg.Log.Error("osmand server stopped", "err", err)
		}
	}()
	return nil
}

// OsmAndAddr is the bound address of the OsmAnd port ("" when off).
func (s *Server) OsmAndAddr() string {
	if s.osmandLn == nil {
		return ""
	}
	return s.osmandLn.Addr().String()
}

// Addr is the bound address.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Shutdown stops accepting and waits (bounded by ctx) for requests to end.
// Hijacked WebSocket connections are not waited for: the broker closes them.
func (s *Server) Shutdown(ctx context.Context) error {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	if s.osmandE != nil {
		_ = s.osmandE.Shutdown(ctx)
	}
	return s.e.Shutdown(ctx)
}

// Kill closes the listener and every connection at once, as a crash
// would (tests of fail-over).
func (s *Server) Kill() {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	_ = s.e.Server.Close()
}

// apiError is the JSON error body.
type apiError struct {
	Error string `json:"error"`
}

// errorHandler answers every error as JSON with the right status; anything
// that is not an *echo.HTTPError is logged and becomes a plain 500 without
// internals.
func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code, msg := http.StatusInternalServerError, "internal error"
	var he *echo.HTTPError
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) {
		err = echo.ErrNotFound // a file name the dashboard does not have (or cannot)
	}
	if errors.As(err, &he) {
		code = he.Code
		msg = fmt.Sprint(he.Message)
		if m, ok := he.Message.(string); ok {
			msg = m
		}
	} else {
		s.cfg.Log.Error("request failed", "method", c.Request().Method, "path", c.Path(), "err", err)
	}
	if c.Request().Method == http.MethodHead {
		err = c.NoContent(code)
	} else {
		err = c.JSON(code, apiError{Error: msg})
	}
	if err != nil {
		s.cfg.Log.Debug("write error response", "err", err)
	}
}

// notLive answers 503 when Config.Live reports the appliance broken.
func (s *Server) notLive(c echo.Context) (bool, error) {
	if s.cfg.Live == nil {
		return false, nil
	}
	if err := s.cfg.Live(); err != nil {
		return true, c.JSON(http.StatusServiceUnavailable, map[string]any{"status": "down", "error": err.Error()})
	}
	return false, nil
}

func (s *Server) healthz(c echo.Context) error {
	if down, err := s.notLive(c); down {
		return err
	}
	h := map[string]any{"status": "ok"}
	if s.cfg.Health != nil {
		h = s.cfg.Health()
	}
	h["http"] = s.Addr()
	if a := s.OsmAndAddr(); a != "" {
		h["osmand"] = a
	}
	if !s.isAdmin(c) {
		h = publicHealth(h)
	}
	return c.JSON(http.StatusOK, h)
}

// publicHealth is what /healthz shows without an admin's token: the status
// and where the appliance listens (tools read the bound addresses), nothing
// about the feed, the store or the traffic.
func publicHealth(h map[string]any) map[string]any {
	out := map[string]any{}
	for _, k := range []string{"status", "depot", "mode", "instance", "version", "mqtt", "http", "osmand"} {
		if v, ok := h[k]; ok {
			out[k] = v
		}
	}
	return out
}

func (s *Server) box(c echo.Context) error {
	if s.cfg.Box == nil {
		return echo.NewHTTPError(http.StatusNotImplemented, "no box summary here")
	}
	return c.JSON(http.StatusOK, s.cfg.Box())
}

func (s *Server) backup(c echo.Context) error {
	if s.cfg.Backup == nil {
		return echo.NewHTTPError(http.StatusNotImplemented, "backups not configured")
	}
	f, err := s.cfg.Backup()
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]string{"file": f})
}

// readyz is /healthz with a verdict: 503 while the store cannot write
// (live delivery goes on, QoS 1 fixes are refused).
func (s *Server) readyz(c echo.Context) error {
	if down, err := s.notLive(c); down {
		return err
	}
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(); err != nil {
			return c.JSON(http.StatusServiceUnavailable, map[string]any{"status": "degraded", "error": err.Error(), "http": s.Addr()})
		}
	}
	return s.healthz(c)
}

// fleetConfig is /config of `depot hq`: no depot, the map's default view.
func (s *Server) fleetConfig(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{
		"mode":       "hq",
		"center":     map[string]float64{"lat": s.cfg.Center[0], "lng": s.cfg.Center[1]},
		"mapTiles":   s.cfg.MapTiles,
		"version":    s.cfg.Version,
		"serverTime": s.cfg.Now().UnixMilli(),
	})
}

func (s *Server) config(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{
		"depot":      s.cfg.DepotID,
		"center":     map[string]float64{"lat": s.cfg.Center[0], "lng": s.cfg.Center[1]},
		"mapTiles":   s.cfg.MapTiles,
		"version":    s.cfg.Version,
		"serverTime": s.cfg.Now().UnixMilli(),
		"lastSeq":    s.cfg.Depot.LastSeq(),
		"feed":       s.cfg.Depot.Feed(),
	})
}
