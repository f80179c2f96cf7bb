// The depot's rules as a state machine. A command (a fix, a feed cycle, a
// VTO offer or answer, a reassignment, a rescue's ack or resolution, a
// handheld's connect or disconnect, a clock tick, a heartbeat) changes the
// state and writes what happened into a Batch: typed events in seq order,
// the records to store and the messages to publish. The machine starts no
// goroutine, owns no channel or lock, touches no disk and reads the time
// only from its Now, so its rules are tested by table (machine_test.go).
// Depot (depot.go) runs it behind one lock and hands its batches to the
// pipeline (pipeline.go).
//
// A command refused for its input or the state (ErrInvalid, ErrNotFound,
// ErrConflict, ErrForbidden) changes nothing: each checks before it
// writes. A command can also fail to encode an event, which input that
// passed ParseFix or ParseSnapshots cannot cause (JSON has no NaN); the
// state it leaves is then not rolled back.

package bridge

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Machine holds the live state of one depot and its rules.
type Machine struct {
	Topics Topics           // the depot's topics, for the messages it addresses
	Now    func() time.Time // the clock every rule reads; time.Now when nil
	// RescueSpeedKmh is the average speed used to estimate a rescuer's
	// arrival (straight line); 30 when zero.
	RescueSpeedKmh float64
	// SilentAfter: a driver on an unfinished route who sent no fix for this
	// long is reported silent; 5 minutes when zero.
	SilentAfter time.Duration

	routes        map[string]RouteStatus
	byDriver      map[string]string // driver id -> route id
	latest        map[string]Fix    // each driver's newest fix
	seq           uint64            // of the newest event
	feed          FeedHealth
	rescues       map[string]*Rescue
	rescueByRoute map[string]string // route id -> its latest rescue id
	offers        map[string]*Offer
	assignments   map[string]Assignment
	driverNames   map[string]string
	addresses     map[string]string // route id -> address of its position, when the feed has one
	presence      map[string]*presence
	devices       map[string]DeviceHealth // each driver's, from its newest fix
	reassigned    []RouteReassignment     // of the last DriverViewWindow, oldest first, for drivers' apps
}

// Event is one event as the machine made it: its seq, type and typed
// payload (one of the structs of payloads.go, or a Delta), and its encoded
// envelope, which is what is stored and published. Events read back from
// the store have only Seq and Raw.
type Event struct {
	Seq     uint64
	Type    string
	Payload any
	Raw     []byte
	// At is the envelope's timestamp (Raw's "timestamp"), so the store
	// need not parse Raw to learn it.
	At time.Time
}

// Load sets the machine's state to what the store kept. Event numbers go
// on from st.LastSeq: they are the machine's, because rescue and offer ids
// are made from them and a restart must not reuse one.
func (m *Machine) Load(st State) {
	if m.Now == nil {
		m.Now = time.Now
	}
	m.routes = make(map[string]RouteStatus, len(st.Routes))
	m.byDriver = make(map[string]string, len(st.Routes))
	m.latest = make(map[string]Fix, len(st.Latest))
	m.driverNames, m.addresses, m.presence = map[string]string{}, map[string]string{}, map[string]*presence{}
	for _, r := range st.Routes {
		m.routes[r.RouteID] = r
		if r.DriverID != "" {
			m.byDriver[r.DriverID] = r.RouteID
		}
		m.driverNames[r.DriverID] = r.DriverName
	}
	m.devices = make(map[string]DeviceHealth, len(st.Latest))
	for _, f := range st.Latest {
		m.latest[f.DriverID] = f
		m.devices[f.DriverID] = deviceOf(f)
	}
	// Moves are not stored as route records (Batch.Routes): a route's
	// position is its driver's newest fix when that is newer, the rule
	// Snapshots follows too.
	for id, r := range m.routes {
		if f, ok := m.latest[r.DriverID]; ok && r.DriverID != "" && f.Time().After(r.LastUpdated) {
			r.CurrentLat, r.CurrentLng, r.LastUpdated = f.Lat, f.Lng, f.Time()
			m.routes[id] = r
		}
	}
	m.seq = st.LastSeq
	m.rescues, m.rescueByRoute = map[string]*Rescue{}, map[string]string{}
	for i := range st.Rescues {
		r := st.Rescues[i]
		m.rescues[r.RescueID] = &r
		if prev, ok := m.rescues[m.rescueByRoute[r.RouteID]]; !ok || r.Seq > prev.Seq {
			m.rescueByRoute[r.RouteID] = r.RescueID
		}
	}
	m.offers = map[string]*Offer{}
	for i := range st.Offers {
		o := st.Offers[i]
		m.offers[o.VTOID] = &o
	}
	m.assignments = map[string]Assignment{}
	for _, a := range st.Assignments {
		m.assignments[a.RouteID] = a
	}
}

// emit gives an event the next seq, encodes it and adds it to b.
func (m *Machine) emit(b *Batch, typ, prio string, payload any) (Envelope, []byte, error) {
	env, raw, err := newEnvelope(m.seq+1, typ, prio, m.Now(), payload)
	if err != nil {
		return env, nil, fmt.Errorf("encode %s: %w", typ, err)
	}
	m.seq++
	b.Events = append(b.Events, Event{Seq: m.seq, Type: typ, Payload: payload, Raw: raw, At: env.Timestamp})
	return env, raw, nil
}

// change records a route change into b: the new status and, when something
// changed, a route:update event carrying the delta.
func (m *Machine) change(b *Batch, old, cur RouteStatus) error {
	delta := Diff(old, cur)
	if delta.Empty() {
		return nil
	}
	if _, _, err := m.emit(b, EventRouteUpdate, PriorityNormal, delta); err != nil {
		return err
	}
	m.routes[cur.RouteID] = cur
	if old.DriverID != cur.DriverID {
		if m.byDriver[old.DriverID] == old.RouteID {
			delete(m.byDriver, old.DriverID)
		}
	}
	if cur.DriverID != "" {
		m.byDriver[cur.DriverID] = cur.RouteID
		if cur.DriverName != "" {
			m.driverNames[cur.DriverID] = cur.DriverName
		}
	}
	b.Routes = append(b.Routes, cur)
	b.States = append(b.States, cur)
	return nil
}

// Fix takes a validated fix. It is filed in history under the driver's
// route; if it is the driver's newest, it moves the driver and the route,
// a route:update. late reports a fix older than the driver's position
// (filed, but it moves nothing).
func (m *Machine) Fix(b *Batch, f Fix) (late bool, err error) {
	routeID := m.byDriver[f.DriverID]
	b.Fixes = append(b.Fixes, HistoryFix{RouteID: routeID, Fix: f})
	m.fixSeen(b, f.DriverID)
	if prev, ok := m.latest[f.DriverID]; ok && f.TS <= prev.TS {
		// Older than the newest (a repeat of it is not news): the trails
		// get it on the route's late topic once it is stored.
		if f.TS < prev.TS && routeID != "" {
			b.Late = append(b.Late, HistoryFix{RouteID: routeID, Fix: f})
		}
		return true, nil
	}
	m.latest[f.DriverID] = f
	b.Latest = append(b.Latest, f)
	if err := m.deviceSeen(b, f); err != nil {
		return false, err
	}
	r, ok := m.routes[routeID]
	if !ok {
		return false, nil
	}
	cur := r
	cur.CurrentLat, cur.CurrentLng, cur.LastUpdated = f.Lat, f.Lng, f.Time()
	n, nr := len(b.Events), len(b.Routes)
	if err := m.change(b, r, cur); err != nil {
		return false, err
	}
	if len(b.Events) > n {
		b.fixRecv = append(b.fixRecv, f.Recv)
		b.Routes = b.Routes[:nr] // a move alone: Latest holds it
	}
	return false, nil
}

// Snapshots merges one feed cycle and returns how many routes changed. A
// live GPS fix newer than the feed's lastUpdated keeps its position.
// Routes absent from the feed are kept as they were.
func (m *Machine) Snapshots(b *Batch, snaps []RouteSnapshot) (int, error) {
	type change struct{ old, cur RouteStatus }
	var changes []change
	for _, s := range snaps {
		cur := s.Status()
		if s.CurrentAddress != "" {
			m.addresses[s.RouteID] = s.CurrentAddress
		}
		if s.DriverID != "" && s.DriverName != "" {
			m.driverNames[s.DriverID] = s.DriverName
		}
		m.applyAssignment(b, &cur)
		old := m.routes[s.RouteID]
		if f, ok := m.latest[cur.DriverID]; ok && f.Time().After(cur.LastUpdated) {
			cur.CurrentLat, cur.CurrentLng, cur.LastUpdated = f.Lat, f.Lng, f.Time()
		}
		n := len(b.Routes)
		if err := m.change(b, old, cur); err != nil {
			return len(changes), err
		}
		if len(b.Routes) > n {
			changes = append(changes, change{old, m.routes[cur.RouteID]})
		}
	}
	// Rescues are judged on the whole cycle, so the rescuer is chosen from
	// every route's current state.
	for _, c := range changes {
		if err := m.checkRescue(b, c.old, c.cur); err != nil {
			return len(changes), err
		}
	}
	return len(changes), nil
}

// Routes returns every route, most urgent first.
func (m *Machine) Routes() []RouteStatus {
	out := make([]RouteStatus, 0, len(m.routes))
	for _, r := range m.routes {
		out = append(out, r)
	}
	SortByUrgency(out)
	return out
}

// Route returns one route.
func (m *Machine) Route(id string) (RouteStatus, bool) {
	r, ok := m.routes[id]
	return r, ok
}

// LastSeq is the seq of the newest event.
func (m *Machine) LastSeq() uint64 { return m.seq }

// SetFeed records the outcome of a feed cycle.
func (m *Machine) SetFeed(h FeedHealth) { m.feed = h }

// Feed returns the feed health as last recorded.
func (m *Machine) Feed() FeedHealth { return m.feed }

// Snapshot is everything a dashboard needs to start, consistent with Seq:
// events after Seq are exactly what changed since.
type Snapshot struct {
	Seq      uint64                  `json:"seq"`
	Routes   []RouteStatus           `json:"routes"`
	Rescues  []Rescue                `json:"rescues"`
	Offers   []OfferStatus           `json:"offers"`
	Presence map[string]presence     `json:"presence"`
	Devices  map[string]DeviceHealth `json:"devices"`
	Feed     FeedHealth              `json:"feed"`
}

// Snapshot returns the dashboard's starting state.
func (m *Machine) Snapshot() Snapshot {
	return Snapshot{Seq: m.seq, Routes: m.Routes(), Rescues: m.Rescues(), Offers: m.Offers(),
		Presence: m.presenceMap(), Devices: m.Devices(), Feed: m.feed}
}

// Heartbeat emits a system:status event and the retained heartbeat. s
// carries what the machine does not know (counters, latency, the store,
// the app); the machine stamps it and adds the feed and the log position.
func (m *Machine) Heartbeat(b *Batch, s SystemStatus) (SystemStatus, error) {
	s.TS = m.Now().UTC().Truncate(time.Millisecond)
	s.Feed, s.LastSeq = m.feed, m.seq+1
	if _, _, err := m.emit(b, EventSystemStatus, PriorityNormal, s); err != nil {
		return s, err
	}
	raw, _ := json.Marshal(s)
	b.Messages = append(b.Messages, Message{Topic: m.Topics.Heartbeat(), Payload: raw, Retain: true})
	return s, nil
}

// SortByUrgency orders routes RED, YELLOW, GREEN; then most stops behind;
// then least progress; then by code.
func SortByUrgency(rs []RouteStatus) {
	rank := map[string]int{Red: 0, Yellow: 1, Green: 2}
	slices.SortFunc(rs, func(a, b RouteStatus) int {
		if c := cmp.Compare(rank[a.StatusColor], rank[b.StatusColor]); c != 0 {
			return c
		}
		if c := cmp.Compare(b.BehindSchedule, a.BehindSchedule); c != 0 {
			return c
		}
		if c := cmp.Compare(progress(a), progress(b)); c != 0 {
			return c
		}
		return cmp.Compare(a.RouteCode+a.RouteID, b.RouteCode+b.RouteID)
	})
}

func progress(r RouteStatus) float64 {
	if r.TotalStops <= 0 {
		return 0
	}
	return float64(r.CompletedStops) / float64(r.TotalStops)
}
