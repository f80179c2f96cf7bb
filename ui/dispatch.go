package ui

import (
	"errors"
	"net/http"

	"github.com/depotcc/depot/bridge"
	"github.com/depotcc/depot/ui/auth"
	"github.com/labstack/echo/v4"
)

// Dispatch is what dispatchers act on.
type Dispatch interface {
	Snapshot() bridge.Snapshot
	Offers() []bridge.OfferStatus
	OfferVTO(driverID, routeID, reason, by string) (bridge.Offer, error)
	AnswerVTO(vtoID, action, driverID, by string) (bridge.Offer, error)
	ConfirmVTO(vtoID, payrollRef string) (bridge.Offer, error)
	Rescues() []bridge.Rescue
	ResolveRescue(id, by string) (bridge.Rescue, error)
	Reassign(routeID, toDriverID, by string) (bridge.RouteStatus, error)
}

// domainError maps the domain's errors to statuses with their message.
func domainError(err error) error {
	code := 0
	switch {
	case errors.Is(err, bridge.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, bridge.ErrInvalid):
		code = http.StatusBadRequest
	case errors.Is(err, bridge.ErrConflict):
		code = http.StatusConflict
	case errors.Is(err, bridge.ErrForbidden):
		code = http.StatusForbidden
	default:
		return err
	}
	return echo.NewHTTPError(code, err.Error())
}

func who(c echo.Context) string {
	cl, _ := c.Get(claimsKey).(*auth.Claims)
	if cl == nil {
		return ""
	}
	return cl.Subject
}

// state is the dashboard's starting point: every route, open rescue and
// offer, presence and feed health, and the seq they are consistent with.
func (s *Server) state(c echo.Context) error {
	return c.JSON(http.StatusOK, s.cfg.Dispatch.Snapshot())
}

func (s *Server) listOffers(c echo.Context) error {
	return c.JSON(http.StatusOK, s.cfg.Dispatch.Offers())
}

func (s *Server) offerVTO(c echo.Context) error {
	var req struct {
		DriverID string `json:"driverId"`
		RouteID  string `json:"routeId"`
		Reason   string `json:"reason"`
	}
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	o, err := s.cfg.Dispatch.OfferVTO(req.DriverID, req.RouteID, req.Reason, who(c))
	if err != nil {
		return domainError(err)
	}
	return c.JSON(http.StatusCreated, offerView(o, s.cfg.Now()))
}

func offerView(o bridge.Offer, now interface{ Unix() int64 }) map[string]any {
	rem := o.ExpiresAt.Unix() - now.Unix()
	return map[string]any{"vtoId": o.VTOID, "routeId": o.RouteID, "routeCode": o.RouteCode, "driverId": o.DriverID,
		"driverName": o.DriverName, "reason": o.Reason, "offeredAt": o.OfferedAt, "expiresAt": o.ExpiresAt,
		"remainingSeconds": max(0, rem), "state": o.State}
}

func (s *Server) answerVTO(action string) echo.HandlerFunc {
	return func(c echo.Context) error {
		o, err := s.cfg.Dispatch.AnswerVTO(c.Param("id"), action, "", "dispatcher:"+who(c))
		if err != nil {
			return domainError(err)
		}
		return c.JSON(http.StatusOK, offerView(o, s.cfg.Now()))
	}
}

func (s *Server) listRescues(c echo.Context) error {
	return c.JSON(http.StatusOK, s.cfg.Dispatch.Rescues())
}

func (s *Server) resolveRescue(c echo.Context) error {
	r, err := s.cfg.Dispatch.ResolveRescue(c.Param("id"), who(c))
	if err != nil {
		return domainError(err)
	}
	return c.JSON(http.StatusOK, r)
}

func (s *Server) reassign(c echo.Context) error {
	var req struct {
		ToDriverID string `json:"toDriverId"`
	}
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	r, err := s.cfg.Dispatch.Reassign(c.Param("id"), req.ToDriverID, who(c))
	if err != nil {
		return domainError(err)
	}
	return c.JSON(http.StatusOK, r)
}
