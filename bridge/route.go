package bridge

import (
	"strconv"
	"time"
)

// Status colours of a route (docs/design.md §4).
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
	PerformanceTier   Tier      `json:"performanceTier"`
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
	PerformanceTier   Tier      `json:"performanceTier,omitempty"`
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
// that changed. It encodes itself (keys in sorted order, as a JSON object
// from a map would have them), so the hot path builds no map and boxes no
// value.
type Delta struct {
	Route   RouteStatus // the new status
	changed uint16      // one bit per field, in deltaFields order
}

// deltaFields are the JSON names of the route status fields a delta may
// carry, in sorted order; routeId is always carried.
var deltaFields = [...]string{"behindSchedule", "completedPackages", "completedStops",
	"currentLat", "currentLng", "driverId", "driverName", "lastUpdated",
	"performanceTier", "routeCode", "statusColor", "totalPackages", "totalStops"}

// Diff returns the delta from old to cur; it is Empty when nothing changed.
// A zero old (a route seen for the first time) yields every field.
func Diff(old, cur RouteStatus) Delta {
	d := Delta{Route: cur}
	for i, changed := range [len(deltaFields)]bool{
		old.BehindSchedule != cur.BehindSchedule,
		old.CompletedPackages != cur.CompletedPackages,
		old.CompletedStops != cur.CompletedStops,
		old.CurrentLat != cur.CurrentLat,
		old.CurrentLng != cur.CurrentLng,
		old.DriverID != cur.DriverID,
		old.DriverName != cur.DriverName,
		!old.LastUpdated.Equal(cur.LastUpdated),
		old.PerformanceTier != cur.PerformanceTier,
		old.RouteCode != cur.RouteCode,
		old.StatusColor != cur.StatusColor,
		old.TotalPackages != cur.TotalPackages,
		old.TotalStops != cur.TotalStops,
	} {
		if changed {
			d.changed |= 1 << i
		}
	}
	return d
}

// field returns field i of deltaFields.
func (r *RouteStatus) field(i int) any {
	switch deltaFields[i] {
	case "behindSchedule":
		return r.BehindSchedule
	case "completedPackages":
		return r.CompletedPackages
	case "completedStops":
		return r.CompletedStops
	case "currentLat":
		return r.CurrentLat
	case "currentLng":
		return r.CurrentLng
	case "driverId":
		return r.DriverID
	case "driverName":
		return r.DriverName
	case "lastUpdated":
		return r.LastUpdated
	case "performanceTier":
		return r.PerformanceTier
	case "routeCode":
		return r.RouteCode
	case "statusColor":
		return r.StatusColor
	case "totalPackages":
		return r.TotalPackages
	}
	return r.TotalStops
}

// appendField appends field i of deltaFields as JSON. It is a switch of its
// own rather than field's value boxed and switched on again: this one runs
// for every fix and allocates nothing.
func (r *RouteStatus) appendField(b []byte, i int) []byte {
	switch deltaFields[i] {
	case "behindSchedule":
		return strconv.AppendInt(b, int64(r.BehindSchedule), 10)
	case "completedPackages":
		return strconv.AppendInt(b, int64(r.CompletedPackages), 10)
	case "completedStops":
		return strconv.AppendInt(b, int64(r.CompletedStops), 10)
	case "currentLat":
		return appendJSONFloat(b, r.CurrentLat)
	case "currentLng":
		return appendJSONFloat(b, r.CurrentLng)
	case "driverId":
		return appendJSONString(b, r.DriverID)
	case "driverName":
		return appendJSONString(b, r.DriverName)
	case "lastUpdated":
		return appendJSONTime(b, r.LastUpdated)
	case "performanceTier":
		return appendJSONString(b, string(r.PerformanceTier))
	case "routeCode":
		return appendJSONString(b, r.RouteCode)
	case "statusColor":
		return appendJSONString(b, r.StatusColor)
	case "totalPackages":
		return strconv.AppendInt(b, int64(r.TotalPackages), 10)
	}
	return strconv.AppendInt(b, int64(r.TotalStops), 10)
}

// Empty reports whether nothing changed.
func (d Delta) Empty() bool { return d.changed == 0 }

// Map is the delta as a map of JSON names to values, routeId included
// (nil when empty).
func (d Delta) Map() map[string]any {
	if d.Empty() {
		return nil
	}
	m := map[string]any{"routeId": d.Route.RouteID}
	for i, name := range deltaFields {
		if d.changed&(1<<i) != 0 {
			m[name] = d.Route.field(i)
		}
	}
	return m
}

// MarshalJSON encodes the delta as its Map would be.
func (d Delta) MarshalJSON() ([]byte, error) { return d.AppendJSON(nil) }
