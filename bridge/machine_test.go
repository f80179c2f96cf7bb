package bridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The rules by table: each case drives a bare Machine (no pipeline, no
// goroutine, no disk) through commands at a stepped clock and checks the
// typed events each command returns.

// step is one command at one moment, and what it must yield.
type step struct {
	name    string
	after   time.Duration // the clock moves on this much before the command
	cmd     func(m *Machine, b *Batch) error
	err     error    // errors.Is target; nil: must succeed
	types   []string // event types, in order
	inboxes []string // drivers whose inbox gets a message, in order
	check   func(t *testing.T, m *Machine, b *Batch)
}

func cycle(snaps ...RouteSnapshot) func(m *Machine, b *Batch) error {
	return func(m *Machine, b *Batch) error { _, err := m.Snapshots(b, snaps); return err }
}

func fixAt(driver string, lat, lng float64, at *time.Time) func(m *Machine, b *Batch) error {
	return func(m *Machine, b *Batch) error {
		_, err := m.Fix(b, Fix{DriverID: driver, Lat: lat, Lng: lng, TS: at.UnixMilli(), Recv: at.UnixMilli()})
		return err
	}
}

func healthFix(driver string, lat, batt float64, bs, conn string, acc float64, at *time.Time) func(m *Machine, b *Batch) error {
	return func(m *Machine, b *Batch) error {
		_, err := m.Fix(b, Fix{DriverID: driver, Lat: lat, Lng: 2, TS: at.UnixMilli(), Recv: at.UnixMilli(),
			Acc: acc, Batt: batt, BattState: bs, Conn: conn, App: AppOwnTracks})
		return err
	}
}

func offer(driver, route string) func(m *Machine, b *Batch) error {
	return func(m *Machine, b *Batch) error {
		_, err := m.OfferVTO(b, driver, route, "quiet day", "disp")
		return err
	}
}

func answer(id, action, driver string) func(m *Machine, b *Batch) error {
	return func(m *Machine, b *Batch) error {
		_, err := m.AnswerVTO(b, id, action, driver, "driver:"+driver)
		return err
	}
}

func tick(m *Machine, b *Batch) error { return m.Tick(b) }

func payloadOf[T any](t *testing.T, b *Batch, typ string) T {
	t.Helper()
	for _, e := range b.Events {
		if e.Type == typ {
			p, ok := e.Payload.(T)
			if !ok {
				t.Fatalf("%s payload is %T", typ, e.Payload)
			}
			return p
		}
	}
	t.Fatalf("no %s in %v", typ, eventTypes(b))
	var zero T
	return zero
}

func eventTypes(b *Batch) []string {
	out := []string{}
	for _, e := range b.Events {
		out = append(out, e.Type)
	}
	return out
}

func inboxes(b *Batch) []string {
	out := []string{}
	for _, msg := range b.Messages {
		if rest, ok := strings.CutSuffix(msg.Topic, "/inbox"); ok {
			out = append(out, rest[strings.LastIndex(rest, "/")+1:])
		}
	}
	return out
}

func TestMachineRules(t *testing.T) {
	var now time.Time // the cases' clock; each case starts it at t0
	helper := routeAt("R2", "D2", "TOP", 0, 38.51, -121.5)
	at := func(behind int) RouteSnapshot { return routeAt("R1", "D1", "AVERAGE", behind, 38.5, -121.5) }
	upd := EventRouteUpdate
	cases := []struct {
		name  string
		steps []step
	}{
		{"colour follows stops behind", []step{
			{name: "green", cmd: cycle(at(1)), types: []string{upd},
				check: func(t *testing.T, m *Machine, b *Batch) {
					if d := payloadOf[Delta](t, b, upd); d.Route.StatusColor != Green {
						t.Fatalf("colour %s", d.Route.StatusColor)
					}
				}},
			{name: "yellow", cmd: cycle(at(2)), types: []string{upd},
				check: func(t *testing.T, m *Machine, b *Batch) {
					if r, _ := m.Route("R1"); r.StatusColor != Yellow {
						t.Fatalf("colour %s", r.StatusColor)
					}
				}},
			{name: "same again: nothing", cmd: cycle(at(2)), types: []string{}},
			{name: "red", cmd: cycle(at(6)), types: []string{upd, EventRescueAlert}, inboxes: []string{},
				check: func(t *testing.T, m *Machine, b *Batch) {
					if r, _ := m.Route("R1"); r.StatusColor != Red {
						t.Fatalf("colour %s", r.StatusColor)
					}
				}},
		}},
		{"rescue: once on crossing, re-armed after recovery", []step{
			{name: "start", cmd: cycle(at(5), helper), types: []string{upd, upd}},
			{name: "cross", cmd: cycle(at(7), helper), types: []string{upd, EventRescueAlert}, inboxes: []string{"D2"},
				check: func(t *testing.T, m *Machine, b *Batch) {
					a := payloadOf[RescueAlert](t, b, EventRescueAlert)
					if a.RescueDriver == nil || a.RescueDriver.DriverID != "D2" || a.StruggleRoute.BehindSchedule != 7 ||
						a.EstimatedArrival == nil || a.EstimatedArrival.Before(now) {
						t.Fatalf("alert %+v", a)
					}
					if rs := m.Rescues(); len(rs) != 1 || rs[0].State != StateOpen || rs[0].RescuerID != "D2" {
						t.Fatalf("rescues %+v", rs)
					}
				}},
			{name: "worse: no second alert", cmd: cycle(at(9), helper), types: []string{upd}},
			{name: "not yet recovered", cmd: cycle(at(4), helper), types: []string{upd}},
			{name: "cross again, not armed", cmd: cycle(at(6), helper), types: []string{upd}},
			{name: "recovered", cmd: cycle(at(3), helper), types: []string{upd}},
			{name: "cross re-armed", cmd: cycle(at(6), helper), types: []string{upd, EventRescueAlert}, inboxes: []string{"D2"}},
		}},
		{"rescue: ack by the rescuer only, resolve once", []step{
			{name: "start", cmd: cycle(at(0), helper), types: []string{upd, upd}},
			{name: "alert", cmd: cycle(at(8), helper), types: []string{upd, EventRescueAlert}, inboxes: []string{"D2"}},
			{name: "ack by another", cmd: func(m *Machine, b *Batch) error {
				return m.Reply(b, "D1", []byte(`{"ref":"`+m.Rescues()[0].RescueID+`","action":"ack"}`))
			}, err: ErrForbidden},
			{name: "ack", cmd: func(m *Machine, b *Batch) error {
				return m.Reply(b, "D2", []byte(`{"ref":"`+m.Rescues()[0].RescueID+`","action":"ack"}`))
			}, types: []string{EventRescueUpdated}},
			{name: "ack twice", cmd: func(m *Machine, b *Batch) error { return m.AckRescue(b, m.Rescues()[0].RescueID, "D2") },
				err: ErrConflict},
			{name: "resolve", cmd: func(m *Machine, b *Batch) error {
				_, err := m.ResolveRescue(b, m.Rescues()[0].RescueID, "disp")
				return err
			}, types: []string{EventRescueUpdated},
				check: func(t *testing.T, m *Machine, b *Batch) {
					if u := payloadOf[RescueUpdated](t, b, EventRescueUpdated); u.State != StateResolved || u.By != "disp" {
						t.Fatalf("update %+v", u)
					}
					if len(m.Rescues()) != 0 {
						t.Fatal("a resolved rescue is still listed")
					}
				}},
			{name: "unknown", cmd: func(m *Machine, b *Batch) error { _, err := m.ResolveRescue(b, "rsc_x", "disp"); return err },
				err: ErrNotFound},
		}},
		{"VTO: first answer wins, then payroll confirms", []step{
			{name: "start", cmd: cycle(at(0)), types: []string{upd}},
			{name: "not the route's driver", cmd: offer("D9", "R1"), err: ErrInvalid},
			{name: "offer", cmd: offer("D1", "R1"), types: []string{EventVTOOffer}, inboxes: []string{"D1"},
				check: func(t *testing.T, m *Machine, b *Batch) {
					o := payloadOf[VTOOffered](t, b, EventVTOOffer)
					if o.RemainingSeconds != int(OfferTTL.Seconds()) || o.State != StateOpen || o.By != "disp" || b.Messages[0].Expiry != uint32(OfferTTL.Seconds()) {
						t.Fatalf("offer %+v, message %+v", o, b.Messages[0])
					}
					// The driver's inbox gets the same envelope without
					// who offered it.
					var ev, in struct {
						Seq       uint64
						ID        string
						Type      string
						Timestamp time.Time
						Payload   map[string]any
					}
					if err := json.Unmarshal(b.Events[0].Raw, &ev); err != nil {
						t.Fatal(err)
					}
					if err := json.Unmarshal(b.Messages[0].Payload, &in); err != nil {
						t.Fatal(err)
					}
					if ev.Payload["by"] != "disp" {
						t.Fatalf("the event's payload has no by: %v", ev.Payload)
					}
					if _, ok := in.Payload["by"]; ok {
						t.Fatalf("the inbox's copy names the dispatcher: %s", b.Messages[0].Payload)
					}
					delete(ev.Payload, "by")
					if in.Seq != ev.Seq || in.ID != ev.ID || in.Type != ev.Type || !in.Timestamp.Equal(ev.Timestamp) || fmt.Sprint(in.Payload) != fmt.Sprint(ev.Payload) {
						t.Fatalf("the inbox's copy differs:\n%s\n%s", b.Messages[0].Payload, b.Events[0].Raw)
					}
				}},
			{name: "second open offer", cmd: offer("D1", "R1"), err: ErrConflict},
			{name: "answer by another", after: time.Minute, cmd: answer("vto_2", ActionAccept, "D2"), err: ErrForbidden},
			{name: "bad action", cmd: answer("vto_2", "maybe", "D1"), err: ErrInvalid},
			{name: "accept", cmd: answer("vto_2", ActionAccept, "D1"), types: []string{EventVTOAccepted}},
			{name: "decline after", cmd: answer("vto_2", ActionDecline, "D1"), err: ErrConflict},
			{name: "confirm", cmd: func(m *Machine, b *Batch) error { _, err := m.ConfirmVTO(b, "vto_2", "PR-1"); return err },
				types: []string{EventVTOConfirmed},
				check: func(t *testing.T, m *Machine, b *Batch) {
					if c := payloadOf[VTOConfirmed](t, b, EventVTOConfirmed); c.PayrollRef != "PR-1" || c.State != StateConfirmed {
						t.Fatalf("confirmed %+v", c)
					}
				}},
		}},
		{"VTO: expires on the tick after its time", []step{
			{name: "start", cmd: cycle(at(0)), types: []string{upd}},
			{name: "offer", cmd: offer("D1", "R1"), types: []string{EventVTOOffer}, inboxes: []string{"D1"}},
			{name: "just before", after: OfferTTL - time.Second, cmd: tick, types: []string{}},
			{name: "reconnect resends it with the time left", cmd: func(m *Machine, b *Batch) error { return m.Connected(b, "D1") },
				types: []string{EventDriverPresence}, inboxes: []string{"D1"},
				check: func(t *testing.T, m *Machine, b *Batch) {
					for _, msg := range b.Messages {
						if strings.HasSuffix(msg.Topic, "/inbox") && msg.Expiry != 1 {
							t.Fatalf("resent with expiry %d, want 1", msg.Expiry)
						}
					}
				}},
			{name: "due", after: time.Second, cmd: tick, types: []string{EventVTOExpired}},
			{name: "answer too late", cmd: answer("vto_2", ActionAccept, "D1"), err: ErrConflict},
		}},
		{"reassign: both inboxes, and the feed's word ends it", []step{
			{name: "start", cmd: cycle(at(0), helper), types: []string{upd, upd}},
			{name: "to its own driver", cmd: func(m *Machine, b *Batch) error { _, err := m.Reassign(b, "R1", "D1", "disp"); return err },
				err: ErrConflict},
			{name: "reassign", cmd: func(m *Machine, b *Batch) error { _, err := m.Reassign(b, "R1", "D7", "disp"); return err },
				types: []string{EventRouteReassign, upd}, inboxes: []string{"D1", "D7"},
				check: func(t *testing.T, m *Machine, b *Batch) {
					if len(b.Assignments) != 1 || b.Assignments[0].DriverID != "D7" {
						t.Fatalf("assignments %+v", b.Assignments)
					}
				}},
			{name: "the feed still says D1: the assignment holds", cmd: cycle(at(0), helper), types: []string{}},
			{name: "the new driver's fix moves the route", after: time.Second, cmd: fixAt("D7", 38.6, -121.6, &now),
				types: []string{EventDriverPresence, upd}},
			{name: "the feed agrees, and names D7", cmd: cycle(routeAt("R1", "D7", "AVERAGE", 0, 38.5, -121.5), helper),
				types: []string{upd},
				check: func(t *testing.T, m *Machine, b *Batch) {
					if len(b.Assignments) != 1 || b.Assignments[0].DriverID != "" {
						t.Fatalf("assignment not dropped: %+v", b.Assignments)
					}
					// The fix is newer than the feed's lastUpdated: it keeps the position.
					if r, _ := m.Route("R1"); r.DriverName != "ND7" || r.CurrentLat != 38.6 {
						t.Fatalf("route %+v", r)
					}
					// Both drivers' apps still show the move after the
					// assignment is gone (they may have been closed).
					for _, d := range []string{"D1", "D7"} {
						v := m.DriverView(d)
						if len(v.Reassignments) != 1 || v.Reassignments[0].ToDriverID != "D7" || v.Reassignments[0].FromDriverID != "D1" || v.Reassignments[0].RouteCode == "" {
							t.Fatalf("%s's view: %+v", d, v.Reassignments)
						}
					}
					if v := m.DriverView("D1"); v.Route != nil {
						t.Fatalf("D1 still sees the route: %+v", v.Route)
					}
				}},
		}},
		{"presence: online, silent, back, offline", []step{
			{name: "start", cmd: cycle(at(0)), types: []string{upd}},
			{name: "first fix", after: time.Second, cmd: fixAt("D1", 38.6, -121.6, &now), types: []string{EventDriverPresence, upd}},
			{name: "quiet, not yet", after: 5*time.Minute - time.Second, cmd: tick, types: []string{}},
			{name: "silent", after: time.Second, cmd: tick, types: []string{EventDriverPresence},
				check: func(t *testing.T, m *Machine, b *Batch) {
					if p := payloadOf[DriverPresence](t, b, EventDriverPresence); p.State != PresenceSilent {
						t.Fatalf("presence %+v", p)
					}
				}},
			{name: "back", after: time.Second, cmd: fixAt("D1", 38.61, -121.6, &now), types: []string{EventDriverPresence, upd}},
			{name: "late fix: filed, moves nothing", cmd: func(m *Machine, b *Batch) error {
				late, err := m.Fix(b, Fix{DriverID: "D1", Lat: 1, Lng: 1, TS: now.Add(-time.Minute).UnixMilli()})
				if !late || len(b.Fixes) != 1 {
					t.Fatalf("late %v, fixes %d", late, len(b.Fixes))
				}
				return err
			}, types: []string{}},
			{name: "disconnect", cmd: func(m *Machine, b *Batch) error { return m.Disconnected(b, "D1") },
				types: []string{EventDriverPresence}},
		}},
		{"device health: told on a change of app, battery state, connection or a whole percent", []step{
			{name: "start", cmd: cycle(at(0)), types: []string{upd}},
			{name: "first owntracks fix", after: time.Second, cmd: healthFix("D1", 10, 81.2, BattUnplugged, ConnMobile, 5, &now),
				types: []string{EventDriverPresence, EventDriverDevice, upd},
				check: func(t *testing.T, m *Machine, b *Batch) {
					want := DeviceHealth{DriverID: "D1", App: AppOwnTracks, Batt: 81.2, BattState: BattUnplugged, Acc: 5, Conn: ConnMobile, LastFix: now}
					if p := payloadOf[DeviceHealth](t, b, EventDriverDevice); p != want {
						t.Fatalf("device %+v, want %+v", p, want)
					}
				}},
			{name: "accuracy and a fraction of a percent: not news", after: time.Second, cmd: healthFix("D1", 10.001, 80.9, BattUnplugged, ConnMobile, 40, &now),
				types: []string{upd},
				check: func(t *testing.T, m *Machine, b *Batch) {
					if d := m.Devices()["D1"]; d.Acc != 40 || !d.LastFix.Equal(now) {
						t.Fatalf("the snapshot's health is not the newest: %+v", d)
					}
				}},
			{name: "a whole percent", after: time.Second, cmd: healthFix("D1", 10.002, 80.2, BattUnplugged, ConnMobile, 40, &now),
				types: []string{EventDriverDevice, upd}},
			{name: "plugged in", after: time.Second, cmd: healthFix("D1", 10.003, 80.2, BattCharging, ConnMobile, 40, &now),
				types: []string{EventDriverDevice, upd}},
			{name: "on wifi", after: time.Second, cmd: healthFix("D1", 10.004, 80.2, BattCharging, ConnWifi, 40, &now),
				types: []string{EventDriverDevice, upd}},
			{name: "a late fix says nothing of the device now", cmd: func(m *Machine, b *Batch) error {
				_, err := m.Fix(b, Fix{DriverID: "D1", Lat: 1, Lng: 1, TS: now.Add(-time.Minute).UnixMilli(), App: AppTraccar, Batt: 5})
				if d := m.Devices()["D1"]; d.App != AppOwnTracks || d.Batt != 80.2 {
					t.Fatalf("a late fix changed the device health: %+v", d)
				}
				return err
			}, types: []string{}},
		}},
		{"reply: bad input is refused", []step{
			{name: "not json", cmd: func(m *Machine, b *Batch) error { return m.Reply(b, "D1", []byte("{")) }, err: ErrInvalid},
			{name: "no ref", cmd: func(m *Machine, b *Batch) error { return m.Reply(b, "D1", []byte(`{"action":"ack"}`)) }, err: ErrInvalid},
			{name: "unknown action", cmd: func(m *Machine, b *Batch) error { return m.Reply(b, "D1", []byte(`{"ref":"x","action":"go"}`)) },
				err: ErrInvalid},
			{name: "too long", cmd: func(m *Machine, b *Batch) error {
				return m.Reply(b, "D1", []byte(`{"ref":"`+strings.Repeat("x", 1100)+`","action":"ack"}`))
			}, err: ErrInvalid},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			now = t0
			m := &Machine{Topics: Topics{Depot: "T"}, Now: func() time.Time { return now }}
			m.Load(State{})
			for _, s := range c.steps {
				now = now.Add(s.after)
				var b Batch
				seq := m.LastSeq()
				err := s.cmd(m, &b)
				if s.err != nil {
					if !errors.Is(err, s.err) {
						t.Fatalf("%s: err %v, want %v", s.name, err, s.err)
					}
					if b.size() != 0 || m.LastSeq() != seq {
						t.Fatalf("%s: a refused command left %v and seq %d→%d", s.name, eventTypes(&b), seq, m.LastSeq())
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", s.name, err)
				}
				if got := eventTypes(&b); !slices.Equal(got, s.types) {
					t.Fatalf("%s: events %v, want %v", s.name, got, s.types)
				}
				for i, e := range b.Events {
					if e.Seq != seq+uint64(i)+1 || len(e.Raw) == 0 {
						t.Fatalf("%s: event %d has seq %d after %d", s.name, i, e.Seq, seq)
					}
				}
				if s.inboxes != nil {
					if got := inboxes(&b); !slices.Equal(got, s.inboxes) {
						t.Fatalf("%s: inbox messages to %v, want %v", s.name, got, s.inboxes)
					}
				}
				if s.check != nil {
					s.check(t, m, &b)
				}
			}
		})
	}
}

// TestTickOrderIsStable: what one tick ends (offers, silences) comes out in
// the same order every time, whatever the maps' order.
func TestTickOrderIsStable(t *testing.T) {
	for range 20 {
		now := t0
		m := &Machine{Topics: Topics{Depot: "T"}, Now: func() time.Time { return now }}
		m.Load(State{})
		var b Batch
		var snaps []RouteSnapshot
		for i := range 6 {
			id := strconv.Itoa(i)
			snaps = append(snaps, routeAt("R"+id, "D"+id, "AVERAGE", 0, 38.5, -121.5))
		}
		if _, err := m.Snapshots(&b, snaps); err != nil {
			t.Fatal(err)
		}
		for i := range 6 {
			id := strconv.Itoa(i)
			if _, err := m.Fix(&b, Fix{DriverID: "D" + id, Lat: 38.5, Lng: -121.5, TS: now.UnixMilli()}); err != nil {
				t.Fatal(err)
			}
			if _, err := m.OfferVTO(&b, "D"+id, "R"+id, "", "disp"); err != nil {
				t.Fatal(err)
			}
		}
		now = now.Add(OfferTTL)
		b = Batch{}
		if err := m.Tick(&b); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range b.Events {
			switch p := e.Payload.(type) {
			case VTOExpired:
				got = append(got, p.VTOID)
			case DriverPresence:
				got = append(got, p.DriverID)
			}
		}
		want := []string{"vto_10", "vto_12", "vto_14", "vto_16", "vto_18", "vto_8", // ids in string order
			"D0", "D1", "D2", "D3", "D4", "D5"}
		if !slices.Equal(got, want) {
			t.Fatalf("tick order %v, want %v", got, want)
		}
	}
}
