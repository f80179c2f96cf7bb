package bridge

import (
	"math"
	"time"
)

// EventDriverDevice reports a change of a driver's device health.
const EventDriverDevice = "driver:device"

// DeviceHealth is what a driver's handheld last said of itself, with its
// newest fix: the payload of driver:device and an entry of the snapshot's
// devices. Batt and Acc are absent when not known.
type DeviceHealth struct {
	DriverID  string    `json:"driverId"`
	App       string    `json:"app,omitempty"`
	Batt      float64   `json:"batt,omitempty"`
	BattState string    `json:"battState,omitempty"`
	Acc       float64   `json:"acc,omitempty"`
	Conn      string    `json:"conn,omitempty"`
	LastFix   time.Time `json:"lastFix"`
}

func deviceOf(f Fix) DeviceHealth {
	return DeviceHealth{DriverID: f.DriverID, App: f.App, Batt: f.Batt, BattState: f.BattState, Acc: f.Acc,
		Conn: f.Conn, LastFix: f.Time()}
}

// worthTelling reports whether the dashboards should hear of the change
// from old to cur: the app, the battery's state or the connection changed,
// or the battery by a whole percent. Accuracy and the fix time change with
// every fix and are read from the snapshot and the route's own updates.
func (old DeviceHealth) worthTelling(cur DeviceHealth) bool {
	return old.App != cur.App || old.BattState != cur.BattState || old.Conn != cur.Conn ||
		math.Round(old.Batt) != math.Round(cur.Batt)
}

// deviceSeen records the device health that came with driver's newest fix,
// with a driver:device event when worth telling.
func (m *Machine) deviceSeen(b *Batch, f Fix) error {
	cur := deviceOf(f)
	old := m.devices[f.DriverID]
	// A fix that does not say (the driver app beside OwnTracks, say)
	// leaves what the last one said: health must not flap with its source.
	if cur.Batt == 0 && cur.BattState == "" {
		cur.Batt, cur.BattState = old.Batt, old.BattState
	}
	if cur.Conn == "" {
		cur.Conn = old.Conn
	} // zero for a driver not heard from: a fix that says nothing of its device is not news
	m.devices[f.DriverID] = cur
	if !old.worthTelling(cur) {
		return nil
	}
	_, _, err := m.emit(b, EventDriverDevice, PriorityNormal, cur)
	return err
}

// Devices returns the device health of every driver heard from.
func (m *Machine) Devices() map[string]DeviceHealth {
	out := make(map[string]DeviceHealth, len(m.devices))
	for k, v := range m.devices {
		out[k] = v
	}
	return out
}
