package bridge

import (
	"time"
)

// Status colours of a route (DESIGN.md §4).
const (
	Green  = "GREEN"
	Yellow = "YELLOW"
	Red    = "RED"
)

// RescueThreshold is the stops-behind count at which a route is RED and needs
// rescue.
const RescueThreshold = 6

// Color is the status colour for a route that is behind stops behind
// schedule: GREEN ≤1, YELLOW 2–5, RED ≥6.
func Color(behind int) string {
	switch {
	case behind >= RescueThreshold:
		return Red
	case behind >= 2:
		return Yellow
	}
	return Green
}

// RouteSnapshot is one route as the route-data feed (Cortex) reports it.
type RouteSnapshot struct {
	RouteID           string    `json:"routeId"`
	RouteCode         string    `json:"routeCode"`
	DriverID          string    `json:"driverId"`
	DriverName        string    `json:"driverName"`
	PerformanceTier   string    `json:"performanceTier"`
	TotalStops        int       `json:"totalStops"`
	CompletedStops    int       `json:"completedStops"`
	TotalPackages     int       `json:"totalPackages"`
	CompletedPackages int       `json:"completedPackages"`
	BehindSchedule    int       `json:"behindSchedule"`
	CurrentLat        float64   `json:"currentLat"`
	CurrentLng        float64   `json:"currentLng"`
	LastUpdated       time.Time `json:"lastUpdated"`
	// CurrentAddress, when the feed has it, names the place for a rescue
	// transfer (optional; not part of the route status).
	CurrentAddress string `json:"currentAddress,omitempty"`
}

// RouteStatus is the full state of one route as dashboards see it: the
// retained route topic and GET /api/v1/routes.
type RouteStatus struct {
	RouteID           string    `json:"routeId"`
	RouteCode         string    `json:"routeCode"`
	DriverID          string    `json:"driverId"`
	DriverName        string    `json:"driverName"`
	PerformanceTier   string    `json:"performanceTier,omitempty"`
	CompletedStops    int       `json:"completedStops"`
	TotalStops        int       `json:"totalStops"`
	CompletedPackages int       `json:"completedPackages"`
	TotalPackages     int       `json:"totalPackages"`
	CurrentLat        float64   `json:"currentLat"`
	CurrentLng        float64   `json:"currentLng"`
	BehindSchedule    int       `json:"behindSchedule"`
	StatusColor       string    `json:"statusColor"`
	LastUpdated       time.Time `json:"lastUpdated"`
}

// Status turns a feed snapshot into a route status.
func (s RouteSnapshot) Status() RouteStatus {
	return RouteStatus{
		RouteID: s.RouteID, RouteCode: s.RouteCode,
		DriverID: s.DriverID, DriverName: s.DriverName, PerformanceTier: s.PerformanceTier,
		CompletedStops: s.CompletedStops, TotalStops: s.TotalStops,
		CompletedPackages: s.CompletedPackages, TotalPackages: s.TotalPackages,
		CurrentLat: s.CurrentLat, CurrentLng: s.CurrentLng,
		BehindSchedule: s.BehindSchedule, StatusColor: Color(s.BehindSchedule),
		LastUpdated: s.LastUpdated.UTC(),
	}
}

// Delta is the payload of a route:update event: routeId plus only the fields
// that changed, keyed by their JSON names.
type Delta map[string]any

// Diff returns the delta from old to cur, or nil when nothing changed. A zero
// old (a route seen for the first time) yields every field.
func Diff(old, cur RouteStatus) Delta {
	d := Delta{}
	add := func(name string, changed bool, v any) {
		if changed {
			d[name] = v
		}
	}
	add("routeCode", old.RouteCode != cur.RouteCode, cur.RouteCode)
	add("driverId", old.DriverID != cur.DriverID, cur.DriverID)
	add("driverName", old.DriverName != cur.DriverName, cur.DriverName)
	add("performanceTier", old.PerformanceTier != cur.PerformanceTier, cur.PerformanceTier)
	add("completedStops", old.CompletedStops != cur.CompletedStops, cur.CompletedStops)
	add("totalStops", old.TotalStops != cur.TotalStops, cur.TotalStops)
	add("completedPackages", old.CompletedPackages != cur.CompletedPackages, cur.CompletedPackages)
	add("totalPackages", old.TotalPackages != cur.TotalPackages, cur.TotalPackages)
	add("currentLat", old.CurrentLat != cur.CurrentLat, cur.CurrentLat)
	add("currentLng", old.CurrentLng != cur.CurrentLng, cur.CurrentLng)
	add("behindSchedule", old.BehindSchedule != cur.BehindSchedule, cur.BehindSchedule)
	add("statusColor", old.StatusColor != cur.StatusColor, cur.StatusColor)
	add("lastUpdated", !old.LastUpdated.Equal(cur.LastUpdated), cur.LastUpdated)
	if len(d) == 0 {
		return nil
	}
	d["routeId"] = cur.RouteID
	return d
}
