package ui

import (
	"errors"
	"net/http"

	"github.com/depotcc/depot/bridge"
	"github.com/depotcc/depot/ui/auth"
	"github.com/labstack/echo/v4"
)

// renew trades a valid login token for a fresh one of the same user and
// role, so that a wall screen stays signed in across the token's lifetime
// without a password. The user must still exist with that role: a token of
// a removed or re-roled user is not extended.
func (s *Server) renew(c echo.Context) error {
	cl, _ := c.Get(claimsKey).(*auth.Claims)
	if cl == nil {
		return echo.NewHTTPError(http.StatusUnauthorized, "login required")
	}
	u, err := s.cfg.Accounts.Store.User(cl.Subject)
	if errors.Is(err, bridge.ErrNotFound) || err == nil && u.Role != cl.Role {
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="depot", error="invalid_token"`)
		return echo.NewHTTPError(http.StatusUnauthorized, "this account no longer has that role; sign in again")
	}
	if err != nil {
		return err
	}
	tok, nc, err := s.cfg.Accounts.Issue(cl.Subject, cl.Role)
	if err != nil {
		return err
	}
	s.cfg.Log.Info("token renewed", "user", cl.Subject, "role", cl.Role, "remote", c.RealIP())
	return c.JSON(http.StatusOK, map[string]any{
		"token": tok, "expiresAt": nc.ExpiresAt.Time.UTC(), "role": nc.Role, "username": nc.Subject,
	})
}
