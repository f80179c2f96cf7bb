package bridge

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// Event types of the dispatch work (docs/design.md §4). rescue:updated is ours:
// the design names the resolve and ack actions but no event for them.
const (
	EventRescueAlert    = "rescue:alert"
	EventRescueUpdated  = "rescue:updated"
	EventVTOOffer       = "vto:offer"
	EventVTOAccepted    = "vto:accepted"
	EventVTODeclined    = "vto:declined"
	EventVTOExpired     = "vto:expired"
	EventVTOConfirmed   = "vto:confirmed"
	EventRouteReassign  = "route:reassigned"
	EventDriverPresence = "driver:presence"
)

// Errors of dispatcher and driver actions; the API maps them to statuses.
var (
	ErrInvalid   = errors.New("invalid request")
	ErrConflict  = errors.New("conflict")
	ErrForbidden = errors.New("forbidden")
)

// Actions of a handheld's reply (and, accept and decline, of the API).
const (
	ActionAccept  = "accept"
	ActionDecline = "decline"
	ActionAck     = "ack"
)

// Rescue and offer states.
const (
	StateOpen         = "open"
	StateAcknowledged = "acknowledged"
	StateResolved     = "resolved"
	StateAccepted     = "accepted"
	StateDeclined     = "declined"
	StateExpired      = "expired"
	StateConfirmed    = "confirmed"
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

// Offer is a voluntary-time-off offer to a driver.
type Offer struct {
	VTOID      string    `json:"vtoId"`
	RouteID    string    `json:"routeId"`
	RouteCode  string    `json:"routeCode"`
	DriverID   string    `json:"driverId"`
	DriverName string    `json:"driverName"`
	Reason     string    `json:"reason"`
	OfferedAt  time.Time `json:"offeredAt"`
	ExpiresAt  time.Time `json:"expiresAt"`
	State      string    `json:"state"`
	By         string    `json:"by"` // the dispatcher who offered it
	AnsweredAt time.Time `json:"answeredAt,omitzero"`
	AnsweredBy string    `json:"answeredBy,omitempty"`
	PayrollRef string    `json:"payrollRef,omitempty"`
}

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

// OfferTTL is how long a VTO offer stays open.
const OfferTTL = 30 * time.Minute

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

// checkRescueLocked raises a rescue alert when route crossed from below
// RescueThreshold to it or beyond and is armed, and re-arms it once it has
// recovered.
func (d *Depot) checkRescueLocked(b *Batch, old, cur RouteStatus) error {
	last := d.rescues[d.rescueByRoute[cur.RouteID]]
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
	now := d.Now().UTC()
	id := "rsc_" + cur.RouteID + "_" + strconv.FormatUint(d.seq+1, 10)
	routes := make([]RouteStatus, 0, len(d.routes))
	for _, r := range d.routes {
		routes = append(routes, r)
	}
	alert := RescueAlert{
		RescueID: id,
		StruggleRoute: RescueRoute{RouteID: cur.RouteID, RouteCode: cur.RouteCode, DriverID: cur.DriverID,
			DriverName: cur.DriverName, BehindSchedule: cur.BehindSchedule, CurrentLat: cur.CurrentLat, CurrentLng: cur.CurrentLng},
		RescueDriver:     ChooseRescuer(cur, routes),
		TransferLocation: Point{Lat: cur.CurrentLat, Lng: cur.CurrentLng, Address: d.addresses[cur.RouteID]},
	}
	if rd := alert.RescueDriver; rd != nil {
		eta := now.Add(time.Duration(rd.DistanceKm / d.rescueSpeed() * float64(time.Hour))).Truncate(time.Second)
		alert.EstimatedArrival = &eta
	}
	env, raw, err := d.emitLocked(b, EventRescueAlert, PriorityCritical, alert)
	if err != nil {
		return err
	}
	r := &Rescue{RescueID: id, RouteID: cur.RouteID, Seq: env.Seq, State: StateOpen, Alert: env.Payload,
		CreatedAt: now, UpdatedAt: now}
	if alert.RescueDriver != nil {
		r.RescuerID = alert.RescueDriver.DriverID
		// The assignment goes to the rescuer's inbox; a persistent session
		// gets it when the handheld comes back.
		b.Messages = append(b.Messages, Message{Topic: d.Topics.Driver(r.RescuerID, KindInbox), Payload: raw})
	}
	d.rescues[id] = r
	d.rescueByRoute[cur.RouteID] = id
	b.Rescues = append(b.Rescues, *r)
	d.Log.Warn("rescue alert", "route", cur.RouteID, "behind", cur.BehindSchedule, "rescuer", r.RescuerID)
	return nil
}

func (d *Depot) rescueSpeed() float64 {
	if d.RescueSpeedKmh > 0 {
		return d.RescueSpeedKmh
	}
	return 30
}

// updateRescueLocked moves a rescue to state and emits rescue:updated.
func (d *Depot) updateRescueLocked(b *Batch, r *Rescue, state, by string) error {
	now := d.Now().UTC()
	r.State, r.By, r.UpdatedAt = state, by, now
	if _, _, err := d.emitLocked(b, EventRescueUpdated, PriorityHigh, RescueUpdated{
		RescueID: r.RescueID, RouteID: r.RouteID, State: state, By: by, At: now,
	}); err != nil {
		return err
	}
	b.Rescues = append(b.Rescues, *r)
	return nil
}

// ResolveRescue closes a rescue (a dispatcher's action).
func (d *Depot) ResolveRescue(id, by string) (Rescue, error) {
	var out Rescue
	err := d.act(func(b *Batch) error {
		r, ok := d.rescues[id]
		if !ok {
			return ErrNotFound
		}
		if r.State == StateResolved {
			return fmt.Errorf("%w: rescue %s is already resolved", ErrConflict, id)
		}
		if err := d.updateRescueLocked(b, r, StateResolved, by); err != nil {
			return err
		}
		out = *r
		return nil
	})
	return out, err
}

// Rescues returns the rescues not yet resolved, newest first.
func (d *Depot) Rescues() []Rescue {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.openRescuesLocked()
}

func (d *Depot) openRescuesLocked() []Rescue {
	out := []Rescue{}
	for _, r := range d.rescues {
		if r.State != StateResolved {
			out = append(out, *r)
		}
	}
	slices.SortFunc(out, func(a, b Rescue) int { return cmp.Compare(b.Seq, a.Seq) })
	return out
}

// Status is the offer with the time it has left as of now.
func (o Offer) Status(now time.Time) OfferStatus {
	return OfferStatus{
		VTOID: o.VTOID, RouteID: o.RouteID, RouteCode: o.RouteCode, DriverID: o.DriverID,
		DriverName: o.DriverName, Reason: o.Reason, OfferedAt: o.OfferedAt, ExpiresAt: o.ExpiresAt,
		RemainingSeconds: max(0, int(o.ExpiresAt.Sub(now).Seconds())), State: o.State,
	}
}

// OfferVTO offers voluntary time off to driverID (who drives routeID) for
// OfferTTL. The offer goes to the event log and to the driver's inbox, with
// an MQTT 5 message expiry equal to the time left.
func (d *Depot) OfferVTO(driverID, routeID, reason, by string) (Offer, error) {
	var out Offer
	if !ValidID(driverID) || !ValidID(routeID) {
		return out, fmt.Errorf("%w: driverId and routeId are required", ErrInvalid)
	}
	if len(reason) > 500 {
		return out, fmt.Errorf("%w: reason over 500 characters", ErrInvalid)
	}
	err := d.act(func(b *Batch) error {
		r, ok := d.routes[routeID]
		if !ok {
			return fmt.Errorf("%w: no route %s", ErrNotFound, routeID)
		}
		if r.DriverID != driverID {
			return fmt.Errorf("%w: route %s is driven by %s, not %s", ErrInvalid, routeID, r.DriverID, driverID)
		}
		for _, o := range d.offers {
			if o.DriverID == driverID && o.State == StateOpen {
				return fmt.Errorf("%w: %s already has an open offer (%s)", ErrConflict, driverID, o.VTOID)
			}
		}
		now := d.Now().UTC().Truncate(time.Second)
		o := &Offer{VTOID: "vto_" + strconv.FormatUint(d.seq+1, 10), RouteID: routeID, RouteCode: r.RouteCode,
			DriverID: driverID, DriverName: r.DriverName, Reason: reason, OfferedAt: now,
			ExpiresAt: now.Add(OfferTTL), State: StateOpen, By: by}
		_, raw, err := d.emitLocked(b, EventVTOOffer, PriorityHigh, o.Status(now))
		if err != nil {
			return err
		}
		d.offers[o.VTOID] = o
		b.Offers = append(b.Offers, *o)
		b.Messages = append(b.Messages, Message{Topic: d.Topics.Driver(driverID, KindInbox), Payload: raw,
			Expiry: uint32(OfferTTL.Seconds())})
		out = *o
		return nil
	})
	return out, err
}

// AnswerVTO records a driver's answer (accept or decline). The first valid
// answer wins; later ones get ErrConflict. driverID, when not empty, must be
// the offer's driver (an answer from a handheld).
func (d *Depot) AnswerVTO(vtoID, action, driverID, by string) (Offer, error) {
	var out Offer
	err := d.act(func(b *Batch) error {
		o, ok := d.offers[vtoID]
		if !ok {
			return fmt.Errorf("%w: no offer %s", ErrNotFound, vtoID)
		}
		if driverID != "" && driverID != o.DriverID {
			return fmt.Errorf("%w: offer %s is for %s", ErrForbidden, vtoID, o.DriverID)
		}
		if o.State != StateOpen {
			return fmt.Errorf("%w: offer %s is already %s", ErrConflict, vtoID, o.State)
		}
		now := d.Now().UTC()
		if !now.Before(o.ExpiresAt) {
			return fmt.Errorf("%w: offer %s has expired", ErrConflict, vtoID)
		}
		typ := EventVTOAccepted
		switch action {
		case ActionAccept:
			o.State = StateAccepted
		case ActionDecline:
			o.State, typ = StateDeclined, EventVTODeclined
		default:
			return fmt.Errorf("%w: action must be accept or decline", ErrInvalid)
		}
		o.AnsweredAt, o.AnsweredBy = now, by
		if _, _, err := d.emitLocked(b, typ, PriorityHigh, VTOAnswered{
			VTOID: o.VTOID, DriverID: o.DriverID, RouteID: o.RouteID, State: o.State, By: by, At: now,
		}); err != nil {
			return err
		}
		b.Offers = append(b.Offers, *o)
		out = *o
		return nil
	})
	return out, err
}

// ConfirmVTO records the payroll system's confirmation of an accepted offer.
func (d *Depot) ConfirmVTO(vtoID, payrollRef string) (Offer, error) {
	var out Offer
	err := d.act(func(b *Batch) error {
		o, ok := d.offers[vtoID]
		if !ok {
			return fmt.Errorf("%w: no offer %s", ErrNotFound, vtoID)
		}
		if o.State != StateAccepted {
			return fmt.Errorf("%w: offer %s is %s, not accepted", ErrConflict, vtoID, o.State)
		}
		o.State, o.PayrollRef = StateConfirmed, payrollRef
		if _, _, err := d.emitLocked(b, EventVTOConfirmed, PriorityNormal, VTOConfirmed{
			VTOID: o.VTOID, DriverID: o.DriverID, State: o.State, PayrollRef: payrollRef, At: d.Now().UTC(),
		}); err != nil {
			return err
		}
		b.Offers = append(b.Offers, *o)
		out = *o
		return nil
	})
	return out, err
}

// expireOffersLocked ends the open offers whose time is up.
func (d *Depot) expireOffersLocked(b *Batch, now time.Time) error {
	for _, o := range d.offers {
		if o.State != StateOpen || now.Before(o.ExpiresAt) {
			continue
		}
		o.State = StateExpired
		if _, _, err := d.emitLocked(b, EventVTOExpired, PriorityNormal, VTOExpired{
			VTOID: o.VTOID, DriverID: o.DriverID, RouteID: o.RouteID, State: o.State, ExpiredAt: o.ExpiresAt,
		}); err != nil {
			return err
		}
		b.Offers = append(b.Offers, *o)
	}
	return nil
}

// Offers returns the open offers with their time left, and the others of
// the last hour, newest first.
func (d *Depot) Offers() []OfferStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.offersLocked()
}

func (d *Depot) offersLocked() []OfferStatus {
	now := d.Now()
	var os []*Offer
	for _, o := range d.offers {
		if o.State == StateOpen || now.Sub(o.OfferedAt) < time.Hour+OfferTTL {
			os = append(os, o)
		}
	}
	slices.SortFunc(os, func(a, b *Offer) int { return b.OfferedAt.Compare(a.OfferedAt) })
	out := make([]OfferStatus, len(os))
	for i, o := range os {
		out[i] = o.Status(now)
	}
	return out
}

// resendOffersLocked queues the open offers of driver to its inbox again
// (a handheld that connects without its old session), with the time left.
func (d *Depot) resendOffersLocked(b *Batch, driver string) {
	now := d.Now()
	for _, o := range d.offers {
		if o.DriverID != driver || o.State != StateOpen || !now.Before(o.ExpiresAt) {
			continue
		}
		env := Envelope{ID: o.VTOID, Type: EventVTOOffer, Priority: PriorityHigh, Timestamp: now.UTC().Truncate(time.Millisecond)}
		env.Payload, _ = json.Marshal(o.Status(now))
		raw, _ := json.Marshal(env)
		b.Messages = append(b.Messages, Message{Topic: d.Topics.Driver(driver, KindInbox), Payload: raw,
			Expiry: uint32(max(1, o.ExpiresAt.Sub(now).Seconds()))})
	}
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

// Reply is what a handheld publishes on its reply topic.
type Reply struct {
	Ref    string `json:"ref"`
	Action string `json:"action"`
}

// HandleReply takes a handheld's reply: accept or decline a VTO offer, or
// ack a rescue assignment. Errors wrap ErrInvalid, ErrNotFound, ErrForbidden
// or ErrConflict, so the handheld can be told why.
func (d *Depot) HandleReply(driverID string, payload []byte) error {
	if len(payload) > 1024 {
		return fmt.Errorf("%w: reply over 1 KB", ErrInvalid)
	}
	var r Reply
	if err := json.Unmarshal(payload, &r); err != nil || r.Ref == "" {
		return fmt.Errorf("%w: want {\"ref\":…,\"action\":\"accept\"|\"decline\"|\"ack\"}", ErrInvalid)
	}
	switch r.Action {
	case ActionAccept, ActionDecline:
		_, err := d.AnswerVTO(r.Ref, r.Action, driverID, "driver:"+driverID)
		return err
	case ActionAck:
		return d.act(func(b *Batch) error {
			rs, ok := d.rescues[r.Ref]
			if !ok {
				return fmt.Errorf("%w: no rescue %s", ErrNotFound, r.Ref)
			}
			if rs.RescuerID != driverID {
				return fmt.Errorf("%w: rescue %s is assigned to %s", ErrForbidden, r.Ref, rs.RescuerID)
			}
			if rs.State != StateOpen {
				return fmt.Errorf("%w: rescue %s is already %s", ErrConflict, r.Ref, rs.State)
			}
			return d.updateRescueLocked(b, rs, StateAcknowledged, "driver:"+driverID)
		})
	}
	return fmt.Errorf("%w: action must be accept, decline or ack", ErrInvalid)
}
