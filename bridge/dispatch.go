// The words the dispatch rules (rescue.go, vto.go, reassign.go,
// presence.go) share: event types, errors, reply actions and states.

package bridge

import (
	"errors"
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
