package bridge

import (
	"encoding/json"
	"maps"
	"slices"
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

func (m *Machine) silentAfter() time.Duration {
	if m.SilentAfter > 0 {
		return m.SilentAfter
	}
	return 5 * time.Minute
}

func (m *Machine) presenceOf(driver string) *presence {
	p, ok := m.presence[driver]
	if !ok {
		p = &presence{State: PresenceOffline}
		m.presence[driver] = p
	}
	return p
}

// setPresence moves driver to state, with a driver:presence event and the
// retained presence topic, when it is a change.
func (m *Machine) setPresence(b *Batch, driver, state string, since time.Time) error {
	p := m.presenceOf(driver)
	if p.State == state && !p.Since.IsZero() {
		return nil
	}
	p.State, p.Since = state, since.UTC().Truncate(time.Millisecond)
	if _, _, err := m.emit(b, EventDriverPresence, PriorityNormal, DriverPresence{
		DriverID: driver, State: state, Since: p.Since,
	}); err != nil {
		return err
	}
	raw, _ := json.Marshal(PresenceMessage{State: state, TS: p.Since.UnixMilli()})
	b.Messages = append(b.Messages, Message{Topic: m.Topics.Driver(driver, KindPresence), Payload: raw, Retain: true})
	return nil
}

// Connected records a handheld's session start (from the broker): online,
// and its open VTO offers are sent again.
func (m *Machine) Connected(b *Batch, driver string) error {
	now := m.Now()
	p := m.presenceOf(driver)
	p.Connected, p.Active = true, now
	m.resendOffers(b, driver)
	return m.setPresence(b, driver, PresenceOnline, now)
}

// Disconnected records a handheld's session end (clean or not).
func (m *Machine) Disconnected(b *Batch, driver string) error {
	now := m.Now()
	p := m.presenceOf(driver)
	p.Connected = false
	if p.State == PresenceSilent {
		return nil // still silent: no fix, now not connected either
	}
	return m.setPresence(b, driver, PresenceOffline, now)
}

// fixSeen notes a fix from driver: a silent driver is back.
func (m *Machine) fixSeen(b *Batch, driver string) {
	now := m.Now()
	p := m.presenceOf(driver)
	p.Active = now
	if p.State == PresenceSilent || p.State == PresenceOffline && p.Since.IsZero() {
		_ = m.setPresence(b, driver, PresenceOnline, now)
	}
}

// Tick runs the depot's timers at Now(): offers whose time is up expire,
// and drivers on unfinished routes who went quiet become silent.
func (m *Machine) Tick(b *Batch) error {
	now := m.Now()
	if err := m.expireOffers(b, now); err != nil {
		return err
	}
	for _, id := range slices.Sorted(maps.Keys(m.routes)) { // events in a stable order
		r := m.routes[id]
		if r.DriverID == "" || r.TotalStops > 0 && r.CompletedStops >= r.TotalStops {
			continue
		}
		p, ok := m.presence[r.DriverID]
		if !ok || p.Active.IsZero() || p.State == PresenceSilent || now.Sub(p.Active) < m.silentAfter() {
			continue
		}
		if err := m.setPresence(b, r.DriverID, PresenceSilent, p.Active); err != nil {
			return err
		}
	}
	return nil
}

func (m *Machine) presenceMap() map[string]presence {
	out := make(map[string]presence, len(m.presence))
	for k, p := range m.presence {
		out[k] = *p
	}
	return out
}
