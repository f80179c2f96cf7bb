package ui

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/depotcc/depot/push"
	"github.com/labstack/echo/v4"
)

// Push is the push outbox as the web side sees it: handhelds register
// where they can be woken; admins see the targets per device.
type Push interface {
	Register(driverID string, t push.Target) (push.Target, error)
	Unregister(driverID string, t push.Target) error
	Targets(driverID string) ([]push.Target, error)
	VAPIDPublicKey() string // "" when Web Push is off
	Kinds() []string        // target kinds that are pushed
}

func (s *Server) mountPush() {
	if s.cfg.Push == nil {
		return
	}
	s.e.GET("/api/v1/push/vapid", s.pushVAPID)
	s.e.POST("/api/v1/push/register", s.pushRegister)
	s.e.DELETE("/api/v1/push/register", s.pushUnregister)
}

// pushVAPID gives the driver app the key its subscription is made for.
func (s *Server) pushVAPID(c echo.Context) error {
	k := s.cfg.Push.VAPIDPublicKey()
	if k == "" {
		return echo.NewHTTPError(http.StatusNotFound, "web push is off on this depot")
	}
	return c.JSON(http.StatusOK, map[string]string{"publicKey": k})
}

type pushRequest struct {
	Kind         string             `json:"kind"`
	Token        string             `json:"token"`
	Subscription *push.Subscription `json:"subscription"`
}

// pushTarget reads a handheld's request: who it is (its device
// credential) and the target its body names.
func (s *Server) pushTarget(c echo.Context) (string, push.Target, error) {
	driver, err := s.device(c)
	if err != nil {
		return "", push.Target{}, err
	}
	var req pushRequest
	if err := bindJSON(c, &req); err != nil {
		return "", push.Target{}, err
	}
	return driver, push.Target{Kind: req.Kind, Token: req.Token, Subscription: req.Subscription}, nil
}

// pushRegister: POST /api/v1/push/register with the device credential and
// {"kind":"fcm","token"} or {"kind":"webpush","subscription"}.
func (s *Server) pushRegister(c echo.Context) error {
	driver, t, err := s.pushTarget(c)
	if err != nil {
		return err
	}
	t, err = s.cfg.Push.Register(driver, t)
	if errors.Is(err, push.ErrInvalidTarget) {
		return echo.NewHTTPError(http.StatusBadRequest, err.Error())
	}
	if err != nil {
		return err
	}
	s.cfg.Log.Info("push target registered", "driver", driver, "kind", t.Kind, "target", t.ID)
	return c.JSON(http.StatusCreated, map[string]any{"id": t.ID, "kind": t.Kind, "pushed": slices.Contains(s.cfg.Push.Kinds(), t.Kind)})
}

// pushUnregister: DELETE /api/v1/push/register, the same body (a
// subscription needs only its endpoint).
func (s *Server) pushUnregister(c echo.Context) error {
	driver, t, err := s.pushTarget(c)
	if err != nil {
		return err
	}
	if t.Kind != push.KindFCM && t.Kind != push.KindWebPush || t.Kind == push.KindWebPush && t.Subscription == nil {
		return echo.NewHTTPError(http.StatusBadRequest, `want {"kind":"fcm","token"} or {"kind":"webpush","subscription":{"endpoint"}}`)
	}
	if err := s.cfg.Push.Unregister(driver, t); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// pushTargetView is a target as admins see it: never its token or keys.
type pushTargetView struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	Service   string    `json:"service,omitempty"` // a Web Push endpoint's host
	Created   time.Time `json:"created"`
	LastOK    time.Time `json:"lastOk,omitzero"`
	LastError string    `json:"lastError,omitempty"`
}

func (s *Server) pushTargets(driver string) []pushTargetView {
	out := []pushTargetView{}
	if s.cfg.Push == nil {
		return out
	}
	ts, err := s.cfg.Push.Targets(driver)
	if err != nil {
		s.cfg.Log.Warn("push targets", "driver", driver, "err", err)
		return out
	}
	for _, t := range ts {
		v := pushTargetView{ID: t.ID, Kind: t.Kind, Created: t.Created, LastOK: t.LastOK, LastError: t.LastError}
		if t.Subscription != nil {
			if u, err := url.Parse(t.Subscription.Endpoint); err == nil {
				v.Service = u.Host
			}
		}
		out = append(out, v)
	}
	return out
}
