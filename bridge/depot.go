package bridge

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Store is what the domain needs from durable storage. Commit writes a whole
// Batch in one transaction (one fsync): it is how the pipeline turns many
// concurrent fixes and events into one disk write. The batch is reused
// once Commit returns: a Store keeps none of its slices.
type Store interface {
	LoadState() (State, error)
	Commit(b *Batch) error
}

// Publisher delivers a message to MQTT subscribers (the embedded broker's
// inline client in production). expiry is the MQTT 5 message expiry in
// seconds (0: none).
type Publisher interface {
	Publish(topic string, payload []byte, retain bool, qos byte) error
	PublishExpiring(topic string, payload []byte, retain bool, qos byte, expiry uint32) error
}

// State is what a depot reloads at start.
type State struct {
	Routes      []RouteStatus
	Latest      []Fix // the newest fix of each driver
	LastSeq     uint64
	Rescues     []Rescue
	Offers      []Offer
	Assignments []Assignment
}

// HistoryFix is one fix as filed in history: under the route its driver was
// on when it arrived, or under the driver when it was on none.
type HistoryFix struct {
	RouteID string
	Fix     Fix
}

// StoredEvent is an envelope with its encoded form.
type StoredEvent struct {
	Seq uint64
	Raw []byte
}

// Batch is everything one group commit writes, and what is published once
// it is stored.
type Batch struct {
	Fixes  []HistoryFix
	Latest []Fix
	// Routes are the route statuses to store. A move alone is not among
	// them: a route's position is its driver's newest fix (Latest), and
	// Open puts it back.
	Routes      []RouteStatus
	Events      []StoredEvent
	Rescues     []Rescue
	Offers      []Offer
	Assignments []Assignment
	// Messages are published after the commit, after the events: driver
	// inbox messages and retained presence states.
	Messages []Message
	// States are the changed route statuses, moves included, published
	// (retained) after the commit; not stored.
	States []RouteStatus
	// fixRecv are the receive times (Unix ms) of fixes that moved a route,
	// for the fix-to-publish latency.
	fixRecv []int64
}

// Message is one MQTT message the depot publishes besides events.
type Message struct {
	Topic   string
	Payload []byte
	Retain  bool
	Expiry  uint32 // MQTT 5 message expiry, seconds; 0: none
}

func (b *Batch) size() int {
	return len(b.Fixes) + len(b.Routes) + len(b.Events) + len(b.Rescues) + len(b.Offers) + len(b.Messages) + len(b.States)
}

// reset empties b, keeping its capacity.
func (b *Batch) reset() {
	*b = Batch{Fixes: b.Fixes[:0], Latest: b.Latest[:0], Routes: b.Routes[:0], Events: b.Events[:0],
		Rescues: b.Rescues[:0], Offers: b.Offers[:0], Assignments: b.Assignments[:0],
		Messages: b.Messages[:0], States: b.States[:0], fixRecv: b.fixRecv[:0]}
}

func (b *Batch) append(o *Batch) {
	b.Fixes = append(b.Fixes, o.Fixes...)
	b.Latest = append(b.Latest, o.Latest...)
	b.Routes = append(b.Routes, o.Routes...)
	b.Events = append(b.Events, o.Events...)
	b.Rescues = append(b.Rescues, o.Rescues...)
	b.Offers = append(b.Offers, o.Offers...)
	b.Assignments = append(b.Assignments, o.Assignments...)
	b.Messages = append(b.Messages, o.Messages...)
	b.States = append(b.States, o.States...)
	b.fixRecv = append(b.fixRecv, o.fixRecv...)
}

// Metrics receives the depot's measurements (Prometheus in the appliance).
type Metrics interface {
	Commit(took time.Duration, records int, err error)
	FixToPublish(took time.Duration)
	FeedCycle(took time.Duration, err error)
}

// ErrClosed is returned for work submitted after Close.
var ErrClosed = errors.New("depot closed")

// Stats are counters since start.
type Stats struct {
	FixesAccepted atomic.Int64
	FixesRefused  atomic.Int64
	FixesLate     atomic.Int64 // filed in history but older than the current position
	Events        atomic.Int64
	Commits       atomic.Int64
	CommitErrors  atomic.Int64
}

// FeedHealth is the state of the route-data feed as last seen.
type FeedHealth struct {
	OK          bool      `json:"ok"`
	Source      string    `json:"source,omitempty"`
	LastSuccess time.Time `json:"lastSuccess,omitzero"`
	LastAttempt time.Time `json:"lastAttempt,omitzero"`
	Error       string    `json:"error,omitempty"`
	Routes      int       `json:"routes"`
}

// Depot holds the live state of one depot and is the only writer of its
// event log. Changes are sequenced under one lock, stored by a single
// pipeline goroutine in group commits, and published only after they are
// stored, in seq order.
type Depot struct {
	ID     string
	Store  Store
	Pub    Publisher        // set by Open
	Now    func() time.Time // injected clock; time.Now when nil
	Log    *slog.Logger
	Topics Topics
	Stats  Stats
	// RescueSpeedKmh is the average speed used to estimate a rescuer's
	// arrival (straight line); 30 when zero.
	RescueSpeedKmh float64
	// SilentAfter: a driver on an unfinished route who sent no fix for this
	// long is reported silent; 5 minutes when zero.
	SilentAfter time.Duration
	// Metrics, when set, is told of every commit, fix-driven publish and
	// feed cycle.
	Metrics Metrics

	mu            sync.Mutex
	routes        map[string]RouteStatus
	byDriver      map[string]string // driver id -> route id
	latest        map[string]Fix
	seq           uint64
	closed        bool
	feed          FeedHealth
	rescues       map[string]*Rescue
	rescueByRoute map[string]string // route id -> its latest rescue id
	offers        map[string]*Offer
	assignments   map[string]Assignment
	driverNames   map[string]string
	addresses     map[string]string // route id -> address of its position, when the feed has one
	presence      map[string]*presence
	lat           latencies
	hb            heartbeat

	storeMu     sync.Mutex
	storeHealth StoreHealth

	// jobs carries work to the pipeline. A caller takes one of slots
	// before it takes mu and gives it back if it sends nothing; the
	// pipeline gives one back per job it receives. So jobs never holds
	// more than its capacity and the send under mu never blocks: when the
	// disk stalls and the queue fills, writers wait for a slot outside mu
	// and readers go on.
	jobs        chan *job
	slots       chan struct{}
	quit        chan struct{} // closed by Close: nobody waits for a slot any more
	pipeDone    chan struct{}
	commitStart atomic.Int64 // unix ns when the commit on disk began; 0 between commits
}

// Open loads the stored state and starts the commit pipeline, which
// publishes through pub. The publisher comes here rather than with the
// other fields because the broker that publishes also hands the depot its
// fixes: the depot is built first, the broker from it, and then the depot
// opens onto the broker.
func (d *Depot) Open(pub Publisher) error {
	d.Pub = pub
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	d.Topics = Topics{Depot: d.ID}
	st, err := d.Store.LoadState()
	if err != nil {
		return fmt.Errorf("load depot state: %w", err)
	}
	d.routes = make(map[string]RouteStatus, len(st.Routes))
	d.byDriver = make(map[string]string, len(st.Routes))
	d.latest = make(map[string]Fix, len(st.Latest))
	for _, r := range st.Routes {
		d.routes[r.RouteID] = r
		if r.DriverID != "" {
			d.byDriver[r.DriverID] = r.RouteID
		}
	}
	for _, f := range st.Latest {
		d.latest[f.DriverID] = f
	}
	// Moves are not stored as route records (Batch.Routes): a route's
	// position is its driver's newest fix when that is newer, the rule
	// ApplySnapshots follows too.
	for id, r := range d.routes {
		if f, ok := d.latest[r.DriverID]; ok && r.DriverID != "" && f.Time().After(r.LastUpdated) {
			r.CurrentLat, r.CurrentLng, r.LastUpdated = f.Lat, f.Lng, f.Time()
			d.routes[id] = r
		}
	}
	d.seq = st.LastSeq
	d.rescues, d.rescueByRoute = map[string]*Rescue{}, map[string]string{}
	for i := range st.Rescues {
		r := st.Rescues[i]
		d.rescues[r.RescueID] = &r
		if prev, ok := d.rescues[d.rescueByRoute[r.RouteID]]; !ok || r.Seq > prev.Seq {
			d.rescueByRoute[r.RouteID] = r.RescueID
		}
	}
	d.offers = map[string]*Offer{}
	for i := range st.Offers {
		o := st.Offers[i]
		d.offers[o.VTOID] = &o
	}
	d.assignments = map[string]Assignment{}
	for _, a := range st.Assignments {
		d.assignments[a.RouteID] = a
	}
	d.driverNames, d.addresses, d.presence = map[string]string{}, map[string]string{}, map[string]*presence{}
	for _, r := range st.Routes {
		d.driverNames[r.DriverID] = r.DriverName
	}
	d.storeHealth = StoreHealth{OK: true}
	d.jobs, d.slots = make(chan *job, queueLen), make(chan struct{}, queueLen)
	d.quit, d.pipeDone = make(chan struct{}), make(chan struct{})
	go d.pipeline()
	return nil
}

// Close stops taking work, commits and publishes what was queued, and
// returns when the pipeline has finished. Safe to call twice.
func (d *Depot) Close() {
	d.mu.Lock()
	if d.closed || d.jobs == nil {
		d.mu.Unlock()
		return
	}
	d.closed = true
	close(d.quit)
	close(d.jobs)
	d.mu.Unlock()
	<-d.pipeDone
}

// Restore publishes the retained state of every known route, so that after
// a restart (before the broker has its own persisted retained messages)
// dashboards find every route on subscribe.
func (d *Depot) Restore() {
	for _, r := range d.Routes() {
		d.publishState(r)
	}
}

// IngestFix takes a validated fix. It is filed in history; if it is the
// driver's newest, it moves the driver and, when the driver is on a route,
// the route's position, which is published as a route:update delta. With
// wait, IngestFix returns once the fix is durably stored (or failed to be),
// which is what a QoS 1 PUBACK promises.
func (d *Depot) IngestFix(f Fix, wait bool) error {
	j := &job{}
	if wait {
		// A waited-for job comes back once its answer is read, so it is
		// recycled: one per fix was a tenth of the domain's allocations.
		j = jobPool.Get().(*job)
		defer func() { j.b.reset(); jobPool.Put(j) }()
	}
	if err := d.reserve(); err != nil {
		return err
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		d.unreserve()
		return ErrClosed
	}
	routeID := d.byDriver[f.DriverID]
	j.b.Fixes = append(j.b.Fixes, HistoryFix{RouteID: routeID, Fix: f})
	d.fixSeenLocked(&j.b, f.DriverID)
	if prev, ok := d.latest[f.DriverID]; ok && f.TS <= prev.TS {
		d.Stats.FixesLate.Add(1)
	} else {
		d.latest[f.DriverID] = f
		j.b.Latest = append(j.b.Latest, f)
		if r, ok := d.routes[routeID]; ok {
			cur := r
			cur.CurrentLat, cur.CurrentLng, cur.LastUpdated = f.Lat, f.Lng, f.Time()
			n := len(j.b.Events)
			if err := d.changeLocked(&j.b, r, cur); err != nil {
				d.mu.Unlock()
				d.unreserve()
				return err
			}
			if len(j.b.Events) > n {
				j.b.fixRecv = append(j.b.fixRecv, f.Recv)
				j.b.Routes = j.b.Routes[:0] // a move alone: Latest holds it
			}
		}
	}
	d.jobs <- j
	d.mu.Unlock()
	d.Stats.FixesAccepted.Add(1)
	if !wait {
		return nil
	}
	return <-j.done
}

// emitLocked gives an event the next seq and adds it to b.
func (d *Depot) emitLocked(b *Batch, typ, prio string, payload any) (Envelope, []byte, error) {
	env, raw, err := newEnvelope(d.seq+1, typ, prio, d.Now(), payload)
	if err != nil {
		return env, nil, fmt.Errorf("encode %s: %w", typ, err)
	}
	d.seq++
	b.Events = append(b.Events, StoredEvent{Seq: d.seq, Raw: raw})
	return env, raw, nil
}

// act runs fn under the lock on a fresh batch and, when it succeeds and
// wrote something, commits the batch and waits for it. fn must validate
// before it changes anything: an error leaves no trace.
func (d *Depot) act(fn func(b *Batch) error) error {
	j := &job{done: make(chan error, 1)}
	if err := d.reserve(); err != nil {
		return err
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		d.unreserve()
		return ErrClosed
	}
	if err := fn(&j.b); err != nil {
		d.mu.Unlock()
		d.unreserve()
		return err
	}
	if j.b.size() == 0 && len(j.b.Assignments) == 0 {
		d.mu.Unlock()
		d.unreserve()
		return nil
	}
	d.jobs <- j
	d.mu.Unlock()
	return <-j.done
}

// changeLocked records a route change into b: the new status and, when
// something changed, a route:update event with the next seq.
func (d *Depot) changeLocked(b *Batch, old, cur RouteStatus) error {
	delta := Diff(old, cur)
	if delta.Empty() {
		return nil
	}
	if _, _, err := d.emitLocked(b, EventRouteUpdate, PriorityNormal, delta); err != nil {
		return err
	}
	d.routes[cur.RouteID] = cur
	if old.DriverID != cur.DriverID {
		if d.byDriver[old.DriverID] == old.RouteID {
			delete(d.byDriver, old.DriverID)
		}
	}
	if cur.DriverID != "" {
		d.byDriver[cur.DriverID] = cur.RouteID
		if cur.DriverName != "" {
			d.driverNames[cur.DriverID] = cur.DriverName
		}
	}
	b.Routes = append(b.Routes, cur)
	b.States = append(b.States, cur)
	return nil
}

// ApplySnapshots merges one feed cycle into the live state and returns how
// many routes changed. A live GPS fix newer than the feed's lastUpdated keeps
// its position. Routes absent from the feed are kept as they were.
func (d *Depot) ApplySnapshots(snaps []RouteSnapshot) (int, error) {
	j := &job{done: make(chan error, 1)}
	if err := d.reserve(); err != nil {
		return 0, err
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		d.unreserve()
		return 0, ErrClosed
	}
	changed := 0
	type change struct{ old, cur RouteStatus }
	var changes []change
	for _, s := range snaps {
		cur := s.Status()
		if s.CurrentAddress != "" {
			d.addresses[s.RouteID] = s.CurrentAddress
		}
		if s.DriverID != "" && s.DriverName != "" {
			d.driverNames[s.DriverID] = s.DriverName
		}
		d.applyAssignmentLocked(&j.b, &cur)
		old := d.routes[s.RouteID]
		if f, ok := d.latest[cur.DriverID]; ok && f.Time().After(cur.LastUpdated) {
			cur.CurrentLat, cur.CurrentLng, cur.LastUpdated = f.Lat, f.Lng, f.Time()
		}
		n := len(j.b.Routes)
		if err := d.changeLocked(&j.b, old, cur); err != nil {
			d.mu.Unlock()
			d.unreserve()
			return changed, err
		}
		if len(j.b.Routes) > n {
			changed++
			changes = append(changes, change{old, d.routes[cur.RouteID]})
		}
	}
	// Rescues are judged on the whole cycle, so the rescuer is chosen from
	// every route's current state.
	for _, c := range changes {
		if err := d.checkRescueLocked(&j.b, c.old, c.cur); err != nil {
			d.mu.Unlock()
			d.unreserve()
			return changed, err
		}
	}
	if j.b.size() == 0 && len(j.b.Assignments) == 0 {
		d.mu.Unlock()
		d.unreserve()
		return 0, nil
	}
	d.jobs <- j
	d.mu.Unlock()
	return changed, <-j.done
}

// Routes returns every route, most urgent first.
func (d *Depot) Routes() []RouteStatus {
	d.mu.Lock()
	out := make([]RouteStatus, 0, len(d.routes))
	for _, r := range d.routes {
		out = append(out, r)
	}
	d.mu.Unlock()
	SortByUrgency(out)
	return out
}

// Route returns one route.
func (d *Depot) Route(id string) (RouteStatus, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.routes[id]
	return r, ok
}

// LastSeq is the seq of the newest event.
func (d *Depot) LastSeq() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.seq
}

// SetFeedHealth records the outcome of a feed cycle.
func (d *Depot) SetFeedHealth(h FeedHealth) {
	d.mu.Lock()
	d.feed = h
	d.mu.Unlock()
}

// Feed returns the feed health as last recorded.
func (d *Depot) Feed() FeedHealth {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.feed
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
