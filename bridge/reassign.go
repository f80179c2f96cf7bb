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
func (d *Depot) Reassign(routeID, toDriverID, by string) (RouteStatus, error) {
	var out RouteStatus
	if !ValidID(toDriverID) {
		return out, fmt.Errorf("%w: toDriverId is required", ErrInvalid)
	}
	err := d.act(func(b *Batch) error {
		r, ok := d.routes[routeID]
		if !ok {
			return fmt.Errorf("%w: no route %s", ErrNotFound, routeID)
		}
		if r.DriverID == toDriverID {
			return fmt.Errorf("%w: %s already drives %s", ErrConflict, toDriverID, routeID)
		}
		from := r.DriverID
		cur := r
		cur.DriverID, cur.DriverName = toDriverID, d.driverNames[toDriverID]
		if f, ok := d.latest[toDriverID]; ok {
			cur.CurrentLat, cur.CurrentLng = f.Lat, f.Lng
		}
		a := Assignment{RouteID: routeID, DriverID: toDriverID, DriverName: cur.DriverName, FromDriverID: from,
			By: by, At: d.Now().UTC()}
		d.assignments[routeID] = a
		b.Assignments = append(b.Assignments, a)
		_, raw, err := d.emitLocked(b, EventRouteReassign, PriorityHigh, RouteReassigned{
			RouteID: routeID, RouteCode: r.RouteCode, FromDriverID: from, ToDriverID: toDriverID, By: by,
		})
		if err != nil {
			return err
		}
		for _, drv := range []string{from, toDriverID} {
			if drv != "" {
				b.Messages = append(b.Messages, Message{Topic: d.Topics.Driver(drv, KindInbox), Payload: raw})
			}
		}
		if err := d.changeLocked(b, r, cur); err != nil {
			return err
		}
		out = cur
		return nil
	})
	return out, err
}

// applyAssignmentLocked puts a dispatcher's reassignment over a feed
// snapshot, and forgets it once the feed agrees.
func (d *Depot) applyAssignmentLocked(b *Batch, cur *RouteStatus) {
	a, ok := d.assignments[cur.RouteID]
	if !ok {
		return
	}
	if cur.DriverID == a.DriverID {
		delete(d.assignments, cur.RouteID)
		b.Assignments = append(b.Assignments, Assignment{RouteID: cur.RouteID}) // empty driver: delete
		return
	}
	cur.DriverID, cur.DriverName = a.DriverID, a.DriverName
}
