package bridge

import "time"

// One struct per event payload, used by the domain, the API (/state, /vto,
// /rescues) and the encoders alike. route:update carries a Delta
// (route.go) and rescue:alert a RescueAlert (dispatch.go).

// RescueUpdated is the payload of rescue:updated.
type RescueUpdated struct {
	RescueID string    `json:"rescueId"`
	RouteID  string    `json:"routeId"`
	State    string    `json:"state"`
	By       string    `json:"by"`
	At       time.Time `json:"at"`
}

// OfferStatus is an offer with the time it has left: the payload of
// vto:offer, an entry of GET /api/v1/vto and of the snapshot's offers.
type OfferStatus struct {
	OfferTerms
	RemainingSeconds int    `json:"remainingSeconds"`
	State            string `json:"state"`
}

// VTOOffered is the payload of vto:offer in the event log and on
// depot/{d}/events: the offer, and who offered it (the dispatcher's user
// name; empty in logs written before it was recorded). The copy of the
// event that goes to the driver's inbox carries the OfferStatus alone: a
// dispatcher's login name is not the handheld's to know.
type VTOOffered struct {
	OfferStatus
	By string `json:"by,omitempty"`
}

// VTOAnswered is the payload of vto:accepted and vto:declined.
type VTOAnswered struct {
	VTOID    string    `json:"vtoId"`
	DriverID string    `json:"driverId"`
	RouteID  string    `json:"routeId"`
	State    string    `json:"state"`
	By       string    `json:"by"`
	At       time.Time `json:"at"`
}

// VTOConfirmed is the payload of vto:confirmed (the payroll system's word).
type VTOConfirmed struct {
	VTOID      string    `json:"vtoId"`
	DriverID   string    `json:"driverId"`
	State      string    `json:"state"`
	PayrollRef string    `json:"payrollRef"`
	At         time.Time `json:"at"`
}

// VTOExpired is the payload of vto:expired.
type VTOExpired struct {
	VTOID     string    `json:"vtoId"`
	DriverID  string    `json:"driverId"`
	RouteID   string    `json:"routeId"`
	State     string    `json:"state"`
	ExpiredAt time.Time `json:"expiredAt"`
}

// RouteReassigned is the payload of route:reassigned, also sent to both
// drivers' inboxes.
type RouteReassigned struct {
	RouteID      string `json:"routeId"`
	RouteCode    string `json:"routeCode"`
	FromDriverID string `json:"fromDriverId"`
	ToDriverID   string `json:"toDriverId"`
	By           string `json:"by"`
}

// DriverPresence is the payload of driver:presence.
type DriverPresence struct {
	DriverID string    `json:"driverId"`
	State    string    `json:"state"`
	Since    time.Time `json:"since"`
}

// PresenceMessage is what the server retains on a driver's presence topic
// (the schema ParsePresence accepts from handhelds, with ts set).
type PresenceMessage struct {
	State string `json:"state"`
	TS    int64  `json:"ts"` // Unix ms
}

// SystemStatus is the payload of system:status and the retained heartbeat:
// the domain's figures since the previous heartbeat, and AppStatus.
type SystemStatus struct {
	TS           time.Time   `json:"ts"`
	EventsPerS   float64     `json:"eventsPerS"`
	FixesPerS    float64     `json:"fixesPerS"`
	FixesRefused int64       `json:"fixesRefused"`
	LatencyMs    Latency     `json:"latencyMs"` // fix received → its event published
	Feed         FeedHealth  `json:"feed"`
	LastSeq      uint64      `json:"lastSeq"`
	CommitErrors int64       `json:"commitErrors"`
	Store        StoreHealth `json:"store"`
	AppStatus
}

// Latency is a set of percentiles in ms.
type Latency struct {
	P50     float64 `json:"p50"`
	P99     float64 `json:"p99"`
	Max     float64 `json:"max"`
	Samples int     `json:"samples"`
}

// AppStatus is what the appliance knows beyond the domain, for the
// heartbeat.
type AppStatus struct {
	Connections Connections  `json:"connections"`
	MQTTRefused MQTTRefusals `json:"mqttRefused"`
	UptimeS     int64        `json:"uptimeS"`
	Version     string       `json:"version"`
	// Push is the push outbox's health (package push's Health): last
	// success, queued, failing targets. Absent when push is off.
	Push any `json:"push,omitempty"`
	// Upstream is the fleet forwarder's health (bridge/upstream's
	// Health): connected, last ack, events behind. Absent when off.
	Upstream any `json:"upstream,omitempty"`
}

// Connections counts the connected MQTT clients.
type Connections struct {
	Handhelds  int `json:"handhelds"`
	Dashboards int `json:"dashboards"`
}

// MQTTRefusals counts the broker's refusals, by kind.
type MQTTRefusals struct {
	Connect int64 `json:"connect"`
	Publish int64 `json:"publish"`
	Read    int64 `json:"read"`
}
