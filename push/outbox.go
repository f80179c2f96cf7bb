package push

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/depotcc/depot/bridge"
)

// Store is where the outbox keeps its targets, its entries and its place in
// the event log, and the event log it follows. The storage package
// implements it over nutsdb.
type Store interface {
	PushGet(key string) ([]byte, error) // bridge.ErrNotFound when absent
	PushPut(key string, v []byte) error
	PushDelete(key string) error
	PushScan(prefix string) ([][]byte, error)
	EventsAfter(after uint64, limit int) ([]json.RawMessage, error)
}

// Defaults of an Outbox.
const (
	DefaultGrace = 5 * time.Second // the live MQTT session's head start
	DefaultPoll  = time.Second
	// MaxTargets bounds the targets of one driver: a phone re-installing
	// its app gets a new token each time; the oldest goes first.
	MaxTargets = 8
	// pushTTL is how long a rescue or a reassignment is worth a push.
	pushTTL   = time.Hour
	sendLimit = 10 * time.Second
)

// Outbox turns the depot's event log into pushes (docs/handhelds.md). It
// follows the log from a cursor kept in the store: every VTO offer, rescue
// assignment and reassignment becomes an entry per driver with a push
// target, stored before anything is sent. An entry waits Grace for the
// driver's live MQTT session (Live), then goes to each target, retried
// with backoff (honouring Retry-After) across network loss and restarts
// until delivered or expired. It runs on its own goroutine and never
// touches the pipeline or the broker.
type Outbox struct {
	Store   Store
	Senders map[string]Sender // by target kind; a kind without a sender is not pushed
	// Live reports whether the driver's MQTT session acknowledged the
	// message, by any of ids (its event id, or the offer's or rescue's
	// id that a resent inbox message carries): then no push is sent.
	Live func(driverID string, ids ...string) bool
	// Last is the newest seq on disk (bridge.Depot.StoredSeq, not
	// LastSeq, which runs ahead while a commit is on its way): the cursor
	// passes over a stretch with no events only below it.
	Last  func() uint64
	Log   *slog.Logger
	Now   func() time.Time
	Grace time.Duration
	Poll  time.Duration

	mu     sync.Mutex
	health Health
	warned map[string]bool // target id → an error was logged once
	// held are entries whose record could not be written after a send (a
	// full disk): they wait here instead of being sent again each round.
	held map[string]time.Time
	// The store's part of Health, read at most once a second (a scrape
	// of /metrics asks for it once per figure).
	scanned   time.Time
	queued    int
	targets   int
	failingTs int
}

// Health is the outbox's state for the heartbeat and /metrics.
type Health struct {
	Enabled        []string  `json:"enabled"` // target kinds with a sender
	Queued         int       `json:"queued"`  // entries waiting
	Targets        int       `json:"targets"`
	FailingTargets int       `json:"failingTargets"` // whose last attempt failed
	LastSuccess    time.Time `json:"lastSuccess,omitzero"`
	Sent           int64     `json:"sent"`
	Failed         int64     `json:"failed"`  // given up (not retryable)
	Removed        int64     `json:"removed"` // dead targets forgotten
	Expired        int64     `json:"expired"` // entries that expired before delivery
	Settled        int64     `json:"settled"` // dropped: the offer or rescue was answered or closed first
	Live           int64     `json:"live"`    // not pushed: the live session took it
}

// entry is one message for one driver, as stored.
type entry struct {
	Seq      uint64    `json:"seq"`
	DriverID string    `json:"driverId"`
	Msg      Message   `json:"msg"`
	Due      time.Time `json:"due"`  // after the live session's head start
	Next     time.Time `json:"next"` // the next attempt
	Attempts int       `json:"attempts"`
	Done     []string  `json:"done,omitempty"` // targets delivered or given up
}

func (o *Outbox) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func targetKey(driver, id string) string { return "t/" + driver + "\x00" + id }
func targetPrefix(driver string) string  { return "t/" + driver + "\x00" }
func entryKey(e *entry) string {
	return "o/" + string(binary.BigEndian.AppendUint64(nil, e.Seq)) + e.DriverID
}

const cursorKey = "cursor"

// ErrInvalidTarget wraps every reason a target is refused at registration.
var ErrInvalidTarget = errors.New("invalid push target")

// Register keeps a driver's push target (registering it again refreshes
// it). A driver with MaxTargets loses its oldest.
func (o *Outbox) Register(driver string, t Target) (Target, error) {
	if err := t.Validate(); err != nil {
		return Target{}, fmt.Errorf("%w: %v", ErrInvalidTarget, strings.TrimPrefix(err.Error(), "push: "))
	}
	t.DriverID, t.ID, t.Created, t.LastOK, t.LastError = driver, TargetID(t), o.now().UTC(), time.Time{}, ""
	if t.Kind == KindFCM {
		t.Subscription = nil
	} else {
		t.Token = ""
	}
	ts, err := o.Targets(driver)
	if err != nil {
		return Target{}, err
	}
	ts = slices.DeleteFunc(ts, func(x Target) bool { return x.ID == t.ID })
	for len(ts) >= MaxTargets {
		if err := o.del(targetKey(driver, ts[0].ID)); err != nil {
			return Target{}, err
		}
		ts = ts[1:]
	}
	return t, o.putTarget(t)
}

func (o *Outbox) putTarget(t Target) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	o.changed()
	return o.Store.PushPut(targetKey(t.DriverID, t.ID), b)
}

// del deletes a record of the outbox's.
func (o *Outbox) del(key string) error {
	o.changed()
	return o.Store.PushDelete(key)
}

// changed makes the next Health read the store again.
func (o *Outbox) changed() {
	o.mu.Lock()
	o.scanned = time.Time{}
	o.mu.Unlock()
}

// Unregister forgets a driver's target (t needs only its kind and token or
// endpoint). Not an error when it was not registered.
func (o *Outbox) Unregister(driver string, t Target) error {
	return o.del(targetKey(driver, TargetID(t)))
}

// DropDriver forgets every target of a driver (its credential was revoked).
func (o *Outbox) DropDriver(driver string) error {
	ts, err := o.Targets(driver)
	for _, t := range ts {
		if err := o.del(targetKey(driver, t.ID)); err != nil {
			return err
		}
	}
	return err
}

// Targets lists a driver's targets, oldest first; "" lists everyone's.
func (o *Outbox) Targets(driver string) ([]Target, error) {
	prefix := "t/"
	if driver != "" {
		prefix = targetPrefix(driver)
	}
	vals, err := o.Store.PushScan(prefix)
	if err != nil {
		return nil, err
	}
	out := make([]Target, 0, len(vals))
	for _, v := range vals {
		var t Target
		if json.Unmarshal(v, &t) == nil {
			out = append(out, t)
		}
	}
	slices.SortStableFunc(out, func(a, b Target) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// Start places the cursor at lastSeq the first time the outbox runs, so a
// depot turning push on does not push its whole history.
func (o *Outbox) Start(lastSeq uint64) error {
	if _, err := o.Store.PushGet(cursorKey); err == nil || !errors.Is(err, bridge.ErrNotFound) {
		return err
	}
	return o.Store.PushPut(cursorKey, binary.BigEndian.AppendUint64(nil, lastSeq))
}

// Run follows the log and delivers until ctx ends.
func (o *Outbox) Run(ctx context.Context) {
	poll := o.Poll
	if poll <= 0 {
		poll = DefaultPoll
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if err := o.Step(ctx); err != nil && ctx.Err() == nil {
			o.log().Warn("push outbox", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Step is one round: new events into entries, then every due entry sent.
func (o *Outbox) Step(ctx context.Context) error {
	if err := o.follow(); err != nil {
		return err
	}
	return o.deliver(ctx)
}

func (o *Outbox) log() *slog.Logger {
	if o.Log != nil {
		return o.Log
	}
	return slog.Default()
}

// follow reads the events after the cursor and files an entry for each
// driver a push is for and who has a target; then moves the cursor.
func (o *Outbox) follow() error {
	raw, err := o.Store.PushGet(cursorKey)
	if err != nil || len(raw) != 8 {
		return fmt.Errorf("push cursor: %v", err)
	}
	cursor := binary.BigEndian.Uint64(raw)
	if o.Last != nil {
		// Read before the look for targets: an event at or below last was
		// stored before it, when nobody could have been pushed it.
		last := o.Last()
		if last <= cursor {
			return nil
		}
		if idle, err := o.idle(); err != nil || idle {
			if err != nil {
				return err
			}
			return o.Store.PushPut(cursorKey, binary.BigEndian.AppendUint64(nil, last))
		}
	}
	for {
		evs, err := o.Store.EventsAfter(cursor, 500)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			last := uint64(0)
			if o.Last != nil {
				last = o.Last()
			}
			if last <= cursor {
				return nil
			}
			// A stretch with no events on disk below the newest stored
			// (dropped by a failing disk, or pruned): go past it, or
			// nothing after it would ever be pushed. Above the newest
			// stored, the events are on their way to the disk: wait.
			cursor = min(cursor+500, last)
			if err := o.Store.PushPut(cursorKey, binary.BigEndian.AppendUint64(nil, cursor)); err != nil {
				return err
			}
			continue
		}
		before := cursor
		for _, ev := range evs {
			// Nearly every event is a route update, which the outbox never
			// pushes: its head says so without decoding its payload (at
			// 10,000 fixes a second the whole decode was 9 % of the box's
			// CPU).
			if h, ok := bridge.ReadEventHead(ev); ok && !pushable(h.Type) {
				if h.Seq > cursor {
					cursor = h.Seq
				}
				continue
			}
			var env struct {
				Seq       uint64          `json:"seq"`
				ID        string          `json:"id"`
				Type      string          `json:"type"`
				Priority  string          `json:"priority"`
				Timestamp time.Time       `json:"timestamp"`
				Payload   json.RawMessage `json:"payload"`
			}
			if json.Unmarshal(ev, &env) != nil || env.Seq <= cursor {
				continue
			}
			cursor = env.Seq
			if ref := settled(env.Type, env.Payload); ref != "" {
				if err := o.cancel(ref); err != nil {
					return err
				}
				continue
			}
			if env.Priority != bridge.PriorityHigh && env.Priority != bridge.PriorityCritical {
				continue
			}
			for driver, msg := range messagesOf(env.Type, env.Payload, env.Timestamp) {
				msg.ID = env.ID
				msg.Data["seq"] = strconv.FormatUint(env.Seq, 10)
				msg.Data["type"], msg.Data["driverId"] = env.Type, driver
				if err := o.file(env.Seq, driver, msg, env.Timestamp); err != nil {
					return err
				}
			}
		}
		if cursor == before {
			// Nothing here could be read: never stay on it for good.
			cursor += uint64(len(evs))
		}
		if err := o.Store.PushPut(cursorKey, binary.BigEndian.AppendUint64(nil, cursor)); err != nil {
			return err
		}
	}
}

// idle says whether the outbox has no target and no entry: then no event
// can be pushed or cancel a push, and follow passes over the log unread.
// Most depots run so (push is opt-in per handheld), and at 10,000 fixes a
// second reading every event back from the disk was 4 % of the box's CPU
// and 8 % of what it allocated.
func (o *Outbox) idle() (bool, error) {
	for _, prefix := range []string{"t/", "o/"} {
		vals, err := o.Store.PushScan(prefix)
		if err != nil || len(vals) > 0 {
			return false, err
		}
	}
	return true, nil
}

// pushable says whether the outbox can act on an event of type typ: push
// it (messagesOf) or cancel a push waiting for it (settled).
func pushable(typ string) bool { return pushTypes[typ] }

// pushTypes are the cases of messagesOf and settled.
var pushTypes = map[string]bool{
	bridge.EventVTOOffer: true, bridge.EventRescueAlert: true, bridge.EventRouteReassign: true,
	bridge.EventVTOAccepted: true, bridge.EventVTODeclined: true, bridge.EventVTOExpired: true, bridge.EventVTOConfirmed: true,
	bridge.EventRescueUpdated: true,
}

// settled names the offer or rescue an event closes (answered, expired,
// confirmed, acknowledged, resolved): a push still waiting for it would
// only tell the driver something that is over.
func settled(typ string, payload json.RawMessage) string {
	var p struct {
		VTOID    string `json:"vtoId"`
		RescueID string `json:"rescueId"`
		State    string `json:"state"`
	}
	switch typ {
	case bridge.EventVTOAccepted, bridge.EventVTODeclined, bridge.EventVTOExpired, bridge.EventVTOConfirmed:
		if json.Unmarshal(payload, &p) == nil {
			return p.VTOID
		}
	case bridge.EventRescueUpdated:
		if json.Unmarshal(payload, &p) == nil && p.State != bridge.StateOpen {
			return p.RescueID
		}
	}
	return ""
}

// cancel drops the waiting entries of an offer or rescue.
func (o *Outbox) cancel(ref string) error {
	vals, err := o.Store.PushScan("o/")
	if err != nil {
		return err
	}
	for _, v := range vals {
		var e entry
		if json.Unmarshal(v, &e) == nil && e.Msg.CollapseKey == ref {
			o.count(func(h *Health) { h.Settled++ })
			if err := o.del(entryKey(&e)); err != nil {
				return err
			}
		}
	}
	return nil
}

// file stores an entry for driver if it has a target and the message is
// still worth sending.
func (o *Outbox) file(seq uint64, driver string, msg Message, at time.Time) error {
	if !bridge.ValidID(driver) || !o.now().Before(msg.Expires) {
		return nil
	}
	ts, err := o.Targets(driver)
	if err != nil || len(ts) == 0 {
		return err
	}
	grace := o.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	// From now when the event is old (the outbox was behind): the live
	// session gets its head start all the same.
	e := &entry{Seq: seq, DriverID: driver, Msg: msg, Due: maxTime(at, o.now()).Add(grace)}
	return o.putEntry(e)
}

func (o *Outbox) putEntry(e *entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	o.changed()
	return o.Store.PushPut(entryKey(e), b)
}

// deliver sends every entry that is due, oldest first.
func (o *Outbox) deliver(ctx context.Context) error {
	vals, err := o.Store.PushScan("o/")
	if err != nil {
		return err
	}
	down := map[string]bool{} // services that failed this round: not tried again in it
	for _, v := range vals {
		if ctx.Err() != nil {
			return nil
		}
		var e entry
		if json.Unmarshal(v, &e) != nil {
			continue
		}
		if err := o.attempt(ctx, &e, down); err != nil {
			return err
		}
	}
	return nil
}

// service names the push service a target is sent through: FCM, or a
// Web Push endpoint's host.
func service(t Target) string {
	if t.Subscription != nil {
		if u, err := url.Parse(t.Subscription.Endpoint); err == nil {
			return t.Kind + "/" + u.Host
		}
	}
	return t.Kind
}

// attempt sends e to each of its driver's targets not yet done. A
// service that failed with no answer this round (down) is not tried again
// in it, so one unreachable service does not hold up the others.
func (o *Outbox) attempt(ctx context.Context, e *entry, down map[string]bool) error {
	now := o.now()
	key := entryKey(e)
	o.mu.Lock()
	heldUntil, held := o.held[key]
	o.mu.Unlock()
	switch {
	case !now.Before(e.Msg.Expires):
		o.count(func(h *Health) { h.Expired++ })
		return o.del(key)
	case now.Before(e.Due) || now.Before(e.Next) || held && now.Before(heldUntil):
		return nil
	case o.Live != nil && o.Live(e.DriverID, e.Msg.ID, e.Msg.CollapseKey):
		o.count(func(h *Health) { h.Live++ })
		return o.del(key)
	}
	ts, err := o.Targets(e.DriverID)
	if err != nil {
		return err
	}
	retry, wait := false, time.Duration(0)
	for _, t := range ts {
		if slices.Contains(e.Done, t.ID) {
			continue
		}
		s, ok := o.Senders[t.Kind]
		if !ok {
			continue // that kind is off: the target waits for it to be on, until the entry expires
		}
		if down[service(t)] {
			retry = true
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, sendLimit)
		r := s.Send(sctx, t, e.Msg)
		cancel()
		if ctx.Err() != nil {
			return nil // shutting down: the entry stays as it is
		}
		switch {
		case r.Remove:
			o.log().Info("push target removed", "driver", t.DriverID, "target", t.ID, "kind", t.Kind, "reason", errText(r.Err))
			o.count(func(h *Health) { h.Removed++ })
			if err := o.del(targetKey(t.DriverID, t.ID)); err != nil {
				return err
			}
		case r.Retry:
			retry, wait = true, max(wait, r.RetryAfter)
			if r.RetryAfter == 0 {
				down[service(t)] = true
			}
			o.noteFailure(t, r.Err, false)
		case r.Err != nil:
			e.Done = append(e.Done, t.ID)
			o.count(func(h *Health) { h.Failed++ })
			o.noteFailure(t, r.Err, true)
		default:
			e.Done = append(e.Done, t.ID)
			o.count(func(h *Health) { h.Sent++; h.LastSuccess = o.now().UTC() })
			// The delivery on record first: a disk that takes no write
			// must not make the next round send it again.
			if err := o.putEntry(e); err != nil {
				// Sent once now; again in five minutes at the soonest if
				// the disk still takes nothing (nothing in memory can tell
				// a restart it went).
				o.hold(key, now.Add(5*time.Minute))
				return err
			}
			t.LastOK, t.LastError = o.now().UTC(), ""
			o.updateTarget(t)
			o.mu.Lock()
			delete(o.warned, t.ID)
			o.mu.Unlock()
		}
	}
	if !retry {
		o.mu.Lock()
		delete(o.held, key)
		o.mu.Unlock()
		return o.del(key)
	}
	e.Attempts++
	e.Next = now.Add(max(wait, backoff(e.Attempts)))
	if err := o.putEntry(e); err != nil {
		o.hold(key, e.Next)
		return err
	}
	return nil
}

// hold keeps an entry back until t without a record of it.
func (o *Outbox) hold(key string, t time.Time) {
	o.mu.Lock()
	if o.held == nil || len(o.held) > 10000 {
		o.held = map[string]time.Time{}
	}
	o.held[key] = t
	o.mu.Unlock()
}

// updateTarget writes what became of a target, only if it is still
// registered: one dropped during a send (switched off, its device
// revoked) must not come back. Best effort: a failed write loses a
// status, not a push.
func (o *Outbox) updateTarget(t Target) {
	if _, err := o.Store.PushGet(targetKey(t.DriverID, t.ID)); err != nil {
		return
	}
	_ = o.putTarget(t)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// backoff is 2 s doubling to 5 min, with up to 20 % jitter so that
// targets of one push service do not all come back at once.
func backoff(n int) time.Duration {
	d := 2 * time.Second << min(n-1, 8)
	d = min(d, 5*time.Minute)
	return d + time.Duration(rand.Int64N(int64(d)/5+1))
}

// noteFailure records a target's failure on it, and logs it once until
// it succeeds again.
func (o *Outbox) noteFailure(t Target, err error, final bool) {
	t.LastError = errText(err)
	o.updateTarget(t)
	o.mu.Lock()
	if o.warned == nil {
		o.warned = map[string]bool{}
	}
	first := !o.warned[t.ID]
	o.warned[t.ID] = true
	o.mu.Unlock()
	if first {
		o.log().Warn("push failed", "driver", t.DriverID, "target", t.ID, "kind", t.Kind, "retrying", !final, "err", t.LastError)
	}
}

func errText(err error) string {
	if err == nil {
		return "unknown error"
	}
	s := err.Error()
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

func (o *Outbox) count(f func(*Health)) {
	o.mu.Lock()
	f(&o.health)
	o.mu.Unlock()
}

// Health reports the outbox's state now.
func (o *Outbox) Health() Health {
	o.mu.Lock()
	stale := time.Since(o.scanned) > time.Second
	o.mu.Unlock()
	if stale {
		queued, targets, failing := 0, 0, 0
		if vals, err := o.Store.PushScan("o/"); err == nil {
			queued = len(vals)
		}
		if ts, err := o.Targets(""); err == nil {
			targets = len(ts)
			for _, t := range ts {
				if t.LastError != "" {
					failing++
				}
			}
		}
		o.mu.Lock()
		o.scanned, o.queued, o.targets, o.failingTs = time.Now(), queued, targets, failing
		o.mu.Unlock()
	}
	o.mu.Lock()
	h := o.health
	h.Queued, h.Targets, h.FailingTargets = o.queued, o.targets, o.failingTs
	o.mu.Unlock()
	h.Enabled = []string{}
	for k := range o.Senders {
		h.Enabled = append(h.Enabled, k)
	}
	slices.Sort(h.Enabled)
	return h
}
