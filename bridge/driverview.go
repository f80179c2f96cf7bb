package bridge

import (
	"cmp"
	"encoding/json"
	"slices"
	"time"
)

// DriverView is what one driver's own app shows (GET /api/v1/driver/state,
// docs/handhelds.md): the route they drive and what was asked of them in
// the last DriverViewWindow, newest first. The app starts from it after
// every load and reconnect, so nothing shown is lost or doubled.
type DriverView struct {
	DriverID      string              `json:"driverId"`
	DriverName    string              `json:"driverName"`
	Route         *RouteStatus        `json:"route"`
	Offers        []OfferStatus       `json:"offers"`
	Rescues       []DriverRescue      `json:"rescues"`
	Reassignments []RouteReassignment `json:"reassignments"`
}

// DriverRescue is a rescue a driver is asked to drive to.
type DriverRescue struct {
	RescueID  string          `json:"rescueId"`
	RouteID   string          `json:"routeId"`
	State     string          `json:"state"`
	Alert     json.RawMessage `json:"alert"` // the rescue:alert payload
	CreatedAt time.Time       `json:"createdAt"`
	UpdatedAt time.Time       `json:"updatedAt"`
}

// RouteReassignment is a route moved to or from a driver.
type RouteReassignment struct {
	RouteReassigned
	At time.Time `json:"at"`
}

// DriverViewWindow is how far back a driver's app looks.
const DriverViewWindow = 12 * time.Hour

// DriverView returns driverID's view as of now.
func (m *Machine) DriverView(driverID string) DriverView {
	now := m.Now()
	since := now.Add(-DriverViewWindow)
	v := DriverView{DriverID: driverID, DriverName: m.driverNames[driverID],
		Offers: []OfferStatus{}, Rescues: []DriverRescue{}, Reassignments: []RouteReassignment{}}
	if id, ok := m.byDriver[driverID]; ok {
		if r, ok := m.routes[id]; ok {
			v.Route = &r
		}
	}
	for _, o := range m.offers {
		if o.DriverID == driverID && o.OfferedAt.After(since) {
			v.Offers = append(v.Offers, o.Status(now))
		}
	}
	slices.SortFunc(v.Offers, func(a, b OfferStatus) int { return b.OfferedAt.Compare(a.OfferedAt) })
	for _, r := range m.rescues {
		if r.RescuerID == driverID && r.CreatedAt.After(since) {
			v.Rescues = append(v.Rescues, DriverRescue{RescueID: r.RescueID, RouteID: r.RouteID, State: r.State,
				Alert: r.Alert, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt})
		}
	}
	slices.SortFunc(v.Rescues, func(a, b DriverRescue) int { return b.CreatedAt.Compare(a.CreatedAt) })
	for _, a := range m.reassigned {
		if (a.ToDriverID == driverID || a.FromDriverID == driverID) && a.At.After(since) {
			v.Reassignments = append(v.Reassignments, a)
		}
	}
	slices.SortFunc(v.Reassignments, func(a, b RouteReassignment) int {
		return cmp.Or(b.At.Compare(a.At), cmp.Compare(a.RouteID, b.RouteID))
	})
	return v
}

// maxReassigned bounds the reassignments kept for drivers' apps.
const maxReassigned = 1000

// noteReassigned keeps a reassignment for the drivers' apps. The
// assignment itself is dropped once the feed agrees with it, within a
// minute; a driver whose app was closed must still see it. Kept in memory:
// after a restart an app shows the reassignments made since.
func (m *Machine) noteReassigned(r RouteReassignment) {
	since := r.At.Add(-DriverViewWindow)
	keep := m.reassigned[:0]
	for _, x := range m.reassigned {
		if x.At.After(since) {
			keep = append(keep, x)
		}
	}
	m.reassigned = append(keep, r)
	if n := len(m.reassigned); n > maxReassigned {
		m.reassigned = slices.Delete(m.reassigned, 0, n-maxReassigned)
	}
}
