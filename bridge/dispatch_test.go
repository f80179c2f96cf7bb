package bridge

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func routeAt(id, driver string, tier Tier, behind int, lat, lng float64) RouteSnapshot {
	s := snap(id, driver, 10, behind)
	s.PerformanceTier, s.CurrentLat, s.CurrentLng = tier, lat, lng
	return s
}

func TestRescueCrossingStayingRecoveringRearming(t *testing.T) {
	d, pub, _ := newDepot(t, &memStore{})
	helper := routeAt("R2", "D2", "TOP", 0, 38.51, -121.5)
	for i, step := range []struct {
		behind int
		alerts int // total so far
	}{{5, 0}, {7, 1}, {7, 1}, {9, 1}, {4, 1}, {6, 1}, {3, 1}, {5, 1}, {6, 2}, {12, 2}} {
		if _, err := d.ApplySnapshots([]RouteSnapshot{routeAt("R1", "D1", "AVERAGE", step.behind, 38.5, -121.5), helper}); err != nil {
			t.Fatal(err)
		}
		if n := len(pub.typed(t, EventRescueAlert)); n != step.alerts {
			t.Fatalf("step %d (behind %d): %d alerts, want %d", i, step.behind, n, step.alerts)
		}
	}
	a := pub.typed(t, EventRescueAlert)[0]
	if a.Priority != PriorityCritical {
		t.Fatalf("priority %s", a.Priority)
	}
	var alert RescueAlert
	if err := json.Unmarshal(a.Payload, &alert); err != nil {
		t.Fatal(err)
	}
	if alert.StruggleRoute.RouteID != "R1" || alert.StruggleRoute.BehindSchedule != 7 || alert.RescueDriver == nil ||
		alert.RescueDriver.DriverID != "D2" || alert.EstimatedArrival == nil || alert.TransferLocation.Lat != 38.5 {
		t.Fatalf("alert %+v", alert)
	}
	// ~1.1 km at 30 km/h: a little over 2 minutes.
	if eta := alert.EstimatedArrival.Sub(t0); eta < 2*time.Minute || eta > 3*time.Minute {
		t.Fatalf("eta %s", eta)
	}
	// The rescuer's inbox got the assignment.
	found := false
	for _, m := range pub.msgs {
		if m.topic == "depot/T/drivers/D2/inbox" {
			found = true
		}
	}
	if !found {
		t.Fatal("no inbox message to the rescuer")
	}
	if rs := d.Rescues(); len(rs) != 2 || rs[0].State != StateOpen {
		t.Fatalf("open rescues %+v", rs)
	}
}

func TestChooseRescuer(t *testing.T) {
	struggling := routeAt("R0", "D0", "AVERAGE", 7, 38.5, -121.5).Status()
	near, far := 38.505, 38.6
	cases := []struct {
		name   string
		others []RouteSnapshot
		want   string
	}{
		{"nobody", nil, ""},
		{"the nearest of equals", []RouteSnapshot{routeAt("A", "DA", "AVERAGE", 0, far, -121.5), routeAt("B", "DB", "AVERAGE", 1, near, -121.5)}, "DB"},
		{"TOP before a nearer AVERAGE", []RouteSnapshot{routeAt("A", "DA", "TOP", 0, far, -121.5), routeAt("B", "DB", "AVERAGE", 0, near, -121.5)}, "DA"},
		{"never 2 or more behind", []RouteSnapshot{routeAt("A", "DA", "TOP", 2, near, -121.5), routeAt("B", "DB", "AVERAGE", 0, far, -121.5)}, "DB"},
		{"never STRUGGLING", []RouteSnapshot{routeAt("A", "DA", "STRUGGLING", 0, near, -121.5)}, ""},
		{"never the struggling driver", []RouteSnapshot{routeAt("A", "D0", "TOP", 0, near, -121.5)}, ""},
		{"never without a position", []RouteSnapshot{routeAt("A", "DA", "TOP", 0, 0, 0)}, ""},
	}
	for _, c := range cases {
		all := []RouteStatus{struggling}
		for _, o := range c.others {
			all = append(all, o.Status())
		}
		got := ChooseRescuer(struggling, all)
		if (got == nil) != (c.want == "") || got != nil && got.DriverID != c.want {
			t.Errorf("%s: got %+v, want %q", c.name, got, c.want)
		}
	}
}

func TestVTOFirstAnswerWinsAndExpiry(t *testing.T) {
	d, pub, clk := newDepot(t, &memStore{})
	d.ApplySnapshots([]RouteSnapshot{snap("R1", "D1", 10, 0), snap("R2", "D2", 10, 0)})
	o, err := d.OfferVTO("D1", "R1", "light day", "ana")
	if err != nil {
		t.Fatal(err)
	}
	if !o.ExpiresAt.Equal(t0.Add(30*time.Minute)) || o.State != StateOpen {
		t.Fatalf("offer %+v", o)
	}
	ev := pub.typed(t, EventVTOOffer)
	if len(ev) != 1 || ev[0].Priority != PriorityHigh || payload(t, ev[0])["remainingSeconds"] != 1800.0 {
		t.Fatalf("vto:offer %+v", ev)
	}
	var inbox *pubMsg
	for i, m := range pub.msgs {
		if m.topic == "depot/T/drivers/D1/inbox" {
			inbox = &pub.msgs[i]
		}
	}
	if inbox == nil || inbox.expiry != 1800 {
		t.Fatalf("inbox message %+v", inbox)
	}
	if _, err := d.OfferVTO("D1", "R1", "again", "ana"); !errors.Is(err, ErrConflict) {
		t.Fatalf("second open offer: %v", err)
	}
	for _, bad := range [][2]string{{"D2", "R1"}, {"D1", "R9"}, {"", "R1"}} {
		if _, err := d.OfferVTO(bad[0], bad[1], "", "ana"); err == nil {
			t.Errorf("OfferVTO%v accepted", bad)
		}
	}
	if err := d.HandleReply("D2", []byte(`{"ref":"`+o.VTOID+`","action":"accept"}`)); !errors.Is(err, ErrForbidden) {
		t.Fatalf("another driver's answer: %v", err)
	}
	if err := d.HandleReply("D1", []byte(`{"ref":"`+o.VTOID+`","action":"maybe"}`)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad action: %v", err)
	}
	if err := d.HandleReply("D1", []byte(`{"ref":"`+o.VTOID+`","action":"accept"}`)); err != nil {
		t.Fatal(err)
	}
	if err := d.HandleReply("D1", []byte(`{"ref":"`+o.VTOID+`","action":"decline"}`)); !errors.Is(err, ErrConflict) {
		t.Fatalf("second answer: %v", err)
	}
	if _, err := d.AnswerVTO(o.VTOID, "decline", "", "ana"); !errors.Is(err, ErrConflict) {
		t.Fatalf("dispatcher answer after the driver's: %v", err)
	}
	if n := len(pub.typed(t, EventVTOAccepted)); n != 1 {
		t.Fatalf("%d vto:accepted", n)
	}
	if _, err := d.ConfirmVTO(o.VTOID, "PR-7"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ConfirmVTO(o.VTOID, "PR-7"); !errors.Is(err, ErrConflict) {
		t.Fatalf("second confirmation: %v", err)
	}

	// An unanswered offer expires by itself at 30 minutes, not before.
	o2, err := d.OfferVTO("D2", "R2", "", "ana")
	if err != nil {
		t.Fatal(err)
	}
	clk.t = t0.Add(29*time.Minute + 59*time.Second)
	d.Tick()
	if len(pub.typed(t, EventVTOExpired)) != 0 {
		t.Fatal("expired early")
	}
	clk.t = t0.Add(30 * time.Minute)
	d.Tick()
	d.Tick()
	if n := len(pub.typed(t, EventVTOExpired)); n != 1 {
		t.Fatalf("%d vto:expired", n)
	}
	if _, err := d.AnswerVTO(o2.VTOID, "accept", "D2", "driver:D2"); !errors.Is(err, ErrConflict) {
		t.Fatalf("answer after expiry: %v", err)
	}
	if _, err := d.ConfirmVTO(o2.VTOID, "x"); !errors.Is(err, ErrConflict) {
		t.Fatalf("confirm an expired offer: %v", err)
	}
}

func TestVTOSurvivesReopen(t *testing.T) {
	st := &memStore{}
	d, _, _ := newDepot(t, st)
	d.ApplySnapshots([]RouteSnapshot{snap("R1", "D1", 10, 0)})
	o, _ := d.OfferVTO("D1", "R1", "", "ana")
	d.Close()
	b := st.all()
	d2, pub, clk := newDepot(t, &memStore{state: State{LastSeq: 99, Routes: b.Routes, Offers: b.Offers}})
	clk.t = t0.Add(31 * time.Minute)
	d2.Tick()
	if ev := pub.typed(t, EventVTOExpired); len(ev) != 1 || payload(t, ev[0])["vtoId"] != o.VTOID {
		t.Fatalf("stored offer did not expire after reopen: %+v", ev)
	}
}

func TestRescueAck(t *testing.T) {
	d, pub, _ := newDepot(t, &memStore{})
	d.ApplySnapshots([]RouteSnapshot{routeAt("R1", "D1", "AVERAGE", 7, 38.5, -121.5), routeAt("R2", "D2", "TOP", 0, 38.51, -121.5)})
	rs := d.Rescues()
	if len(rs) != 1 || rs[0].RescuerID != "D2" {
		t.Fatalf("rescues %+v", rs)
	}
	id := rs[0].RescueID
	if err := d.HandleReply("D1", []byte(`{"ref":"`+id+`","action":"ack"}`)); !errors.Is(err, ErrForbidden) {
		t.Fatalf("ack by the struggling driver: %v", err)
	}
	if err := d.HandleReply("D2", []byte(`{"ref":"`+id+`","action":"ack"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ResolveRescue(id, "ana"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ResolveRescue(id, "ana"); !errors.Is(err, ErrConflict) {
		t.Fatalf("resolve twice: %v", err)
	}
	if _, err := d.ResolveRescue("nope", "ana"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown rescue: %v", err)
	}
	up := pub.typed(t, EventRescueUpdated)
	if len(up) != 2 || payload(t, up[0])["state"] != StateAcknowledged || payload(t, up[1])["state"] != StateResolved {
		t.Fatalf("rescue:updated %+v", up)
	}
	if len(d.Rescues()) != 0 {
		t.Fatal("resolved rescue still open")
	}
}

func TestReassign(t *testing.T) {
	d, pub, _ := newDepot(t, &memStore{})
	feed := []RouteSnapshot{snap("R1", "D1", 10, 0), snap("R2", "D2", 10, 0)}
	d.ApplySnapshots(feed)
	if _, err := d.Reassign("R1", "D2", "ana"); err != nil {
		t.Fatal(err)
	}
	ev := pub.typed(t, EventRouteReassign)
	if len(ev) != 1 || payload(t, ev[0])["fromDriverId"] != "D1" || payload(t, ev[0])["toDriverId"] != "D2" || payload(t, ev[0])["by"] != "ana" {
		t.Fatalf("route:reassigned %+v", ev)
	}
	inbox := map[string]bool{}
	for _, m := range pub.msgs {
		inbox[m.topic] = true
	}
	if !inbox["depot/T/drivers/D1/inbox"] || !inbox["depot/T/drivers/D2/inbox"] {
		t.Fatal("both drivers must be told")
	}
	// The new driver's GPS now moves R1.
	d.IngestFix(Fix{DriverID: "D2", Lat: 38.9, Lng: -121.9, TS: t0.Add(time.Minute).UnixMilli()}, true)
	if r, _ := d.Route("R1"); r.CurrentLat != 38.9 || r.DriverID != "D2" || r.DriverName != "ND2" {
		t.Fatalf("R1 %+v", r)
	}
	// The feed still says D1: the dispatcher's assignment holds.
	d.ApplySnapshots(feed)
	if r, _ := d.Route("R1"); r.DriverID != "D2" {
		t.Fatalf("feed reverted the reassignment: %+v", r)
	}
	// Once the feed agrees, the override is dropped.
	feed[0].DriverID, feed[0].DriverName = "D2", "ND2"
	d.ApplySnapshots(feed)
	feed[0].DriverID, feed[0].DriverName = "D3", "ND3"
	d.ApplySnapshots(feed)
	if r, _ := d.Route("R1"); r.DriverID != "D3" {
		t.Fatalf("feed's later change ignored: %+v", r)
	}
	if _, err := d.Reassign("R9", "D2", "ana"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown route: %v", err)
	}
	if _, err := d.Reassign("R1", "D3", "ana"); !errors.Is(err, ErrConflict) {
		t.Fatalf("same driver: %v", err)
	}
}

func TestPresence(t *testing.T) {
	d, pub, clk := newDepot(t, &memStore{})
	d.SilentAfter = 5 * time.Minute
	d.ApplySnapshots([]RouteSnapshot{snap("R1", "D1", 10, 0)})
	d.DriverConnected("D1")
	d.IngestFix(Fix{DriverID: "D1", Lat: 1, Lng: 1, TS: t0.UnixMilli()}, true)
	states := func() (out []string) {
		for _, e := range pub.typed(t, EventDriverPresence) {
			out = append(out, payload(t, e)["state"].(string))
		}
		return out
	}
	clk.t = t0.Add(4 * time.Minute)
	d.Tick()
	if s := states(); len(s) != 1 || s[0] != "online" {
		t.Fatalf("states %v", s)
	}
	clk.t = t0.Add(6 * time.Minute)
	d.Tick()
	d.Tick()
	if s := states(); len(s) != 2 || s[1] != "silent" {
		t.Fatalf("states %v (connected, no fix for 6 min)", s)
	}
	if p := payload(t, pub.typed(t, EventDriverPresence)[1]); p["since"] != "2026-11-26T15:04:05Z" {
		t.Fatalf("silent since %v, want the last fix", p["since"])
	}
	d.IngestFix(Fix{DriverID: "D1", Lat: 1, Lng: 1, TS: clk.t.UnixMilli()}, true)
	d.DriverDisconnected("D1")
	if s := states(); len(s) != 4 || s[2] != "online" || s[3] != "offline" {
		t.Fatalf("states %v", s)
	}
	// Dropped and quiet: silent too (a phone that killed the app).
	clk.t = clk.t.Add(6 * time.Minute)
	d.Tick()
	if s := states(); len(s) != 5 || s[4] != "silent" {
		t.Fatalf("states %v", s)
	}
	var retained bool
	for _, m := range pub.msgs {
		retained = retained || m.topic == "depot/T/drivers/D1/presence" && m.retain
	}
	if !retained {
		t.Fatal("presence not retained on the driver's topic")
	}
}

func TestHeartbeat(t *testing.T) {
	d, pub, clk := newDepot(t, &memStore{})
	d.ApplySnapshots([]RouteSnapshot{snap("R1", "D1", 10, 0)})
	d.Heartbeat(AppStatus{})
	now := time.Now()
	d.IngestFix(Fix{DriverID: "D1", Lat: 1, Lng: 1, TS: t0.UnixMilli(), Recv: now.Add(-3 * time.Millisecond).UnixMilli()}, true)
	clk.t = t0.Add(5 * time.Second)
	st, err := d.Heartbeat(AppStatus{Version: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if lat := st.LatencyMs; lat.Samples != 1 || lat.P99 < 2 || st.FixesPerS != 0.2 || st.Version != "x" {
		t.Fatalf("status %+v", st)
	}
	if n := len(pub.typed(t, EventSystemStatus)); n != 2 {
		t.Fatalf("%d system:status", n)
	}
}

// TestHeartbeatAtTheSameInstant: two heartbeats at one instant of the
// depot's clock (a stepped clock in tests) both go out, with no rate
// rather than an infinite one.
func TestHeartbeatAtTheSameInstant(t *testing.T) {
	d, _, _ := newDepot(t, &memStore{})
	for i := range 2 {
		if s, err := d.Heartbeat(AppStatus{}); err != nil || s.EventsPerS != 0 {
			t.Fatalf("heartbeat %d: %+v %v", i, s, err)
		}
	}
}
