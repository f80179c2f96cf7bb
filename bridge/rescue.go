// Rescue: a route that falls RescueThreshold stops behind raises one
// rescue:alert naming the best rescuer (ChooseRescuer), re-armed once the
// route is back to RearmThreshold; the rescuer acks, a dispatcher resolves.

package bridge

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// RearmThreshold: after a rescue alert, a route must come back to this many
// stops behind or fewer before it can raise another.
const RearmThreshold = 3

// Rescue is one rescue alert and what became of it.
type Rescue struct {
	RescueID  string          `json:"rescueId"`
	RouteID   string          `json:"routeId"`
	Seq       uint64          `json:"seq"` // of the alert
	State     string          `json:"state"`
	RescuerID string          `json:"rescueDriverId,omitempty"`
	Alert     json.RawMessage `json:"alert"` // the rescue:alert payload
	CreatedAt time.Time       `json:"createdAt"`
	UpdatedAt time.Time       `json:"updatedAt"`
	By        string          `json:"by,omitempty"`
	// Recovered: the route has since come back to ≤ RearmThreshold behind,
	// so a new crossing raises a new alert.
	Recovered bool `json:"recovered"`
}

// Point is a position with an optional address.
type Point struct {
	Lat     float64 `json:"lat"`
	Lng     float64 `json:"lng"`
	Address string  `json:"address,omitempty"`
}

// RescueRoute and RescueDriver are the parts of a rescue:alert payload.
type RescueRoute struct {
	RouteID        string  `json:"routeId"`
	RouteCode      string  `json:"routeCode"`
	DriverID       string  `json:"driverId"`
	DriverName     string  `json:"driverName"`
	BehindSchedule int     `json:"behindSchedule"`
	CurrentLat     float64 `json:"currentLat"`
	CurrentLng     float64 `json:"currentLng"`
}

type RescueDriver struct {
	DriverID        string  `json:"driverId"`
	DriverName      string  `json:"driverName"`
	PerformanceTier Tier    `json:"performanceTier"`
	CurrentLat      float64 `json:"currentLat"`
	CurrentLng      float64 `json:"currentLng"`
	RouteID         string  `json:"routeId"`
	DistanceKm      float64 `json:"distanceKm"`
}

// RescueAlert is the rescue:alert payload (docs/design.md §4).
type RescueAlert struct {
	RescueID         string        `json:"rescueId"`
	StruggleRoute    RescueRoute   `json:"struggleRoute"`
	RescueDriver     *RescueDriver `json:"rescueDriver"` // nil: nobody can help
	EstimatedArrival *time.Time    `json:"estimatedArrival"`
	TransferLocation Point         `json:"transferLocation"`
}

// Tier is a driver's performance tier, as the route feed gives it. The
// feed may send others; they rank with STRUGGLING.
type Tier string

// The tiers the rescue rule knows.
const (
	TierTop        Tier = "TOP"
	TierAverage    Tier = "AVERAGE"
	TierStruggling Tier = "STRUGGLING"
)

// tierRank orders rescuers: TOP first, then AVERAGE (or none given).
func tierRank(t Tier) int {
	switch t {
	case TierTop:
		return 0
	case TierAverage, "":
		return 1
	}
	return 2
}

// haversineKm is the great-circle distance.
func haversineKm(lat1, lng1, lat2, lng2 float64) float64 {
	const r = 6371.0
	rad := math.Pi / 180
	dlat, dlng := (lat2-lat1)*rad, (lng2-lng1)*rad
	a := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dlng/2)*math.Sin(dlng/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(a)))
}

// ChooseRescuer picks who helps route from the others: never its own
// driver, never a driver 2 or more behind or of tier STRUGGLING; TOP before
// AVERAGE; among equals the nearest (straight line). nil when nobody fits.
func ChooseRescuer(route RouteStatus, all []RouteStatus) *RescueDriver {
	var best *RescueDriver
	bestRank := 0
	for _, r := range all {
		if r.RouteID == route.RouteID || r.DriverID == "" || r.DriverID == route.DriverID ||
			r.BehindSchedule >= 2 || r.PerformanceTier == TierStruggling || (r.CurrentLat == 0 && r.CurrentLng == 0) {
			continue
		}
		c := &RescueDriver{DriverID: r.DriverID, DriverName: r.DriverName, PerformanceTier: r.PerformanceTier,
			CurrentLat: r.CurrentLat, CurrentLng: r.CurrentLng, RouteID: r.RouteID,
			DistanceKm: math.Round(haversineKm(r.CurrentLat, r.CurrentLng, route.CurrentLat, route.CurrentLng)*100) / 100}
		rank := tierRank(r.PerformanceTier)
		if best == nil || rank < bestRank || rank == bestRank &&
			cmp.Or(cmp.Compare(c.DistanceKm, best.DistanceKm), cmp.Compare(c.DriverID, best.DriverID)) < 0 {
			best, bestRank = c, rank
		}
	}
	return best
}

// checkRescue raises a rescue alert when route crossed from below
// RescueThreshold to it or beyond and is armed, and re-arms it once it has
// recovered.
func (m *Machine) checkRescue(b *Batch, old, cur RouteStatus) error {
	last := m.rescues[m.rescueByRoute[cur.RouteID]]
	if last != nil && !last.Recovered && cur.BehindSchedule <= RearmThreshold {
		r := *last
		r.Recovered = true
		*last = r
		b.Rescues = append(b.Rescues, r)
	}
	armed := last == nil || last.Recovered
	if !armed || old.BehindSchedule >= RescueThreshold || cur.BehindSchedule < RescueThreshold {
		return nil
	}
	now := m.Now().UTC()
	id := "rsc_" + cur.RouteID + "_" + strconv.FormatUint(m.seq+1, 10)
	routes := make([]RouteStatus, 0, len(m.routes))
	for _, r := range m.routes {
		routes = append(routes, r)
	}
	alert := RescueAlert{
		RescueID: id,
		StruggleRoute: RescueRoute{RouteID: cur.RouteID, RouteCode: cur.RouteCode, DriverID: cur.DriverID,
			DriverName: cur.DriverName, BehindSchedule: cur.BehindSchedule, CurrentLat: cur.CurrentLat, CurrentLng: cur.CurrentLng},
		RescueDriver:     ChooseRescuer(cur, routes),
		TransferLocation: Point{Lat: cur.CurrentLat, Lng: cur.CurrentLng, Address: m.addresses[cur.RouteID]},
	}
	if rd := alert.RescueDriver; rd != nil {
		eta := now.Add(time.Duration(rd.DistanceKm / m.rescueSpeed() * float64(time.Hour))).Truncate(time.Second)
		alert.EstimatedArrival = &eta
	}
	env, raw, err := m.emit(b, EventRescueAlert, PriorityCritical, alert)
	if err != nil {
		return err
	}
	r := &Rescue{RescueID: id, RouteID: cur.RouteID, Seq: env.Seq, State: StateOpen, Alert: env.Payload,
		CreatedAt: now, UpdatedAt: now}
	if alert.RescueDriver != nil {
		r.RescuerID = alert.RescueDriver.DriverID
		// The assignment goes to the rescuer's inbox; a persistent session
		// gets it when the handheld comes back.
		b.Messages = append(b.Messages, Message{Topic: m.Topics.Driver(r.RescuerID, KindInbox), Payload: raw})
	}
	m.rescues[id] = r
	m.rescueByRoute[cur.RouteID] = id
	b.Rescues = append(b.Rescues, *r)
	return nil
}

func (m *Machine) rescueSpeed() float64 {
	if m.RescueSpeedKmh > 0 {
		return m.RescueSpeedKmh
	}
	return 30
}

// updateRescue moves a rescue to state and emits rescue:updated.
func (m *Machine) updateRescue(b *Batch, r *Rescue, state, by string) error {
	now := m.Now().UTC()
	r.State, r.By, r.UpdatedAt = state, by, now
	if _, _, err := m.emit(b, EventRescueUpdated, PriorityHigh, RescueUpdated{
		RescueID: r.RescueID, RouteID: r.RouteID, State: state, By: by, At: now,
	}); err != nil {
		return err
	}
	b.Rescues = append(b.Rescues, *r)
	return nil
}

// AckRescue is the rescuer's acknowledgement of its assignment.
func (m *Machine) AckRescue(b *Batch, id, driverID string) error {
	rs, ok := m.rescues[id]
	if !ok {
		return fmt.Errorf("%w: no rescue %s", ErrNotFound, id)
	}
	if rs.RescuerID != driverID {
		return fmt.Errorf("%w: rescue %s is assigned to %s", ErrForbidden, id, rs.RescuerID)
	}
	if rs.State != StateOpen {
		return fmt.Errorf("%w: rescue %s is already %s", ErrConflict, id, rs.State)
	}
	return m.updateRescue(b, rs, StateAcknowledged, "driver:"+driverID)
}

// ResolveRescue closes a rescue (a dispatcher's action).
func (m *Machine) ResolveRescue(b *Batch, id, by string) (Rescue, error) {
	r, ok := m.rescues[id]
	if !ok {
		return Rescue{}, ErrNotFound
	}
	if r.State == StateResolved {
		return Rescue{}, fmt.Errorf("%w: rescue %s is already resolved", ErrConflict, id)
	}
	if err := m.updateRescue(b, r, StateResolved, by); err != nil {
		return Rescue{}, err
	}
	return *r, nil
}

// Rescues returns the rescues not yet resolved, newest first.
func (m *Machine) Rescues() []Rescue {
	out := []Rescue{}
	for _, r := range m.rescues {
		if r.State != StateResolved {
			out = append(out, *r)
		}
	}
	slices.SortFunc(out, func(a, b Rescue) int { return cmp.Compare(b.Seq, a.Seq) })
	return out
}
