// Depot: the Machine's rules behind one lock, in front of the commit
// pipeline. Every command takes a queue slot, runs on the Machine under
// Depot.mu into a fresh batch, and queues the batch; the pipeline stores
// it, publishes it, then answers. The exported methods are what the broker,
// the web API and the jobs call.

package bridge

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
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

// Batch is everything one group commit writes, and what is published once
// it is stored.
type Batch struct {
	Fixes  []HistoryFix
	Latest []Fix
	// Routes are the route statuses to store. A move alone is not among
	// them: a route's position is its driver's newest fix (Latest), and
	// Open puts it back.
	Routes      []RouteStatus
	Events      []Event
	Rescues     []Rescue
	Offers      []Offer
	Assignments []Assignment
	// Messages are published after the commit, after the events: driver
	// inbox messages and retained presence states.
	Messages []Message
	// States are the changed route statuses, moves included, published
	// (retained) after the commit; not stored.
	States []RouteStatus
	// Late are the fixes older than their driver's newest (a handheld's
	// backlog, or out-of-order arrival) filed under a route: they move
	// nothing, so no event carries them. Once stored they are published,
	// not retained, on the route's late topic for the dashboards' trails
	// (pipeline.publishLate). Not stored: Fixes holds them too.
	Late []HistoryFix
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
		Messages: b.Messages[:0], States: b.States[:0], Late: b.Late[:0], fixRecv: b.fixRecv[:0]}
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
	b.Late = append(b.Late, o.Late...)
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
	LatePublished atomic.Int64 // late fixes published on their route's late topic
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

// Depot is one depot's live state and the only writer of its event log.
// Configure its fields, then Open it.
type Depot struct {
	ID    string
	Store Store
	Now   func() time.Time // the rules' clock; time.Now when nil
	Log   *slog.Logger
	// RescueSpeedKmh and SilentAfter configure the rules (see Machine).
	RescueSpeedKmh float64
	SilentAfter    time.Duration
	// Metrics, when set, is told of every commit, fix-driven publish and
	// feed cycle.
	Metrics Metrics
	// OnCommit, when set, is called after each commit that stored events,
	// on the commit path: it must not block (the fleet forwarder uses it
	// to wake instead of polling).
	OnCommit func()
	Topics   Topics // set by Open
	Stats    Stats
	// Offsets are the recent handheld clock offsets (receipt − device
	// time) of accepted fixes that were a driver's newest.
	Offsets ClockOffsets

	mu     sync.Mutex // guards m and closed
	m      Machine
	closed bool
	hb     heartbeat // guarded by mu
	p      *pipeline
}

// Open loads the stored state and starts the commit pipeline, which
// publishes through pub. The publisher comes here rather than with the
// other fields because the broker that publishes also hands the depot its
// fixes: the depot is built first, the broker from it, and then the depot
// opens onto the broker.
func (d *Depot) Open(pub Publisher) error {
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
	d.m = Machine{Topics: d.Topics, Now: d.Now, RescueSpeedKmh: d.RescueSpeedKmh, SilentAfter: d.SilentAfter}
	d.m.Load(st)
	d.p = &pipeline{store: d.Store, pub: pub, topics: d.Topics, log: d.Log, metrics: d.Metrics, stats: &d.Stats, onCommit: d.OnCommit}
	d.p.storedSeq.Store(d.m.LastSeq()) // what was loaded is on disk
	d.p.start()
	return nil
}

// Close stops taking work, commits and publishes what was queued, and
// returns when the pipeline has finished. Safe to call twice.
func (d *Depot) Close() {
	d.mu.Lock()
	if d.closed || d.p == nil {
		d.mu.Unlock()
		return
	}
	d.closed = true
	d.p.close()
	d.mu.Unlock()
	d.p.wait()
}

// run runs cmd on the machine into j's batch and queues the batch when cmd
// succeeded and wrote something. queued says whether it did; the caller
// then waits on j.done, if it waits.
func (d *Depot) run(j *job, cmd func(*Machine, *Batch) error) (queued bool, err error) {
	if err := d.p.reserve(); err != nil {
		return false, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		d.p.unreserve()
		return false, ErrClosed
	}
	if err := cmd(&d.m, &j.b); err != nil {
		d.p.unreserve()
		return false, err
	}
	if j.b.size() == 0 && len(j.b.Assignments) == 0 {
		d.p.unreserve()
		return false, nil
	}
	d.p.send(j)
	return true, nil
}

// act runs cmd and, when it queued something, waits until it is stored and
// published.
func (d *Depot) act(cmd func(*Machine, *Batch) error) error {
	j := &job{done: make(chan error, 1)}
	queued, err := d.run(j, cmd)
	if !queued {
		return err
	}
	return <-j.done
}

// read runs fn on the machine under the lock.
func read[T any](d *Depot, fn func(*Machine) T) T {
	d.mu.Lock()
	defer d.mu.Unlock()
	return fn(&d.m)
}

// IngestFix takes a validated fix (Machine.Fix). With wait, IngestFix
// returns once the fix is durably stored (or failed to be), which is what a
// QoS 1 PUBACK promises.
func (d *Depot) IngestFix(f Fix, wait bool) error {
	j := &job{}
	if wait {
		// A waited-for job comes back once its answer is read, so it is
		// recycled: one per fix was a tenth of the domain's allocations.
		j = jobPool.Get().(*job)
		defer func() { j.b.reset(); jobPool.Put(j) }()
	}
	queued, err := d.run(j, func(m *Machine, b *Batch) error {
		late, err := m.Fix(b, f)
		if late {
			d.Stats.FixesLate.Add(1)
		} else if err == nil {
			// A late fix is a backlog arriving, not a clock's error.
			d.Offsets.Add(f)
		}
		return err
	})
	if err != nil {
		return err
	}
	d.Stats.FixesAccepted.Add(1)
	if !wait || !queued {
		return nil
	}
	return <-j.done
}

// ApplySnapshots merges one feed cycle (Machine.Snapshots) and returns how
// many routes changed.
func (d *Depot) ApplySnapshots(snaps []RouteSnapshot) (int, error) {
	changed := 0
	var alerts []RescueAlert
	err := d.act(func(m *Machine, b *Batch) error {
		var err error
		changed, err = m.Snapshots(b, snaps)
		if err == nil {
			for _, e := range b.Events {
				if a, ok := e.Payload.(RescueAlert); ok {
					alerts = append(alerts, a)
				}
			}
		}
		return err
	})
	// Logged outside the lock, once the alert is out (published, and
	// stored unless the commit failed, which is logged on its own).
	for _, a := range alerts {
		rescuer := ""
		if a.RescueDriver != nil {
			rescuer = a.RescueDriver.DriverID
		}
		d.Log.Warn("rescue alert", "route", a.StruggleRoute.RouteID, "behind", a.StruggleRoute.BehindSchedule, "rescuer", rescuer)
	}
	return changed, err
}

// actFor runs a command that also answers with a value, as act does.
func actFor[T any](d *Depot, cmd func(*Machine, *Batch) (T, error)) (out T, err error) {
	err = d.act(func(m *Machine, b *Batch) (err error) {
		out, err = cmd(m, b)
		return err
	})
	return out, err
}

// OfferVTO: see Machine.OfferVTO.
func (d *Depot) OfferVTO(driverID, routeID, reason, by string) (Offer, error) {
	return actFor(d, func(m *Machine, b *Batch) (Offer, error) { return m.OfferVTO(b, driverID, routeID, reason, by) })
}

// AnswerVTO: see Machine.AnswerVTO.
func (d *Depot) AnswerVTO(vtoID, action, driverID, by string) (Offer, error) {
	return actFor(d, func(m *Machine, b *Batch) (Offer, error) { return m.AnswerVTO(b, vtoID, action, driverID, by) })
}

// ConfirmVTO: see Machine.ConfirmVTO.
func (d *Depot) ConfirmVTO(vtoID, payrollRef string) (Offer, error) {
	return actFor(d, func(m *Machine, b *Batch) (Offer, error) { return m.ConfirmVTO(b, vtoID, payrollRef) })
}

// Reassign: see Machine.Reassign.
func (d *Depot) Reassign(routeID, toDriverID, by string) (RouteStatus, error) {
	return actFor(d, func(m *Machine, b *Batch) (RouteStatus, error) { return m.Reassign(b, routeID, toDriverID, by) })
}

// ResolveRescue: see Machine.ResolveRescue.
func (d *Depot) ResolveRescue(id, by string) (Rescue, error) {
	return actFor(d, func(m *Machine, b *Batch) (Rescue, error) { return m.ResolveRescue(b, id, by) })
}

// HandleReply takes a handheld's reply (Machine.Reply).
func (d *Depot) HandleReply(driverID string, payload []byte) error {
	return d.act(func(m *Machine, b *Batch) error { return m.Reply(b, driverID, payload) })
}

// DriverConnected records a handheld's session start (Machine.Connected).
func (d *Depot) DriverConnected(driver string) error {
	return d.act(func(m *Machine, b *Batch) error { return m.Connected(b, driver) })
}

// DriverDisconnected records a handheld's session end (Machine.Disconnected).
func (d *Depot) DriverDisconnected(driver string) error {
	return d.act(func(m *Machine, b *Batch) error { return m.Disconnected(b, driver) })
}

// Tick runs the depot's timers (Machine.Tick). The appliance calls it
// every second; tests call it with a stepped clock.
func (d *Depot) Tick() error {
	return d.act(func(m *Machine, b *Batch) error { return m.Tick(b) })
}

// heartbeat keeps the counters of the previous heartbeat, for rates.
type heartbeat struct {
	at            time.Time
	events, fixes int64
}

// Heartbeat emits a system:status event and the retained heartbeat with
// the depot's figures since the previous call, and app (connections,
// refusals, uptime, version: what the appliance knows beyond the domain).
func (d *Depot) Heartbeat(app AppStatus) (SystemStatus, error) {
	p50, p99, mx, n := d.p.lat.take()
	store := d.StoreHealth() // never under mu: lock order (pipeline.go)
	var status SystemStatus
	err := d.act(func(m *Machine, b *Batch) (err error) {
		now := m.Now()
		ev, fx := d.Stats.Events.Load(), d.Stats.FixesAccepted.Load()
		rate := func(cur, prev int64) float64 {
			secs := now.Sub(d.hb.at).Seconds()
			if d.hb.at.IsZero() || secs <= 0 {
				return 0
			}
			return math.Round(float64(cur-prev)/secs*10) / 10
		}
		s := SystemStatus{
			EventsPerS: rate(ev, d.hb.events), FixesPerS: rate(fx, d.hb.fixes),
			FixesRefused: d.Stats.FixesRefused.Load(), LatencyMs: Latency{P50: p50, P99: p99, Max: mx, Samples: n},
			CommitErrors: d.Stats.CommitErrors.Load(), Store: store, AppStatus: app,
		}
		if status, err = m.Heartbeat(b, s); err == nil {
			d.hb = heartbeat{at: now, events: ev, fixes: fx}
		}
		return err
	})
	return status, err
}

// Restore publishes the retained state of every known route, so that after
// a restart (before the broker has its own persisted retained messages)
// dashboards find every route on subscribe.
func (d *Depot) Restore() {
	for _, r := range d.Routes() {
		d.p.publishState(r)
	}
}

// Busy is how long the oldest batch of work in the commit pipeline has been
// in progress, from the committer taking it to its waiters being answered
// (stored and published); 0 when the pipeline is idle or not open. A hung
// commit or publish makes it grow; the service watchdog reads it. Cheap,
// and never waits for the pipeline.
func (d *Depot) Busy() time.Duration {
	if d.p == nil {
		return 0
	}
	return d.p.busy()
}

// StoreHealth: see pipeline.storeHealth.
func (d *Depot) StoreHealth() StoreHealth { return d.p.storeHealth() }

// Routes returns every route, most urgent first.
func (d *Depot) Routes() []RouteStatus { return read(d, (*Machine).Routes) }

// Route returns one route.
func (d *Depot) Route(id string) (RouteStatus, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.m.Route(id)
}

// LastSeq is the seq of the newest event.
func (d *Depot) LastSeq() uint64 { return read(d, (*Machine).LastSeq) }

// StoredSeq is the newest event seq this process has written to the store
// (0 before its first commit with events). LastSeq runs ahead of it while
// a commit is on its way: a reader of the store that found nothing after
// its cursor must wait for the events up to LastSeq, not pass over them.
func (d *Depot) StoredSeq() uint64 { return d.p.storedSeq.Load() }

// Snapshot returns the dashboard's starting state.
func (d *Depot) Snapshot() Snapshot { return read(d, (*Machine).Snapshot) }

// Rescues returns the rescues not yet resolved, newest first.
func (d *Depot) Rescues() []Rescue { return read(d, (*Machine).Rescues) }

// Offers returns the open offers and those of the last hour, newest first.
func (d *Depot) Offers() []OfferStatus { return read(d, (*Machine).Offers) }

// DriverView returns what driverID's own app shows.
func (d *Depot) DriverView(driverID string) DriverView {
	return read(d, func(m *Machine) DriverView { return m.DriverView(driverID) })
}

// Feed returns the feed health as last recorded.
func (d *Depot) Feed() FeedHealth { return read(d, (*Machine).Feed) }

// SetFeedHealth records the outcome of a feed cycle.
func (d *Depot) SetFeedHealth(h FeedHealth) {
	d.mu.Lock()
	d.m.SetFeed(h)
	d.mu.Unlock()
}
