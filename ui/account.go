package ui

import (
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/depotcc/depot/ui/auth"
	"github.com/labstack/echo/v4"
)

const claimsKey = "claims"

// bearer requires a valid login token on every request it guards.
func (s *Server) bearer(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header.Get(echo.HeaderAuthorization)
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || tok == "" {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="depot"`)
			return echo.NewHTTPError(http.StatusUnauthorized, "login required: Authorization: Bearer <token>")
		}
		cl, err := s.cfg.Accounts.Verify(tok)
		if err != nil {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="depot", error="invalid_token"`)
			return echo.NewHTTPError(http.StatusUnauthorized, "invalid or expired token")
		}
		c.Set(claimsKey, cl)
		return next(c)
	}
}

// isAdmin reports whether the request carries a valid admin's token, for
// the endpoints that answer everyone but show more to admins.
func (s *Server) isAdmin(c echo.Context) bool {
	tok, ok := strings.CutPrefix(c.Request().Header.Get(echo.HeaderAuthorization), "Bearer ")
	if !ok || tok == "" || s.cfg.Accounts == nil {
		return false
	}
	cl, err := s.cfg.Accounts.Verify(tok)
	return err == nil && cl.Role == bridge.RoleAdmin
}

// bearerOrQuery is bearer for the SSE stream, which also takes the token as
// ?access_token=: a browser's EventSource cannot send headers.
func (s *Server) bearerOrQuery(next echo.HandlerFunc) echo.HandlerFunc {
	b := s.bearer(next)
	return func(c echo.Context) error {
		if tok := c.QueryParam("access_token"); tok != "" && c.Request().Header.Get(echo.HeaderAuthorization) == "" {
			c.Request().Header.Set(echo.HeaderAuthorization, "Bearer "+tok)
		}
		return b(c)
	}
}

// role allows only the given roles through (after bearer).
func role(roles ...string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			cl, _ := c.Get(claimsKey).(*auth.Claims)
			for _, r := range roles {
				if cl != nil && cl.Role == r {
					return next(c)
				}
			}
			return echo.NewHTTPError(http.StatusForbidden, "your role may not do this")
		}
	}
}

// bindJSON decodes a small JSON object body strictly: unknown fields and
// trailing data are errors.
func bindJSON(c echo.Context, v any) error {
	dec := json.NewDecoder(io.LimitReader(c.Request().Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "body: "+jsonErr(err))
	}
	if dec.More() {
		return echo.NewHTTPError(http.StatusBadRequest, "body: one JSON object expected")
	}
	return nil
}

func jsonErr(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return "empty"
	case errors.As(err, &se):
		return "malformed JSON"
	case errors.As(err, &te):
		return "field " + te.Field + " has the wrong type"
	}
	return err.Error()
}

// LoginRequest is the body of POST /auth/login.
type LoginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func (s *Server) login(c echo.Context) error {
	var req LoginRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if req.Username == "" || req.Password == "" || len(req.Username) > 64 || len(req.Password) > 256 {
		return echo.NewHTTPError(http.StatusBadRequest, "username and password required")
	}
	now := s.cfg.Now()
	addr := c.RealIP()
	key := addrKey(addr)
	if ok, wait := s.throttle.Allow(key, req.Username, now); !ok {
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		s.cfg.Log.Warn("login throttled", "user", req.Username, "remote", addr)
		return echo.NewHTTPError(http.StatusTooManyRequests, "too many login attempts; try again later")
	}
	tok, cl, err := s.cfg.Accounts.LoginContext(c.Request().Context(), req.Username, req.Password)
	if errors.Is(err, auth.ErrDisabled) {
		s.cfg.Log.Warn("login of a disabled user", "user", req.Username, "remote", addr)
		return echo.NewHTTPError(http.StatusForbidden, "this account is disabled; ask an admin")
	}
	if errors.Is(err, auth.ErrBusy) {
		c.Response().Header().Set("Retry-After", "1")
		return echo.NewHTTPError(http.StatusServiceUnavailable, "too many logins at once; try again in a moment")
	}
	if err != nil && c.Request().Context().Err() != nil {
		return nil // the client went away while waiting for a hashing slot
	}
	if errors.Is(err, auth.ErrBadCredentials) {
		s.throttle.Failed(key, req.Username, now)
		s.cfg.Log.Warn("login failed", "user", req.Username, "remote", addr) // never the password
		return echo.NewHTTPError(http.StatusUnauthorized, "wrong username or password")
	}
	if err != nil {
		return err
	}
	s.cfg.Log.Info("login", "user", req.Username, "role", cl.Role, "remote", addr)
	return c.JSON(http.StatusOK, map[string]any{
		"token": tok, "expiresAt": cl.ExpiresAt.Time.UTC(), "role": cl.Role, "username": cl.Subject,
	})
}

// accountError maps the identity service's errors to statuses.
func accountError(err error) error {
	switch {
	case errors.Is(err, auth.ErrInvalid):
		return echo.NewHTTPError(http.StatusBadRequest, err.Error())
	case errors.Is(err, auth.ErrExists), errors.Is(err, auth.ErrLastAdmin):
		return echo.NewHTTPError(http.StatusConflict, err.Error())
	case errors.Is(err, bridge.ErrNotFound):
		return echo.NewHTTPError(http.StatusNotFound, "not found")
	}
	return err
}

type userView struct {
	Username string    `json:"username"`
	Role     string    `json:"role"`
	Created  time.Time `json:"created"`
	Disabled bool      `json:"disabled"`
}

func viewOf(u bridge.User) userView { return userView{u.Username, u.Role, u.Created, u.Disabled} }

func (s *Server) createUser(c echo.Context) error {
	var req struct {
		Username string `json:"username"`
		Password string `json:"password"`
		Role     string `json:"role"`
	}
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if err := s.cfg.Accounts.CreateUser(req.Username, req.Password, req.Role); err != nil {
		return accountError(err)
	}
	s.cfg.Log.Info("user created", "user", req.Username, "role", req.Role, "by", c.Get(claimsKey).(*auth.Claims).Subject)
	return c.JSON(http.StatusCreated, userView{Username: req.Username, Role: req.Role, Created: s.cfg.Now().UTC()})
}

// changeUser is PATCH /users/:username {"role"?, "disabled"?}: another role
// or disabled/enabled (both: the role first). Her tokens stop working and
// her live sessions end when her role changes or she is disabled. An admin
// cannot demote or disable herself (no lock-out by a slip of the hand),
// and the last enabled admin stays one.
func (s *Server) changeUser(c echo.Context) error {
	var req struct {
		Role     *string `json:"role"`
		Disabled *bool   `json:"disabled"`
	}
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if req.Role == nil && req.Disabled == nil {
		return echo.NewHTTPError(http.StatusBadRequest, `body: "role" or "disabled" expected`)
	}
	name := c.Param("username")
	by := c.Get(claimsKey).(*auth.Claims).Subject
	if name == by && (req.Role != nil && *req.Role != bridge.RoleAdmin || req.Disabled != nil && *req.Disabled) {
		return echo.NewHTTPError(http.StatusConflict, "you cannot demote or disable yourself; ask another admin")
	}
	var u bridge.User
	var err error
	if req.Role != nil {
		if u, err = s.cfg.Accounts.SetRole(name, *req.Role); err != nil {
			return accountError(err)
		}
		s.cfg.Log.Info("user role changed", "user", name, "role", u.Role, "by", by)
	}
	if req.Disabled != nil {
		if u, err = s.cfg.Accounts.SetDisabled(name, *req.Disabled); err != nil {
			return accountError(err)
		}
		s.cfg.Log.Info("user disabled", "user", name, "disabled", u.Disabled, "by", by)
	}
	return c.JSON(http.StatusOK, viewOf(u))
}

// resetPassword is POST /users/:username/password {"password"}: the admin
// sets the new password (the rules of creation) and tells the user; her
// tokens stop working and her live sessions end (an admin resetting her
// own is signed out too).
func (s *Server) resetPassword(c echo.Context) error {
	var req struct {
		Password string `json:"password"`
	}
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	name := c.Param("username")
	if _, err := s.cfg.Accounts.ResetPassword(name, req.Password); err != nil {
		return accountError(err)
	}
	s.cfg.Log.Info("user password reset", "user", name, "by", c.Get(claimsKey).(*auth.Claims).Subject) // never the password
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) listUsers(c echo.Context) error {
	us, err := s.cfg.Accounts.Users()
	if err != nil {
		return err
	}
	out := make([]userView, len(us))
	for i, u := range us {
		out[i] = viewOf(u)
	}
	return c.JSON(http.StatusOK, out)
}

// deleteUser removes a user; her tokens stop working at once and her live
// MQTT sessions are ended. An admin cannot delete herself (no lock-out by a
// slip of the hand), nor the last admin.
func (s *Server) deleteUser(c echo.Context) error {
	name := c.Param("username")
	by := c.Get(claimsKey).(*auth.Claims).Subject
	if name == by {
		return echo.NewHTTPError(http.StatusConflict, "you cannot delete yourself; ask another admin")
	}
	if err := s.cfg.Accounts.DeleteUser(name); err != nil {
		return accountError(err)
	}
	s.cfg.Log.Info("user deleted", "user", name, "by", by)
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) createDevice(c echo.Context) error {
	var req struct {
		DriverID string `json:"driverId"`
		Name     string `json:"name"`
	}
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	tok, err := s.cfg.Accounts.CreateDevice(req.DriverID, req.Name)
	if err != nil {
		return accountError(err)
	}
	s.held.put(req.DriverID, tok, s.cfg.Now())
	s.cfg.Log.Info("device credential issued", "driver", req.DriverID, "by", c.Get(claimsKey).(*auth.Claims).Subject)
	out := map[string]any{
		"driverId": req.DriverID, "token": tok,
		"mqttUsername": req.DriverID, "mqttClientId": bridge.Identity{Role: bridge.RoleDriver, Subject: req.DriverID}.ClientID(),
	}
	// Without a public URL and with a Host that cannot go into a link, the
	// answer has no set-ups (the credential is still issued).
	if set := s.setupFor(c.Request(), req.DriverID, tok); set != nil {
		out["setup"] = set
	}
	return c.JSON(http.StatusCreated, out)
}

func (s *Server) listDevices(c echo.Context) error {
	ds, err := s.cfg.Accounts.Devices()
	if err != nil {
		return err
	}
	type view struct {
		DriverID string           `json:"driverId"`
		Name     string           `json:"name"`
		Created  time.Time        `json:"created"`
		Push     []pushTargetView `json:"push"`
	}
	out := make([]view, len(ds))
	for i, d := range ds {
		out[i] = view{d.DriverID, d.Name, d.Created, s.pushTargets(d.DriverID)}
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) revokeDevice(c echo.Context) error {
	id := c.Param("driverId")
	s.held.drop(id)
	if err := s.cfg.Accounts.RevokeDevice(id); err != nil {
		return accountError(err)
	}

	s.cfg.Log.Info("device credential revoked", "driver", id, "by", c.Get(claimsKey).(*auth.Claims).Subject)
	return c.NoContent(http.StatusNoContent)
}
