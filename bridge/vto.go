// VTO: voluntary time off offered to a driver for OfferTTL, answered by the
// driver (or a dispatcher), expired by the clock, confirmed by payroll.

package bridge

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
)

// OfferTerms are what a VTO offer says, fixed when it is made.
type OfferTerms struct {
	VTOID      string    `json:"vtoId"`
	RouteID    string    `json:"routeId"`
	RouteCode  string    `json:"routeCode"`
	DriverID   string    `json:"driverId"`
	DriverName string    `json:"driverName"`
	Reason     string    `json:"reason"`
	OfferedAt  time.Time `json:"offeredAt"`
	ExpiresAt  time.Time `json:"expiresAt"`
}

// Offer is a voluntary-time-off offer to a driver and what became of it
// (as stored).
type Offer struct {
	OfferTerms
	State      string    `json:"state"`
	By         string    `json:"by"` // the dispatcher who offered it
	AnsweredAt time.Time `json:"answeredAt,omitzero"`
	AnsweredBy string    `json:"answeredBy,omitempty"`
	PayrollRef string    `json:"payrollRef,omitempty"`
}

// OfferTTL is how long a VTO offer stays open.
const OfferTTL = 30 * time.Minute

// Status is the offer with the time it has left as of now.
func (o Offer) Status(now time.Time) OfferStatus {
	return OfferStatus{OfferTerms: o.OfferTerms, RemainingSeconds: max(0, int(o.ExpiresAt.Sub(now).Seconds())), State: o.State}
}

// OfferVTO offers voluntary time off to driverID (who drives routeID) for
// OfferTTL, by dispatcher by. The offer goes to the event log, with by
// (VTOOffered), and to the driver's inbox, without it, with an MQTT 5
// message expiry equal to the time left.
func (m *Machine) OfferVTO(b *Batch, driverID, routeID, reason, by string) (Offer, error) {
	if !ValidID(driverID) || !ValidID(routeID) {
		return Offer{}, fmt.Errorf("%w: driverId and routeId are required", ErrInvalid)
	}
	if len(reason) > 500 {
		return Offer{}, fmt.Errorf("%w: reason over 500 characters", ErrInvalid)
	}
	r, ok := m.routes[routeID]
	if !ok {
		return Offer{}, fmt.Errorf("%w: no route %s", ErrNotFound, routeID)
	}
	if r.DriverID != driverID {
		return Offer{}, fmt.Errorf("%w: route %s is driven by %s, not %s", ErrInvalid, routeID, r.DriverID, driverID)
	}
	for _, o := range m.offers {
		if o.DriverID == driverID && o.State == StateOpen {
			return Offer{}, fmt.Errorf("%w: %s already has an open offer (%s)", ErrConflict, driverID, o.VTOID)
		}
	}
	now := m.Now().UTC().Truncate(time.Second)
	o := &Offer{OfferTerms: OfferTerms{VTOID: "vto_" + strconv.FormatUint(m.seq+1, 10), RouteID: routeID, RouteCode: r.RouteCode,
		DriverID: driverID, DriverName: r.DriverName, Reason: reason, OfferedAt: now, ExpiresAt: now.Add(OfferTTL)},
		State: StateOpen, By: by}
	st := o.Status(now)
	env, _, err := m.emit(b, EventVTOOffer, PriorityHigh, VTOOffered{OfferStatus: st, By: by})
	if err != nil {
		return Offer{}, err
	}
	// The inbox's copy: the same envelope (seq, id, time), without By.
	env.Payload, err = json.Marshal(st)
	if err != nil {
		return Offer{}, err
	}
	inbox, err := json.Marshal(env)
	if err != nil {
		return Offer{}, err
	}
	m.offers[o.VTOID] = o
	b.Offers = append(b.Offers, *o)
	b.Messages = append(b.Messages, Message{Topic: m.Topics.Driver(driverID, KindInbox), Payload: inbox,
		Expiry: uint32(OfferTTL.Seconds())})
	return *o, nil
}

// AnswerVTO records a driver's answer (accept or decline). The first valid
// answer wins; later ones get ErrConflict. driverID, when not empty, must be
// the offer's driver (an answer from a handheld).
func (m *Machine) AnswerVTO(b *Batch, vtoID, action, driverID, by string) (Offer, error) {
	o, ok := m.offers[vtoID]
	if !ok {
		return Offer{}, fmt.Errorf("%w: no offer %s", ErrNotFound, vtoID)
	}
	if driverID != "" && driverID != o.DriverID {
		return Offer{}, fmt.Errorf("%w: offer %s is for %s", ErrForbidden, vtoID, o.DriverID)
	}
	if o.State != StateOpen {
		return Offer{}, fmt.Errorf("%w: offer %s is already %s", ErrConflict, vtoID, o.State)
	}
	now := m.Now().UTC()
	if !now.Before(o.ExpiresAt) {
		return Offer{}, fmt.Errorf("%w: offer %s has expired", ErrConflict, vtoID)
	}
	state, typ := StateAccepted, EventVTOAccepted
	switch action {
	case ActionAccept:
	case ActionDecline:
		state, typ = StateDeclined, EventVTODeclined
	default:
		return Offer{}, fmt.Errorf("%w: action must be accept or decline", ErrInvalid)
	}
	if _, _, err := m.emit(b, typ, PriorityHigh, VTOAnswered{
		VTOID: o.VTOID, DriverID: o.DriverID, RouteID: o.RouteID, State: state, By: by, At: now,
	}); err != nil {
		return Offer{}, err
	}
	o.State, o.AnsweredAt, o.AnsweredBy = state, now, by
	b.Offers = append(b.Offers, *o)
	return *o, nil
}

// ConfirmVTO records the payroll system's confirmation of an accepted offer.
func (m *Machine) ConfirmVTO(b *Batch, vtoID, payrollRef string) (Offer, error) {
	o, ok := m.offers[vtoID]
	if !ok {
		return Offer{}, fmt.Errorf("%w: no offer %s", ErrNotFound, vtoID)
	}
	if o.State != StateAccepted {
		return Offer{}, fmt.Errorf("%w: offer %s is %s, not accepted", ErrConflict, vtoID, o.State)
	}
	if _, _, err := m.emit(b, EventVTOConfirmed, PriorityNormal, VTOConfirmed{
		VTOID: o.VTOID, DriverID: o.DriverID, State: StateConfirmed, PayrollRef: payrollRef, At: m.Now().UTC(),
	}); err != nil {
		return Offer{}, err
	}
	o.State, o.PayrollRef = StateConfirmed, payrollRef
	b.Offers = append(b.Offers, *o)
	return *o, nil
}

// expireOffers ends the open offers whose time is up.
func (m *Machine) expireOffers(b *Batch, now time.Time) error {
	for _, id := range slices.Sorted(maps.Keys(m.offers)) { // events in a stable order
		o := m.offers[id]
		if o.State != StateOpen || now.Before(o.ExpiresAt) {
			continue
		}
		if _, _, err := m.emit(b, EventVTOExpired, PriorityNormal, VTOExpired{
			VTOID: o.VTOID, DriverID: o.DriverID, RouteID: o.RouteID, State: StateExpired, ExpiredAt: o.ExpiresAt,
		}); err != nil {
			return err
		}
		o.State = StateExpired
		b.Offers = append(b.Offers, *o)
	}
	return nil
}

// Offers returns the open offers with their time left, and the others of
// the last hour, newest first.
func (m *Machine) Offers() []OfferStatus {
	now := m.Now()
	var os []*Offer
	for _, o := range m.offers {
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

// resendOffers queues the open offers of driver to its inbox again (a
// handheld that connects without its old session), with the time left.
func (m *Machine) resendOffers(b *Batch, driver string) {
	now := m.Now()
	for _, id := range slices.Sorted(maps.Keys(m.offers)) {
		o := m.offers[id]
		if o.DriverID != driver || o.State != StateOpen || !now.Before(o.ExpiresAt) {
			continue
		}
		env := Envelope{ID: o.VTOID, Type: EventVTOOffer, Priority: PriorityHigh, Timestamp: now.UTC().Truncate(time.Millisecond)}
		env.Payload, _ = json.Marshal(o.Status(now))
		raw, _ := json.Marshal(env)
		b.Messages = append(b.Messages, Message{Topic: m.Topics.Driver(driver, KindInbox), Payload: raw,
			Expiry: uint32(max(1, o.ExpiresAt.Sub(now).Seconds()))})
	}
}
