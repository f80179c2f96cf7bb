package hq

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/depotcc/depot/bridge"
)

// Bounds on what the stream can make an instance hold: anyone with a
// depot's NATS credentials can publish on its subjects, and a picture kept
// in memory must not grow with what they send.
const (
	maxMsgBytes       = 64 << 10
	maxDepots         = 1000
	maxRoutesPerDepot = 2000
	maxItemsPerDepot  = 2000 // rescues, offers, drivers' presence and devices, each
)

// Fleet is the picture one hq instance holds, built from the stream: the
// last state of each route, then every event since the window began. Seq
// is the stream sequence it is consistent with: every event up to it has
// been applied, so a browser that loads it and then streams from Seq
// misses nothing and sees nothing twice.
type Fleet struct {
	mu     sync.RWMutex
	seq    uint64
	depots map[string]*depotView
	ready  bool
}

type depotView struct {
	id          string
	routes      map[string]*routeView
	rescues     map[string]*rescueView
	offers      map[string]map[string]any
	offerOrder  []string
	presence    map[string]json.RawMessage
	devices     map[string]json.RawMessage
	lastHeard   time.Time // stream time of its newest event
	lastEventAt time.Time // that event's own time
	lastSeq     uint64    // that event's depot seq
}

type routeView struct {
	status bridge.RouteStatus
	at     uint64 // stream sequence of what it reflects
}

type rescueView struct {
	RescueID  string          `json:"rescueId"`
	RouteID   string          `json:"routeId"`
	State     string          `json:"state"`
	Alert     json.RawMessage `json:"alert"`
	CreatedAt time.Time       `json:"createdAt"`
}

func newFleet() *Fleet { return &Fleet{depots: map[string]*depotView{}} }

// depotOf reads the depot out of depot.<depot>.events or
// depot.<depot>.routes.<route>.
func depotOf(subject string) (depot, kind, rest string, ok bool) {
	parts := strings.SplitN(subject, ".", 4)
	if len(parts) < 3 || parts[0] != "depot" || !bridge.ValidID(parts[1]) {
		return "", "", "", false
	}
	if len(parts) == 4 {
		rest = parts[3]
	}
	return parts[1], parts[2], rest, true
}

func (f *Fleet) depot(id string) *depotView {
	d := f.depots[id]
	if d == nil && len(f.depots) < maxDepots {
		d = &depotView{id: id, routes: map[string]*routeView{}, rescues: map[string]*rescueView{},
			offers: map[string]map[string]any{}, presence: map[string]json.RawMessage{}, devices: map[string]json.RawMessage{}}
		f.depots[id] = d
	}
	return d
}

// setRoute takes a route's state from its subject (the last message of
// depot.<d>.routes.<r>).
func (f *Fleet) setRoute(subject string, seq uint64, data []byte) {
	depot, kind, route, ok := depotOf(subject)
	if !ok || kind != "routes" || !bridge.ValidID(route) || len(data) > maxMsgBytes {
		return
	}
	var st bridge.RouteStatus
	if json.Unmarshal(data, &st) != nil || st.RouteID != route {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.depot(depot)
	if d == nil {
		return
	}
	if r := d.routes[route]; r != nil && r.at > seq {
		return
	}
	if d.routes[route] == nil && len(d.routes) >= maxRoutesPerDepot {
		return
	}
	d.routes[route] = &routeView{status: st, at: seq}
}

// envelope is what the hq reads of a depot's event.
type envelope struct {
	Seq       uint64          `json:"seq"`
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Payload   json.RawMessage `json:"payload"`
}

// validEvent says whether data can go to a browser as one SSE data line:
// one JSON object, no newline (a line break would end the field and let a
// publisher write SSE fields of its own).
func validEvent(data []byte) bool {
	return len(data) <= maxMsgBytes && bytes.IndexAny(data, "\r\n") < 0 && json.Valid(data) &&
		len(data) > 0 && data[0] == '{'
}

// apply takes one event of depot.<d>.events at stream sequence seq.
func (f *Fleet) apply(subject string, seq uint64, at time.Time, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if seq > f.seq {
		f.seq = seq
	}
	depot, kind, _, ok := depotOf(subject)
	if !ok || kind != "events" || !validEvent(data) {
		return
	}
	var env envelope
	if json.Unmarshal(data, &env) != nil {
		return
	}
	d := f.depot(depot)
	if d == nil {
		return
	}
	if env.Seq > d.lastSeq {
		d.lastSeq, d.lastEventAt = env.Seq, env.Timestamp
	}
	if at.After(d.lastHeard) {
		d.lastHeard = at
	}
	d.apply(env, seq)
}

func (d *depotView) apply(env envelope, seq uint64) {
	var p struct {
		RouteID  string `json:"routeId"`
		RescueID string `json:"rescueId"`
		VTOID    string `json:"vtoId"`
		DriverID string `json:"driverId"`
		State    string `json:"state"`
		Struggle struct {
			RouteID string `json:"routeId"`
		} `json:"struggleRoute"`
	}
	if json.Unmarshal(env.Payload, &p) != nil {
		return
	}
	switch env.Type {
	case bridge.EventRouteUpdate:
		if !bridge.ValidID(p.RouteID) {
			return
		}
		r := d.routes[p.RouteID]
		if r == nil {
			if len(d.routes) >= maxRoutesPerDepot {
				return
			}
			r = &routeView{status: bridge.RouteStatus{RouteID: p.RouteID}}
			d.routes[p.RouteID] = r
		}
		if r.at > seq {
			return // the route's state is newer than this delta
		}
		st := r.status
		if json.Unmarshal(env.Payload, &st) == nil && st.RouteID == p.RouteID {
			r.status, r.at = st, seq
		}
	case bridge.EventRescueAlert:
		if bridge.ValidID(p.RescueID) && (d.rescues[p.RescueID] != nil || len(d.rescues) < maxItemsPerDepot) {
			d.rescues[p.RescueID] = &rescueView{RescueID: p.RescueID, RouteID: p.Struggle.RouteID, State: "open",
				Alert: env.Payload, CreatedAt: env.Timestamp}
		}
	case bridge.EventRescueUpdated:
		if r := d.rescues[p.RescueID]; r != nil {
			if p.State == "resolved" {
				delete(d.rescues, p.RescueID)
			} else if p.State != "" {
				r.State = p.State
			}
		}
	case bridge.EventVTOOffer:
		var o map[string]any
		if !bridge.ValidID(p.VTOID) || json.Unmarshal(env.Payload, &o) != nil {
			return
		}
		if _, seen := d.offers[p.VTOID]; !seen {
			d.offerOrder = append(d.offerOrder, p.VTOID)
		}
		d.offers[p.VTOID] = o
		d.trimOffers()
	case bridge.EventVTOAccepted, bridge.EventVTODeclined, bridge.EventVTOExpired, bridge.EventVTOConfirmed:
		if o := d.offers[p.VTOID]; o != nil && p.State != "" {
			o["state"] = p.State
		}
	case bridge.EventDriverPresence:
		d.setDriver(d.presence, p.DriverID, env.Payload)
	case bridge.EventDriverDevice:
		d.setDriver(d.devices, p.DriverID, env.Payload)
	}
}

func (d *depotView) setDriver(m map[string]json.RawMessage, id string, payload json.RawMessage) {
	if bridge.ValidID(id) && (m[id] != nil || len(m) < maxItemsPerDepot) {
		m[id] = payload
	}
}

// trimOffers keeps the newest offers: the open ones always, answered ones
// while there is room.
func (d *depotView) trimOffers() {
	for len(d.offerOrder) > maxItemsPerDepot {
		drop := -1
		for i, id := range d.offerOrder {
			if d.offers[id]["state"] != "open" {
				drop = i
				break
			}
		}
		if drop < 0 {
			drop = 0
		}
		delete(d.offers, d.offerOrder[drop])
		d.offerOrder = append(d.offerOrder[:drop], d.offerOrder[drop+1:]...)
	}
}

// caughtUp says the picture holds everything of the stream up to seq (the
// stream's last message when the instance read it), events or not.
func (f *Fleet) caughtUp(seq uint64) {
	f.mu.Lock()
	if seq > f.seq {
		f.seq = seq
	}
	f.ready = true
	f.mu.Unlock()
}

// DepotJSON is one depot in GET /api/v1/fleet.
type DepotJSON struct {
	Depot       string                     `json:"depot"`
	LastHeard   time.Time                  `json:"lastHeard,omitzero"`
	LastEventAt time.Time                  `json:"lastEventAt,omitzero"`
	LastSeq     uint64                     `json:"lastSeq"`
	Counts      map[string]int             `json:"counts"`
	Routes      []bridge.RouteStatus       `json:"routes"`
	Rescues     []*rescueView              `json:"rescues"`
	Offers      []map[string]any           `json:"offers"`
	Presence    map[string]json.RawMessage `json:"presence"`
	Devices     map[string]json.RawMessage `json:"devices"`
}

// Snapshot is the picture now, of every depot or of one.
func (f *Fleet) Snapshot(only string) (seq uint64, ready bool, depots []DepotJSON) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	depots = []DepotJSON{}
	for id, d := range f.depots {
		if only != "" && id != only {
			continue
		}
		j := DepotJSON{Depot: id, LastHeard: d.lastHeard, LastEventAt: d.lastEventAt, LastSeq: d.lastSeq,
			Counts: map[string]int{"GREEN": 0, "YELLOW": 0, "RED": 0, "UNKNOWN": 0}, Routes: make([]bridge.RouteStatus, 0, len(d.routes)),
			Rescues: make([]*rescueView, 0, len(d.rescues)), Offers: make([]map[string]any, 0, len(d.offers)),
			Presence: make(map[string]json.RawMessage, len(d.presence)), Devices: make(map[string]json.RawMessage, len(d.devices))}
		for _, r := range d.routes {
			j.Routes = append(j.Routes, r.status)
			switch c := r.status.StatusColor; c {
			case "GREEN", "YELLOW", "RED":
				j.Counts[c]++
			default:
				j.Counts["UNKNOWN"]++
			}
		}
		sort.Slice(j.Routes, func(a, b int) bool { return j.Routes[a].RouteID < j.Routes[b].RouteID })
		for _, r := range d.rescues {
			c := *r
			j.Rescues = append(j.Rescues, &c)
		}
		sort.Slice(j.Rescues, func(a, b int) bool { return j.Rescues[a].RescueID < j.Rescues[b].RescueID })
		for _, id := range d.offerOrder {
			o := make(map[string]any, len(d.offers[id]))
			for k, v := range d.offers[id] {
				o[k] = v
			}
			j.Offers = append(j.Offers, o)
		}
		for k, v := range d.presence {
			j.Presence[k] = v
		}
		for k, v := range d.devices {
			j.Devices[k] = v
		}
		depots = append(depots, j)
	}
	sort.Slice(depots, func(a, b int) bool { return depots[a].Depot < depots[b].Depot })
	return f.seq, f.ready, depots
}

// Seq is the stream sequence the picture is consistent with.
func (f *Fleet) Seq() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.seq
}

// newest is the stream time of the newest event the instance applied.
func (f *Fleet) newest() time.Time {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var t time.Time
	for _, d := range f.depots {
		if d.lastHeard.After(t) {
			t = d.lastHeard
		}
	}
	return t
}

// reset forgets everything, for a reload from the stream.
func (f *Fleet) reset() {
	f.mu.Lock()
	f.seq, f.ready, f.depots = 0, false, map[string]*depotView{}
	f.mu.Unlock()
}
