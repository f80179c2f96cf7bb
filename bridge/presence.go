package bridge

import (
	"encoding/json"
	"time"
)

// Presence states of a driver.
const (
	PresenceOnline  = "online"
	PresenceOffline = "offline"
	PresenceSilent  = "silent" // on an unfinished route, no fix for SilentAfter
)

type presence struct {
	State     string    `json:"state"`
	Since     time.Time `json:"since"`
	Connected bool      `json:"connected"`
	Active    time.Time `json:"-"` // last fix or connect: what silence is measured from
}

func (d *Depot) silentAfter() time.Duration {
	if d.SilentAfter > 0 {
		return d.SilentAfter
	}
	return 5 * time.Minute
}

func (d *Depot) presenceLocked(driver string) *presence {
	p, ok := d.presence[driver]
	if !ok {
		p = &presence{State: PresenceOffline}
		d.presence[driver] = p
	}
	return p
}

// setPresenceLocked moves driver to state, with a driver:presence event and
// the retained presence topic, when it is a change.
func (d *Depot) setPresenceLocked(b *Batch, driver, state string, since time.Time) error {
	p := d.presenceLocked(driver)
	if p.State == state && !p.Since.IsZero() {
		return nil
	}
	p.State, p.Since = state, since.UTC().Truncate(time.Millisecond)
	if _, _, err := d.emitLocked(b, EventDriverPresence, PriorityNormal, DriverPresence{
		DriverID: driver, State: state, Since: p.Since,
	}); err != nil {
		return err
	}
	raw, _ := json.Marshal(PresenceMessage{State: state, TS: p.Since.UnixMilli()})
	b.Messages = append(b.Messages, Message{Topic: d.Topics.Driver(driver, KindPresence), Payload: raw, Retain: true})
	return nil
}

// DriverConnected records a handheld's session start (from the broker):
// online, and its open VTO offers are sent again.
func (d *Depot) DriverConnected(driver string) error {
	return d.act(func(b *Batch) error {
		now := d.Now()
		p := d.presenceLocked(driver)
		p.Connected, p.Active = true, now
		d.resendOffersLocked(b, driver)
		return d.setPresenceLocked(b, driver, PresenceOnline, now)
	})
}

// DriverDisconnected records a handheld's session end (clean or not).
func (d *Depot) DriverDisconnected(driver string) error {
	return d.act(func(b *Batch) error {
		now := d.Now()
		p := d.presenceLocked(driver)
		p.Connected = false
		if p.State == PresenceSilent {
			return nil // still silent: no fix, now not connected either
		}
		return d.setPresenceLocked(b, driver, PresenceOffline, now)
	})
}

// fixSeenLocked notes a fix from driver: a silent driver is back.
func (d *Depot) fixSeenLocked(b *Batch, driver string) {
	now := d.Now()
	p := d.presenceLocked(driver)
	p.Active = now
	if p.State == PresenceSilent || p.State == PresenceOffline && p.Since.IsZero() {
		_ = d.setPresenceLocked(b, driver, PresenceOnline, now)
	}
}

// Tick runs the depot's timers at d.Now(): offers whose time is up expire,
// and drivers on unfinished routes who went quiet become silent. The
// appliance calls it every second; tests call it with a stepped clock.
func (d *Depot) Tick() error {
	return d.act(func(b *Batch) error {
		now := d.Now()
		if err := d.expireOffersLocked(b, now); err != nil {
			return err
		}
		for _, r := range d.routes {
			if r.DriverID == "" || r.TotalStops > 0 && r.CompletedStops >= r.TotalStops {
				continue
			}
			p, ok := d.presence[r.DriverID]
			if !ok || p.Active.IsZero() || p.State == PresenceSilent || now.Sub(p.Active) < d.silentAfter() {
				continue
			}
			if err := d.setPresenceLocked(b, r.DriverID, PresenceSilent, p.Active); err != nil {
				return err
			}
		}
		return nil
	})
}

func (d *Depot) presenceMapLocked() map[string]presence {
	out := make(map[string]presence, len(d.presence))
	for k, p := range d.presence {
		out[k] = *p
	}
	return out
}

// Snapshot is everything a dashboard needs to start, consistent with Seq:
// events after Seq are exactly what changed since.
type Snapshot struct {
	Seq      uint64              `json:"seq"`
	Routes   []RouteStatus       `json:"routes"`
	Rescues  []Rescue            `json:"rescues"`
	Offers   []OfferStatus       `json:"offers"`
	Presence map[string]presence `json:"presence"`
	Feed     FeedHealth          `json:"feed"`
}

// Snapshot returns the dashboard's starting state.
func (d *Depot) Snapshot() Snapshot {
	d.mu.Lock()
	defer d.mu.Unlock()
	rs := make([]RouteStatus, 0, len(d.routes))
	for _, r := range d.routes {
		rs = append(rs, r)
	}
	SortByUrgency(rs)
	return Snapshot{Seq: d.seq, Routes: rs, Rescues: d.openRescuesLocked(), Offers: d.offersLocked(),
		Presence: d.presenceMapLocked(), Feed: d.feed}
}
