// The commit pipeline: the plumbing behind the rules. Depot runs a command
// on the Machine under its lock and queues the resulting batch here as a
// job; one goroutine writes the jobs in group commits, a second publishes
// each commit in seq order, and only then is the caller answered.
//
// Concurrency contract (docs/architecture.md has the long form):
//   - Depot.mu guards the Machine (the domain state and its seq). It is
//     never held across disk I/O or a channel operation that can block.
//   - A writer takes a queue slot (reserve) before Depot.mu; the pipeline
//     gives one back per job it receives. Lock order: slot, then Depot.mu,
//     then nothing. So the send of a job under Depot.mu never blocks:
//     events enter the queue in seq order, and when the disk stalls and
//     the queue fills, writers wait for a slot outside the lock while
//     readers go on. A commit on disk for longer than stallAfter makes
//     the store not ready (StoreHealth, so /readyz).
//   - pipeline.healthMu guards health (written by the committer); the
//     latency samples have their own lock; the state throttle belongs to
//     the publisher goroutine alone.
//   - Goroutines: the callers, the committer (run) and the publisher. A
//     failed commit's waiters get its error; its events are published
//     live and kept pending for the next commit, up to maxPending.

package bridge

import (
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// pipeline stores and publishes the Machine's batches.
type pipeline struct {
	store   Store
	pub     Publisher
	topics  Topics
	log     *slog.Logger
	metrics Metrics // may be nil
	stats   *Stats
	// onCommit is told of each commit that stored events; may be nil.
	onCommit func()
	// now is the wall clock of commits, latency and the state throttle:
	// fix receive times are wall-clock times, whatever the rules' clock says.
	now func() time.Time

	jobs    chan *job
	queued  atomic.Int64 // slots taken: jobs queued or about to be (at most queueLen)
	waiting atomic.Int32 // writers waiting for a slot
	// space hands a slot to a waiting writer: a token is a slot still
	// counted in queued. At most one is in flight; a writer that took a
	// slot from the count meanwhile may leave one there for the next.
	space       chan struct{}
	quit        chan struct{} // closed by close: nobody waits for a slot any more
	done        chan struct{}
	commitStart atomic.Int64  // unix ns when the commit on disk began; 0 between commits
	storedSeq   atomic.Uint64 // the newest event seq on disk
	// inflight holds, per batch going round between the committer and the
	// publisher (two: run's committed values), the unix ns its first job
	// was received; 0 while the batch is free. Busy reads the oldest.
	inflight [2]atomic.Int64

	healthMu sync.Mutex
	health   StoreHealth

	lat latencies
}

func (p *pipeline) start() {
	if p.now == nil {
		p.now = time.Now
	}
	p.health = StoreHealth{OK: true}
	p.jobs, p.space = make(chan *job, queueLen), make(chan struct{}, 1)
	p.quit, p.done = make(chan struct{}), make(chan struct{})
	go p.run()
}

// close stops taking jobs; the caller holds Depot.mu, so no send races it.
// wait returns once everything queued is committed and published.
func (p *pipeline) close() { close(p.quit); close(p.jobs) }
func (p *pipeline) wait()  { <-p.done }

// maxBatch bounds one commit so a transaction stays short (docs/libraries.md §3).
const maxBatch = 2000

// minCommitGap is the least time from one commit's start to the next's.
// On a fast disk a commit that took whatever had queued ran ~800 times a
// second at 1,000 fixes/s, 1.2 fixes each: an fsync and a message to
// every dashboard per fix or two, over half a core, and a flash disk's
// journal written 800 times a second. Waiting out the gap costs a fix at
// most that much latency, and only when the last commit was that recent:
// a fix after a quiet spell is committed at once.
const minCommitGap = 4 * time.Millisecond

type job struct {
	b    Batch
	done chan error // nil: nobody waits
}

// jobPool holds jobs with an answer channel. The pipeline keeps nothing of
// a job once it has answered: it copies the batch's elements.
var jobPool = sync.Pool{New: func() any { return &job{done: make(chan error, 1)} }}

// queueLen is how many jobs may wait for the disk.
const queueLen = 4096

// stallAfter is how long a commit may take before the store counts as
// stalled (not ready).
const stallAfter = 2 * time.Second

// reserve takes a queue slot, waiting while the queue is full; it returns
// ErrClosed once the depot is closing. A slot is an atomic count, not a
// channel send: a thousand handhelds' goroutines taking one per fix
// contended on a channel's lock. A writer that finds the queue full, or
// others already waiting, waits on space, where a freed slot is handed over
// as a token without ever being free in the count: Go gives a channel's
// values to its receivers in the order they came, so waiting writers are
// served in turn and a newcomer cannot take the slot meant for one.
func (p *pipeline) reserve() error {
	if p.waiting.Load() == 0 && p.take() {
		return nil
	}
	p.waiting.Add(1)
	defer p.waiting.Add(-1)
	// Counted as waiting before this look, so a slot freed after it comes
	// as a token: nothing falls between the look and the sleep.
	if p.take() {
		return nil
	}
	select {
	case <-p.space:
		return nil // a slot, handed over
	case <-p.quit:
		return ErrClosed
	}
}

// take takes a slot if one is free.
func (p *pipeline) take() bool {
	if p.queued.Add(1) <= queueLen {
		return true
	}
	p.queued.Add(-1)
	return false
}

// unreserve gives back a slot taken by reserve, by a writer that sent no
// job or by the committer that received one: to a waiting writer if there
// is one, else to the count.
func (p *pipeline) unreserve() {
	if p.waiting.Load() > 0 {
		select {
		case p.space <- struct{}{}:
			return
		default: // a slot is already on its way to a writer
		}
	}
	p.queued.Add(-1)
}

// send queues j; the caller holds a slot and Depot.mu.
func (p *pipeline) send(j *job) { p.jobs <- j }

// maxEventsPerMessage keeps a batched message well under 64 KiB.
const maxEventsPerMessage = 128

// eventsMessage is one envelope as is, or several as a JSON array.
func eventsMessage(evs []Event) []byte {
	if len(evs) == 1 {
		return evs[0].Raw
	}
	n := 2
	for _, e := range evs {
		n += len(e.Raw) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, e := range evs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e.Raw...)
	}
	return append(b, ']')
}

// maxPending bounds the events a failing disk keeps in memory for a later
// commit (about ten minutes of a busy depot, a few MB): more would not fit
// the one transaction that writes them when the disk is back. Beyond it the
// oldest are dropped from the log (and logged).
const maxPending = 20_000

// compactPending keeps what a failed commit must still write: its events,
// and the newest state of each route, driver, rescue, offer and assignment.
func compactPending(b *Batch) Batch {
	out := Batch{Events: slices.Clone(b.Events)}
	if n := len(out.Events) - maxPending; n > 0 {
		out.Events = out.Events[n:]
	}
	out.Routes = lastBy(b.Routes, func(r RouteStatus) string { return r.RouteID })
	out.Latest = lastBy(b.Latest, func(f Fix) string { return f.DriverID })
	out.Rescues = lastBy(b.Rescues, func(r Rescue) string { return r.RescueID })
	out.Offers = lastBy(b.Offers, func(o Offer) string { return o.VTOID })
	out.Assignments = lastBy(b.Assignments, func(a Assignment) string { return a.RouteID })
	return out
}

// lastBy keeps the last element of each key, in order.
func lastBy[T any](xs []T, key func(T) string) []T {
	last := make(map[string]int, len(xs))
	for i, x := range xs {
		last[key(x)] = i
	}
	out := make([]T, 0, len(last))
	for i, x := range xs {
		if last[key(x)] == i {
			out = append(out, x)
		}
	}
	return out
}

// StoreHealth says whether the last commit succeeded.
type StoreHealth struct {
	OK      bool   `json:"ok"`
	Error   string `json:"error,omitempty"`
	Pending int    `json:"pending"` // events and records waiting for the disk
	Queued  int    `json:"queued"`  // jobs waiting for the pipeline (at most 4096)
}

// storeHealth reports the store's health as of the last commit, or as
// stalled when the commit on disk has taken longer than stallAfter. It
// never waits for the disk.
func (p *pipeline) storeHealth() StoreHealth {
	p.healthMu.Lock()
	h := p.health
	p.healthMu.Unlock()
	// A token waiting on space is a slot no writer holds yet; a writer that
	// finds the queue full counts itself in for a moment.
	h.Queued = min(int(p.queued.Load())-len(p.space), queueLen)
	if start := p.commitStart.Load(); start != 0 {
		if wait := p.now().Sub(time.Unix(0, start)); wait > stallAfter {
			h.OK = false
			h.Error = fmt.Sprintf("the disk has not finished a write for %s", wait.Round(time.Second))
		}
	}
	return h
}

// busy is how long the oldest batch in the pipeline has been in progress
// (received by the committer, not yet answered by the publisher), 0 when
// none is. A commit or publish that hangs makes it grow without bound; a
// busy but healthy pipeline keeps it at a commit's time or two. It takes no
// lock: two atomic loads.
func (p *pipeline) busy() time.Duration {
	var oldest int64
	for i := range p.inflight {
		if t := p.inflight[i].Load(); t != 0 && (oldest == 0 || t < oldest) {
			oldest = t
		}
	}
	if oldest == 0 {
		return 0
	}
	return max(0, p.now().Sub(time.Unix(0, oldest)))
}

// run is the committer, the single goroutine that writes. Whatever queued
// up while one commit was on disk goes into the next, so the number of
// fsyncs follows the disk's pace, not the message rate.
//
// When a commit fails (disk full, I/O error), live delivery goes on, the
// waiters hear the error (a QoS 1 fix is refused, not acknowledged), and
// the batch's events and records stay pending and are written with the
// next commit that succeeds, so the event log has no hole once the disk
// is back. Fixes are not kept: their senders were refused and resend.
func (p *pipeline) run() {
	// Two stages: this goroutine commits while the publisher publishes the
	// previous commit, so a commit's disk wait and the next one's fan-out
	// overlap. Two batches go round between them and are reused: at 10,000
	// fixes/s fresh batches' growing slices were a tenth of the
	// allocations. Nothing keeps a batch's slices (compactPending copies).
	pubs, free := make(chan *committed, 1), make(chan *committed, 2)
	free <- &committed{since: &p.inflight[0]}
	free <- &committed{since: &p.inflight[1]}
	pubDone := make(chan struct{})
	go func() { defer close(pubDone); p.publisher(pubs, free) }()
	defer func() { close(pubs); <-pubDone; close(p.done) }()
	var pending Batch
	var fails storeFailures
	var lastStart time.Time // monotonic: the floor is real time, whatever p.now says
	floor := time.NewTimer(time.Hour)
	floor.Stop()
	for first := range p.jobs {
		p.unreserve()
		// Received now: while this waits for a free batch, the batch that
		// holds it is older and counts for Busy.
		got := p.now().UnixNano()
		c := <-free
		c.since.Store(got)
		b := &c.b
		b.reset()
		b.append(&pending)
		b.append(&first.b)
		c.waiters = append(c.waiters[:0], first.done)
		take := func(j *job) {
			p.unreserve()
			b.append(&j.b)
			c.waiters = append(c.waiters, j.done)
		}
	drain:
		for b.size() < maxBatch {
			select {
			case j, ok := <-p.jobs:
				if !ok {
					break drain
				}
				take(j)
			default:
				break drain
			}
		}
		// A commit begun less than minCommitGap after the last one waits
		// out the rest of the gap, gathering what arrives meanwhile.
		if wait := minCommitGap - time.Since(lastStart); wait > 0 && b.size() < maxBatch {
			floor.Reset(wait)
		gather:
			for b.size() < maxBatch {
				select {
				case j, ok := <-p.jobs:
					if !ok {
						break gather
					}
					take(j)
				case <-floor.C:
					break gather
				}
			}
			floor.Stop()
		}
		lastStart = time.Now()
		cstart := p.now()
		p.commitStart.Store(cstart.UnixNano())
		err := p.store.Commit(b)
		p.commitStart.Store(0)
		p.stats.Commits.Add(1)
		if p.metrics != nil {
			p.metrics.Commit(p.now().Sub(cstart), b.size(), err)
		}
		c.fresh = b.Events[len(pending.Events):] // the pending ones were published already
		c.msgs = b.Messages[len(pending.Messages):]
		c.err = err
		if err != nil {
			p.stats.CommitErrors.Add(1)
			fails.failed(p.log, err, len(b.Fixes), len(b.Events), max(0, len(b.Events)-maxPending), p.now())
			pending = compactPending(b)
		} else {
			fails.ok(p.log)
			pending = Batch{}
			if n := len(b.Events); n > 0 {
				p.storedSeq.Store(b.Events[n-1].Seq)
			}
			if p.onCommit != nil && len(b.Events) > 0 {
				p.onCommit()
			}
		}
		p.healthMu.Lock()
		p.health = StoreHealth{OK: err == nil, Pending: pending.size()}
		if err != nil {
			p.health.Error = err.Error()
		}
		p.healthMu.Unlock()
		pubs <- c
	}
}

// committed is a commit's outcome on its way to the publisher.
type committed struct {
	b       Batch
	fresh   []Event // events not published before
	msgs    []Message
	waiters []chan error
	err     error
	since   *atomic.Int64 // one of pipeline.inflight
}

// publisher publishes each commit's events, route states and messages in
// commit order, then answers the commit's waiters (so a caller whose work
// returned finds it published).
func (p *pipeline) publisher(pubs <-chan *committed, free chan<- *committed) {
	st := stateThrottle{last: map[string]published{}, dirty: map[string]RouteStatus{}}
	defer st.flush(p)
	for {
		var c *committed
		select {
		case c = <-pubs:
			if c == nil {
				return
			}
		case <-st.due():
			st.flush(p)
			continue
		}
		// One message per commit: under load a delivery carries a batch of
		// envelopes (a JSON array, in seq order) instead of one, since a
		// broker's cost is per message, not per byte (docs/design.md §4).
		for i := 0; i < len(c.fresh); i += maxEventsPerMessage {
			chunk := c.fresh[i:min(len(c.fresh), i+maxEventsPerMessage)]
			if perr := p.pub.Publish(p.topics.Events(), eventsMessage(chunk), false, 1); perr != nil {
				p.log.Warn("publish events", "first", chunk[0].Seq, "n", len(chunk), "err", perr)
			}
		}
		p.stats.Events.Add(int64(len(c.fresh)))
		st.publish(p, c.b.States)
		for _, m := range c.msgs {
			if perr := p.pub.PublishExpiring(m.Topic, m.Payload, m.Retain, 1, m.Expiry); perr != nil {
				p.log.Warn("publish", "topic", m.Topic, "err", perr)
			}
		}
		if c.err == nil {
			// Only once stored: a refused fix's sender sends it again.
			p.publishLate(c.b.Late)
		}
		now := p.now()
		p.lat.add(c.b.fixRecv, now)
		if p.metrics != nil {
			for _, r := range c.b.fixRecv {
				p.metrics.FixToPublish(now.Sub(time.UnixMilli(r)))
			}
		}
		for _, w := range c.waiters {
			if w != nil {
				w <- c.err
			}
		}
		c.since.Store(0)
		free <- c
	}
}

// maxLatePerMessage bounds one message of late fixes (about 25 KB).
const maxLatePerMessage = 500

// publishLate publishes late fixes (Batch.Late), grouped by route, on each
// route's late topic, not retained, at QoS 0: one message a route a commit
// (more past maxLatePerMessage), so a handheld's backlog of a dead zone
// reaches a trail that shows the route without a reload. Only a dashboard
// with that route's drawer open subscribes; the ACL lets dispatchers and
// admins read it, like the rest of the depot's tree (Identity.Allowed),
// and no driver. A fix that moved its route is not here: its route:update
// carries it. The payload:
//
//	{"routeId":"R12","fixes":[{"ts":1764150000123,"lat":38.58,"lng":-121.49},…]}
//
// It sorts late in place (the batch is the publisher's until it is freed).
func (p *pipeline) publishLate(late []HistoryFix) {
	if len(late) == 0 {
		return
	}
	slices.SortStableFunc(late, func(a, b HistoryFix) int { return strings.Compare(a.RouteID, b.RouteID) })
	for i := 0; i < len(late); {
		j := i + 1
		for j < len(late) && j-i < maxLatePerMessage && late[j].RouteID == late[i].RouteID {
			j++
		}
		// A buffer a message: a publisher may keep what it is given.
		buf := appendLate(make([]byte, 0, 32+56*(j-i)), late[i:j])
		if err := p.pub.Publish(p.topics.RouteLate(late[i].RouteID), buf, false, 0); err != nil {
			p.log.Warn("publish late fixes", "route", late[i].RouteID, "n", j-i, "err", err)
		}
		p.stats.LatePublished.Add(int64(j - i))
		i = j
	}
}

// appendLate appends the late-topic message of fixes, all of one route.
// Fixes passed ParseFix: their numbers are finite.
func appendLate(b []byte, fixes []HistoryFix) []byte {
	b = append(b, `{"routeId":`...)
	b = appendJSONString(b, fixes[0].RouteID)
	b = append(b, `,"fixes":[`...)
	for k, f := range fixes {
		if k > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"ts":`...)
		b = strconv.AppendInt(b, f.Fix.TS, 10)
		b = append(b, `,"lat":`...)
		b = appendJSONFloat(b, f.Fix.Lat)
		b = append(b, `,"lng":`...)
		b = appendJSONFloat(b, f.Fix.Lng)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// stateMinInterval is how often at most a route's retained state is
// republished for a move alone. Events carry every fix; the retained state
// is for late subscribers, and at 10 fixes/s per handheld republishing it
// for each was a tenth of the appliance's CPU.
const stateMinInterval = time.Second

type published struct {
	at time.Time
	r  RouteStatus
}

// stateThrottle publishes route states for the pipeline: at once when
// anything but the position changed, at most once per stateMinInterval
// when only the position did, and never staler than that.
type stateThrottle struct {
	last  map[string]published
	dirty map[string]RouteStatus
	timer *time.Timer
}

func (st *stateThrottle) publish(p *pipeline, rs []RouteStatus) {
	now := p.now()
	newest := make(map[string]int, len(rs))
	for i, r := range rs {
		newest[r.RouteID] = i
	}
	for i, r := range rs {
		if newest[r.RouteID] != i {
			continue // a later entry supersedes this one
		}
		last, ok := st.last[r.RouteID]
		if ok && now.Sub(last.at) < stateMinInterval && movedOnly(last.r, r) {
			st.dirty[r.RouteID] = r
			if st.timer == nil {
				st.timer = time.NewTimer(stateMinInterval)
			}
			continue
		}
		delete(st.dirty, r.RouteID)
		st.last[r.RouteID] = published{now, r}
		p.publishState(r)
	}
}

// due fires when deferred states are to be published (never when none are).
func (st *stateThrottle) due() <-chan time.Time {
	if st.timer == nil {
		return nil
	}
	return st.timer.C
}

func (st *stateThrottle) flush(p *pipeline) {
	now := p.now()
	for id, r := range st.dirty {
		st.last[id] = published{now, r}
		p.publishState(r)
	}
	clear(st.dirty)
	if st.timer != nil {
		st.timer.Stop()
		st.timer = nil
	}
}

// movedOnly reports whether b differs from a in position and time alone.
func movedOnly(a, b RouteStatus) bool {
	a.CurrentLat, a.CurrentLng, a.LastUpdated = b.CurrentLat, b.CurrentLng, b.LastUpdated
	return a == b
}

func (p *pipeline) publishState(r RouteStatus) {
	raw, err := r.AppendJSON(make([]byte, 0, 384))
	if err == nil {
		err = p.pub.Publish(p.topics.RouteState(r.RouteID), raw, true, 1)
	}
	if err != nil {
		p.log.Warn("publish route state", "route", r.RouteID, "err", err)
	}
}
