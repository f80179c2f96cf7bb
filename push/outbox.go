package push

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
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
	sendLimit = 15 * time.Second
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
	// message (by its event id): then no push is sent.
	Live  func(driverID, messageID string) bool
	Log   *slog.Logger
	Now   func() time.Time
	Grace time.Duration
	Poll  time.Duration

	mu     sync.Mutex
	health Health
	warned map[string]bool // target id → an error was logged once
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
	for {
		evs, err := o.Store.EventsAfter(cursor, 500)
		if err != nil || len(evs) == 0 {
			return err
		}
		for _, ev := range evs {
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
		if err := o.Store.PushPut(cursorKey, binary.BigEndian.AppendUint64(nil, cursor)); err != nil {
			return err
		}
	}
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
	e := &entry{Seq: seq, DriverID: driver, Msg: msg, Due: at.Add(grace)}
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
	for _, v := range vals {
		if ctx.Err() != nil {
			return nil
		}
		var e entry
		if json.Unmarshal(v, &e) != nil {
			continue
		}
		if err := o.attempt(ctx, &e); err != nil {
			return err
		}
	}
	return nil
}

// attempt sends e to each of its driver's targets not yet done.
func (o *Outbox) attempt(ctx context.Context, e *entry) error {
	now := o.now()
	switch {
	case !now.Before(e.Msg.Expires):
		o.count(func(h *Health) { h.Expired++ })
		return o.del(entryKey(e))
	case now.Before(e.Due) || now.Before(e.Next):
		return nil
	case e.Attempts == 0 && len(e.Done) == 0 && o.Live != nil && o.Live(e.DriverID, e.Msg.ID):
		o.count(func(h *Health) { h.Live++ })
		return o.del(entryKey(e))
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
			o.noteFailure(t, r.Err, false)
		case r.Err != nil:
			e.Done = append(e.Done, t.ID)
			o.count(func(h *Health) { h.Failed++ })
			o.noteFailure(t, r.Err, true)
		default:
			e.Done = append(e.Done, t.ID)
			o.count(func(h *Health) { h.Sent++; h.LastSuccess = o.now().UTC() })
			t.LastOK, t.LastError = o.now().UTC(), ""
			if err := o.putTarget(t); err != nil {
				return err
			}
			o.mu.Lock()
			delete(o.warned, t.ID)
			o.mu.Unlock()
		}
		if err := o.putEntry(e); err != nil { // a delivery is on record before the next send
			return err
		}
	}
	if !retry {
		return o.del(entryKey(e))
	}
	e.Attempts++
	e.Next = now.Add(max(wait, backoff(e.Attempts)))
	return o.putEntry(e)
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
	_ = o.putTarget(t)
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
