// Reassignment: a dispatcher moves a route to another driver; the choice
// holds over the route feed until the feed reports it.

package bridge

import (
	"fmt"
	"time"
)

// Assignment overrides the feed's driver of a route after a dispatcher
// reassigned it, until the feed itself reports the new driver.
type Assignment struct {
	RouteID      string    `json:"routeId"`
	DriverID     string    `json:"driverId"`
	DriverName   string    `json:"driverName"`
	FromDriverID string    `json:"fromDriverId"`
	By           string    `json:"by"`
	At           time.Time `json:"at"`
}

// Reassign moves routeID to driver toDriverID (a dispatcher's action): a
// route:reassigned event, a route:update, a message in both drivers'
// inboxes; from then on the new driver's GPS moves the route. The
// assignment holds over the feed until the feed reports the new driver.
func (m *Machine) Reassign(b *Batch, routeID, toDriverID, by string) (RouteStatus, error) {
	if !ValidID(toDriverID) {
		return RouteStatus{}, fmt.Errorf("%w: toDriverId is required", ErrInvalid)
	}
	r, ok := m.routes[routeID]
	if !ok {
		return RouteStatus{}, fmt.Errorf("%w: no route %s", ErrNotFound, routeID)
	}
	if r.DriverID == toDriverID {
		return RouteStatus{}, fmt.Errorf("%w: %s already drives %s", ErrConflict, toDriverID, routeID)
	}
	from := r.DriverID
	cur := r
	cur.DriverID, cur.DriverName = toDriverID, m.driverNames[toDriverID]
	if f, ok := m.latest[toDriverID]; ok {
		cur.CurrentLat, cur.CurrentLng = f.Lat, f.Lng
	}
	_, raw, err := m.emit(b, EventRouteReassign, PriorityHigh, RouteReassigned{
		RouteID: routeID, RouteCode: r.RouteCode, FromDriverID: from, ToDriverID: toDriverID, By: by,
	})
	if err != nil {
		return RouteStatus{}, err
	}
	a := Assignment{RouteID: routeID, DriverID: toDriverID, DriverName: cur.DriverName, FromDriverID: from,
		By: by, At: m.Now().UTC()}
	m.noteReassigned(RouteReassignment{RouteReassigned: RouteReassigned{RouteID: routeID, RouteCode: r.RouteCode,
		FromDriverID: from, ToDriverID: toDriverID, By: by}, At: a.At})
	m.assignments[routeID] = a
	b.Assignments = append(b.Assignments, a)
	for _, drv := range []string{from, toDriverID} {
		if drv != "" {
			b.Messages = append(b.Messages, Message{Topic: m.Topics.Driver(drv, KindInbox), Payload: raw})
		}
	}
	if err := m.change(b, r, cur); err != nil {
		return RouteStatus{}, err
	}
	return cur, nil
}

// applyAssignment puts a dispatcher's reassignment over a feed snapshot,
// and forgets it once the feed agrees.
func (m *Machine) applyAssignment(b *Batch, cur *RouteStatus) {
	a, ok := m.assignments[cur.RouteID]
	if !ok {
		return
	}
	if cur.DriverID == a.DriverID {
		delete(m.assignments, cur.RouteID)
		b.Assignments = append(b.Assignments, Assignment{RouteID: cur.RouteID}) // empty driver: delete
		return
	}
	cur.DriverID, cur.DriverName = a.DriverID, a.DriverName
}
