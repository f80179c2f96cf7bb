package bridge

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"
)

type lateMsg struct {
	RouteID string `json:"routeId"`
	Fixes   []struct {
		TS  int64   `json:"ts"`
		Lat float64 `json:"lat"`
		Lng float64 `json:"lng"`
	} `json:"fixes"`
}

// late returns the messages published on route's late topic.
func (p *memPub) late(t *testing.T, route string) []lateMsg {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []lateMsg
	for _, m := range p.msgs {
		if m.topic != "depot/T/routes/"+route+"/late" {
			continue
		}
		if m.retain {
			t.Fatal("late fixes retained")
		}
		var l lateMsg
		if err := json.Unmarshal(m.payload, &l); err != nil {
			t.Fatalf("%s: %v", m.payload, err)
		}
		out = append(out, l)
	}
	return out
}

// TestLateFixesPublished: a fix older than its driver's newest is stored
// and published on its route's late topic, once stored; it moves nothing,
// makes no event and republishes no retained state. A repeat of the
// newest, a late fix of a driver on no route and one whose commit failed
// are not published.
func TestLateFixesPublished(t *testing.T) {
	st := &memStore{}
	d, pub, _ := newDepot(t, st)
	if _, err := d.ApplySnapshots([]RouteSnapshot{snap("R1", "D1", 10, 0), snap("R2", "D2", 10, 0)}); err != nil {
		t.Fatal(err)
	}
	at := func(s int) int64 { return t0.Add(time.Duration(s) * time.Second).UnixMilli() }
	ingest := func(f Fix) error { t.Helper(); return d.IngestFix(f, true) }
	for _, f := range []Fix{
		{DriverID: "D1", Lat: 38.7, Lng: -121.3, TS: at(100)}, // newest
		{DriverID: "D2", Lat: 38.2, Lng: -121.2, TS: at(100)}, // newest
		{DriverID: "D9", Lat: 38.9, Lng: -121.9, TS: at(100)}, // on no route
	} {
		if err := ingest(f); err != nil {
			t.Fatal(err)
		}
	}
	states, updates, events := len(pub.states(t, "R1")), len(pub.updates(t)), len(pub.events(t))
	for _, f := range []Fix{
		{DriverID: "D1", Lat: 38.61, Lng: -121.31, TS: at(40)},
		{DriverID: "D1", Lat: 38.62, Lng: -121.32, TS: at(50)},
		{DriverID: "D1", Lat: 38.7, Lng: -121.3, TS: at(100)}, // a repeat of the newest
		{DriverID: "D2", Lat: 38.1, Lng: -121.1, TS: at(60)},
		{DriverID: "D9", Lat: 38.8, Lng: -121.8, TS: at(60)}, // on no route
	} {
		if err := ingest(f); err != nil {
			t.Fatal(err)
		}
	}
	l1, l2 := pub.late(t, "R1"), pub.late(t, "R2")
	if len(l1) != 2 || len(l2) != 1 {
		t.Fatalf("late messages: R1 %+v, R2 %+v", l1, l2)
	}
	if m := l1[0]; m.RouteID != "R1" || len(m.Fixes) != 1 || m.Fixes[0].TS != at(40) || m.Fixes[0].Lat != 38.61 || m.Fixes[0].Lng != -121.31 {
		t.Fatalf("R1's first late message %+v", m)
	}
	if m := l2[0]; m.RouteID != "R2" || len(m.Fixes) != 1 || m.Fixes[0].TS != at(60) {
		t.Fatalf("R2's late message %+v", m)
	}
	if r, _ := d.Route("R1"); r.CurrentLat != 38.7 || !r.LastUpdated.Equal(time.UnixMilli(at(100))) {
		t.Fatalf("a late fix moved the route: %+v", r)
	}
	if n := len(pub.updates(t)); n != updates {
		t.Fatalf("late fixes made %d route:update events", n-updates)
	}
	if n := len(pub.events(t)); n != events {
		t.Fatalf("late fixes made %d events", n-events)
	}
	// Nor is any retained state published or deferred for them: the
	// machine puts none in the batch (TestLateFixBatch).
	if n := len(pub.states(t, "R1")); n != states {
		t.Fatalf("late fixes republished the retained state (%d more)", n-states)
	}
	if b := st.all(); len(b.Fixes) != 8 {
		t.Fatalf("history has %d fixes, want all 8 filed", len(b.Fixes))
	}
	if n := d.Stats.LatePublished.Load(); n != 3 {
		t.Fatalf("LatePublished = %d, want 3", n)
	}

	// A late fix whose commit fails is refused and not published: its
	// sender sends it again.
	boom := errors.New("disk full")
	st.mu.Lock()
	st.fail = boom
	st.mu.Unlock()
	if err := ingest(Fix{DriverID: "D1", Lat: 38.63, Lng: -121.33, TS: at(55)}); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if n := len(pub.late(t, "R1")); n != 2 {
		t.Fatalf("a late fix that was not stored was published (%d messages)", n)
	}
	st.mu.Lock()
	st.fail = nil
	st.mu.Unlock()
	if err := ingest(Fix{DriverID: "D1", Lat: 38.63, Lng: -121.33, TS: at(55)}); err != nil {
		t.Fatal(err)
	}
	if l := pub.late(t, "R1"); len(l) != 3 || l[2].Fixes[0].TS != at(55) {
		t.Fatalf("the resent late fix: %+v", l)
	}
}

// TestPublishLateGroups: one commit's late fixes go out one message a
// route (in arrival order within it), at most maxLatePerMessage a message.
func TestPublishLateGroups(t *testing.T) {
	pub := &memPub{}
	p := &pipeline{pub: pub, topics: Topics{Depot: "T"}, stats: &Stats{}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	var late []HistoryFix
	n := maxLatePerMessage + 10
	for i := range n {
		late = append(late, HistoryFix{RouteID: "R1", Fix: Fix{DriverID: "D1", TS: int64(1000 + i), Lat: 38 + float64(i)/1e4, Lng: -121}})
		if i%100 == 0 {
			late = append(late, HistoryFix{RouteID: "R2", Fix: Fix{DriverID: "D2", TS: int64(i), Lat: 1.5, Lng: 2.25}})
		}
	}
	p.publishLate(late)
	r1, r2 := pub.late(t, "R1"), pub.late(t, "R2")
	if len(r1) != 2 || len(r1[0].Fixes) != maxLatePerMessage || len(r1[1].Fixes) != 10 {
		t.Fatalf("R1: %d messages", len(r1))
	}
	for i, f := range append(r1[0].Fixes, r1[1].Fixes...) {
		if f.TS != int64(1000+i) || f.Lat != 38+float64(i)/1e4 || f.Lng != -121 {
			t.Fatalf("R1's fix %d: %+v", i, f)
		}
	}
	if len(r2) != 1 || len(r2[0].Fixes) != 6 || r2[0].Fixes[5].TS != 500 || r2[0].Fixes[0].Lng != 2.25 {
		t.Fatalf("R2: %+v", r2)
	}
	if got := p.stats.LatePublished.Load(); got != int64(n+6) {
		t.Fatalf("LatePublished = %d", got)
	}
	// A route id is one of ValidID's; the encoder quotes it all the same.
	if b := appendLate(nil, []HistoryFix{{RouteID: `R"1`, Fix: Fix{TS: 1, Lat: 1e-7, Lng: 2}}}); !json.Valid(b) {
		t.Fatalf("not JSON: %s", b)
	} else if want := `{"routeId":"R\"1","fixes":[{"ts":1,"lat":1e-7,"lng":2}]}`; string(b) != want {
		t.Fatalf("%s, want %s", b, want)
	}
}

// TestLateFixBatch: the machine files a late fix, lists it in Late under
// its route, and puts nothing to publish but that in the batch: no event,
// no route state (retained), no newest fix, no device health.
func TestLateFixBatch(t *testing.T) {
	m := &Machine{Topics: Topics{Depot: "T"}, Now: func() time.Time { return t0 }}
	m.Load(State{})
	var b Batch
	if _, err := m.Snapshots(&b, []RouteSnapshot{snap("R1", "D1", 10, 0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Fix(&b, Fix{DriverID: "D1", Lat: 38.7, Lng: -121.3, TS: t0.Add(time.Minute).UnixMilli()}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		f    Fix
		late int
	}{
		{"older", Fix{DriverID: "D1", Lat: 38.6, Lng: -121.2, TS: t0.Add(30 * time.Second).UnixMilli()}, 1},
		{"a repeat of the newest", Fix{DriverID: "D1", Lat: 38.7, Lng: -121.3, TS: t0.Add(time.Minute).UnixMilli()}, 0},
	} {
		b.reset()
		late, err := m.Fix(&b, tc.f)
		if err != nil || !late {
			t.Fatalf("%s: late %v, err %v", tc.name, late, err)
		}
		if len(b.Fixes) != 1 || len(b.Late) != tc.late || len(b.Events) != 0 || len(b.States) != 0 || len(b.Latest) != 0 || len(b.Messages) != 0 {
			t.Fatalf("%s: batch %+v", tc.name, b)
		}
		if tc.late == 1 && (b.Late[0].RouteID != "R1" || b.Late[0].Fix != tc.f) {
			t.Fatalf("%s: late %+v", tc.name, b.Late)
		}
	}
}
