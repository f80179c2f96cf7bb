package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// memStore is a recording Store.
type memStore struct {
	mu      sync.Mutex
	state   State
	batches []Batch
	fail    error
}

func (m *memStore) LoadState() (State, error) { return m.state, nil }
func (m *memStore) Commit(b *Batch) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	// The pipeline reuses its batch: keep a copy.
	var c Batch
	c.append(b)
	m.batches = append(m.batches, c)
	return nil
}
func (m *memStore) all() (b Batch) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.batches {
		b.append(&m.batches[i])
	}
	return b
}

type pubMsg struct {
	topic   string
	payload []byte
	retain  bool
	expiry  uint32
}

// memPub records publishes.
type memPub struct {
	mu   sync.Mutex
	msgs []pubMsg
}

func (p *memPub) Publish(topic string, payload []byte, retain bool, qos byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs = append(p.msgs, pubMsg{topic, payload, retain, 0})
	return nil
}

func (p *memPub) PublishExpiring(topic string, payload []byte, retain bool, qos byte, expiry uint32) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs = append(p.msgs, pubMsg{topic, payload, retain, expiry})
	return nil
}

// updates returns the route:update events published.
func (p *memPub) updates(t *testing.T) []Envelope { return p.typed(t, EventRouteUpdate) }

// typed returns the published events of one type.
func (p *memPub) typed(t *testing.T, typ string) []Envelope {
	t.Helper()
	var out []Envelope
	for _, e := range p.events(t) {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

func (p *memPub) events(t *testing.T) []Envelope {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Envelope
	for _, m := range p.msgs {
		if m.topic != "depot/T/events" {
			continue
		}
		if m.payload[0] == '[' { // a batch
			var es []Envelope
			if err := json.Unmarshal(m.payload, &es); err != nil {
				t.Fatal(err)
			}
			out = append(out, es...)
			continue
		}
		var e Envelope
		if err := json.Unmarshal(m.payload, &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

func newDepot(t *testing.T, st *memStore) (*Depot, *memPub, *clock) {
	t.Helper()
	pub, clk := &memPub{}, &clock{t0}
	d := &Depot{ID: "T", Store: st, Now: clk.Now}
	if err := d.Open(pub); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d, pub, clk
}

func snap(id, driver string, done, behind int) RouteSnapshot {
	return RouteSnapshot{RouteID: id, RouteCode: "C" + id, DriverID: driver, DriverName: "N" + driver,
		PerformanceTier: "TOP", TotalStops: 100, CompletedStops: done, TotalPackages: 150,
		CompletedPackages: done, BehindSchedule: behind, CurrentLat: 38.5, CurrentLng: -121.5,
		LastUpdated: t0}
}

func payload(t *testing.T, e Envelope) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(e.Payload, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDiff(t *testing.T) {
	a := snap("R1", "D1", 10, 1).Status()
	if d := Diff(a, a); !d.Empty() || d.Map() != nil {
		t.Fatalf("no change gave %v", d.Map())
	}
	b := a
	b.CompletedStops, b.BehindSchedule, b.StatusColor = 11, 6, Red
	d := Diff(a, b).Map()
	want := map[string]any{"routeId": "R1", "completedStops": 11, "behindSchedule": 6, "statusColor": Red}
	if len(d) != len(want) {
		t.Fatalf("Diff = %v, want %v", d, want)
	}
	for k, v := range want {
		if d[k] != v {
			t.Fatalf("Diff[%s] = %v, want %v", k, d[k], v)
		}
	}
	if n := len(Diff(RouteStatus{}, a).Map()); n != 14 { // every field (performanceTier included) + routeId
		t.Fatalf("first sight gave %d fields", n)
	}
}

func TestFeedDeltasAndSeq(t *testing.T) {
	st := &memStore{}
	d, pub, _ := newDepot(t, st)
	n, err := d.ApplySnapshots([]RouteSnapshot{snap("R1", "D1", 10, 0), snap("R2", "D2", 20, 3)})
	if err != nil || n != 2 {
		t.Fatalf("first cycle: %d, %v", n, err)
	}
	// Same feed again: nothing changes, nothing is published.
	if n, _ := d.ApplySnapshots([]RouteSnapshot{snap("R1", "D1", 10, 0), snap("R2", "D2", 20, 3)}); n != 0 {
		t.Fatalf("unchanged cycle changed %d", n)
	}
	// R2 falls to 7 behind: a delta with only what changed.
	if n, _ := d.ApplySnapshots([]RouteSnapshot{snap("R1", "D1", 10, 0), snap("R2", "D2", 21, 7)}); n != 1 {
		t.Fatalf("third cycle changed %d", n)
	}
	evs := pub.events(t)
	if len(evs) != 4 { // three route updates and R2's rescue alert
		t.Fatalf("%d events", len(evs))
	}
	for i, e := range evs {
		if e.Seq != uint64(i+1) || e.ID == "" {
			t.Fatalf("event %d: %+v", i, e)
		}
	}
	if evs[3].Type != EventRescueAlert || evs[2].Type != EventRouteUpdate {
		t.Fatalf("types %s, %s", evs[2].Type, evs[3].Type)
	}
	got := payload(t, evs[2])
	want := map[string]any{"routeId": "R2", "completedStops": 21.0, "completedPackages": 21.0, "behindSchedule": 7.0, "statusColor": "RED"}
	if len(got) != len(want) {
		t.Fatalf("delta %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("delta[%s] = %v, want %v", k, got[k], v)
		}
	}
	// Stored before published: every published seq is in a committed batch.
	if b := st.all(); len(b.Events) != 4 || b.Events[3].Seq != 4 {
		t.Fatalf("stored events %+v", b.Events)
	}
	r, _ := d.Route("R2")
	if r.StatusColor != Red || r.BehindSchedule != 7 {
		t.Fatalf("route %+v", r)
	}
	// The retained state is the full status.
	var last RouteStatus
	for _, m := range pub.msgs {
		if m.topic == "depot/T/routes/R2/state" && m.retain {
			_ = json.Unmarshal(m.payload, &last)
		}
	}
	if last.BehindSchedule != 7 || last.RouteCode != "CR2" {
		t.Fatalf("retained state %+v", last)
	}
}

func TestFixMovesRoute(t *testing.T) {
	st := &memStore{}
	d, pub, _ := newDepot(t, st)
	d.ApplySnapshots([]RouteSnapshot{snap("R1", "D1", 10, 0)})
	f := Fix{DriverID: "D1", Lat: 38.6, Lng: -121.4, TS: t0.Add(time.Minute).UnixMilli()}
	if err := d.IngestFix(f, true); err != nil {
		t.Fatal(err)
	}
	evs := pub.updates(t)
	if len(evs) != 2 {
		t.Fatalf("%d events", len(evs))
	}
	got := payload(t, evs[1])
	if got["routeId"] != "R1" || got["currentLat"] != 38.6 || got["currentLng"] != -121.4 || got["lastUpdated"] == nil || len(got) != 4 {
		t.Fatalf("delta %v", got)
	}
	b := st.all()
	if len(b.Fixes) != 1 || b.Fixes[0].RouteID != "R1" || len(b.Latest) != 1 {
		t.Fatalf("stored %+v", b)
	}
	// A feed cycle older than the live fix keeps the live position.
	s := snap("R1", "D1", 11, 0)
	d.ApplySnapshots([]RouteSnapshot{s})
	r, _ := d.Route("R1")
	if r.CurrentLat != 38.6 || r.CompletedStops != 11 {
		t.Fatalf("route %+v", r)
	}
}

func TestLateAndRepeatedFixes(t *testing.T) {
	st := &memStore{}
	d, pub, _ := newDepot(t, st)
	d.ApplySnapshots([]RouteSnapshot{snap("R1", "D1", 10, 0)})
	newer := Fix{DriverID: "D1", Lat: 38.7, Lng: -121.3, TS: t0.Add(2 * time.Minute).UnixMilli()}
	older := Fix{DriverID: "D1", Lat: 38.1, Lng: -121.1, TS: t0.Add(time.Minute).UnixMilli()}
	for _, f := range []Fix{newer, older, newer} { // late, then a repeat
		if err := d.IngestFix(f, true); err != nil {
			t.Fatal(err)
		}
	}
	r, _ := d.Route("R1")
	if r.CurrentLat != 38.7 {
		t.Fatalf("position moved backwards: %+v", r)
	}
	if n := len(pub.updates(t)); n != 2 {
		t.Fatalf("%d events, want 2 (feed + first fix)", n)
	}
	b := st.all()
	if len(b.Fixes) != 3 {
		t.Fatalf("history got %d fixes, want all 3 filed", len(b.Fixes))
	}
	if d.Stats.FixesLate.Load() != 2 {
		t.Fatalf("late = %d", d.Stats.FixesLate.Load())
	}
}

func TestFixWithoutRoute(t *testing.T) {
	st := &memStore{}
	d, pub, _ := newDepot(t, st)
	if err := d.IngestFix(Fix{DriverID: "D9", Lat: 1, Lng: 2, TS: t0.UnixMilli()}, true); err != nil {
		t.Fatal(err)
	}
	if len(pub.updates(t)) != 0 {
		t.Fatal("route event for a driver on no route")
	}
	if b := st.all(); len(b.Fixes) != 1 || b.Fixes[0].RouteID != "" {
		t.Fatalf("stored %+v", b.Fixes)
	}
}

func TestCommitFailureReachesWaiter(t *testing.T) {
	boom := errors.New("disk full")
	st := &memStore{fail: boom}
	d, pub, _ := newDepot(t, st)
	if err := d.IngestFix(Fix{DriverID: "D1", TS: t0.UnixMilli()}, true); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	// Live delivery goes on even when the disk fails.
	if _, err := d.ApplySnapshots([]RouteSnapshot{snap("R1", "D1", 1, 0)}); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if len(pub.updates(t)) != 1 {
		t.Fatal("event not published")
	}
}

func TestReopenContinuesSeq(t *testing.T) {
	st := &memStore{state: State{LastSeq: 41, Routes: []RouteStatus{snap("R1", "D1", 10, 0).Status()}}}
	d, pub, _ := newDepot(t, st)
	d.IngestFix(Fix{DriverID: "D1", Lat: 3, Lng: 4, TS: t0.Add(time.Hour).UnixMilli()}, true)
	if evs := pub.events(t); len(evs) != 2 || evs[0].Seq != 42 || evs[1].Seq != 43 {
		t.Fatalf("events %+v", evs)
	}
	d.Close()
	if err := d.IngestFix(Fix{DriverID: "D1"}, false); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
}

func TestSortByUrgency(t *testing.T) {
	rs := []RouteStatus{snap("A", "1", 50, 0).Status(), snap("B", "2", 10, 7).Status(),
		snap("C", "3", 10, 3).Status(), snap("D", "4", 5, 0).Status(), snap("E", "5", 10, 9).Status()}
	SortByUrgency(rs)
	var got string
	for _, r := range rs {
		got += r.RouteID
	}
	if got != "EBCDA" {
		t.Fatalf("order %s", got)
	}
}

func TestParseSnapshots(t *testing.T) {
	good := `[{"routeId":"R12","routeCode":"CX12","driverId":"D7","driverName":"Ana Silva",
  "performanceTier":"TOP","totalStops":180,"completedStops":42,"totalPackages":260,"completedPackages":61,
  "behindSchedule":2,"currentLat":38.5816,"currentLng":-121.4944,"lastUpdated":"2026-11-26T15:04:05Z"}]`
	s, err := ParseSnapshots([]byte(good))
	if err != nil || len(s) != 1 || s[0].CompletedStops != 42 || !s[0].LastUpdated.Equal(t0) {
		t.Fatalf("ParseSnapshots = %+v, %v", s, err)
	}
	for name, bad := range map[string]string{
		"not json":     `{`,
		"object":       `{"routeId":"R1"}`,
		"no id":        `[{"totalStops":1}]`,
		"bad id":       `[{"routeId":"R 1"}]`,
		"dup":          `[{"routeId":"R1"},{"routeId":"R1"}]`,
		"done > total": `[{"routeId":"R1","totalStops":1,"completedStops":2}]`,
		"negative":     `[{"routeId":"R1","behindSchedule":-1}]`,
		"lat":          `[{"routeId":"R1","currentLat":91}]`,
		"bad driver":   `[{"routeId":"R1","driverId":"a/b"}]`,
	} {
		if _, err := ParseSnapshots([]byte(bad)); !errors.Is(err, ErrFeed) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func TestSyncKeepsLastGoodState(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "feed.json")
	src := fileSource(path)
	d, pub, _ := newDepot(t, &memStore{})
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`[{"routeId":"R1","driverId":"D1","totalStops":10,"completedStops":1,"behindSchedule":0}]`)
	if err := d.SyncOnce(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	write(`[{"routeId":"R1",`)
	if err := d.SyncOnce(context.Background(), src); err == nil {
		t.Fatal("malformed feed accepted")
	}
	h := d.Feed()
	if h.OK || h.Error == "" || h.Routes != 1 || h.LastSuccess.IsZero() {
		t.Fatalf("health %+v", h)
	}
	if r, ok := d.Route("R1"); !ok || r.CompletedStops != 1 {
		t.Fatalf("last good state lost: %+v", r)
	}
	os.Remove(path)
	if err := d.SyncOnce(context.Background(), src); err == nil {
		t.Fatal("missing file accepted")
	}
	write(`[{"routeId":"R1","driverId":"D1","totalStops":10,"completedStops":2,"behindSchedule":0}]`)
	if err := d.SyncOnce(context.Background(), src); err != nil || !d.Feed().OK {
		t.Fatalf("recovery: %v %+v", err, d.Feed())
	}
	if n := len(pub.updates(t)); n != 2 {
		t.Fatalf("%d events", n)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzParseSnapshots(f *testing.F) {
	f.Add([]byte(`[{"routeId":"R1","totalStops":3,"completedStops":1}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"routeId":"R1","lastUpdated":"x"}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		snaps, err := ParseSnapshots(b)
		if err != nil {
			return
		}
		for _, s := range snaps {
			if !ValidID(s.RouteID) || s.CompletedStops > s.TotalStops || s.BehindSchedule < 0 {
				t.Fatalf("accepted %+v", s)
			}
		}
	})
}

func TestFailingDiskHealsWithoutAHole(t *testing.T) {
	st := &memStore{}
	d, pub, _ := newDepot(t, st)
	d.ApplySnapshots([]RouteSnapshot{snap("R1", "D1", 10, 0)})
	st.mu.Lock()
	st.fail = errors.New("no space left on device")
	st.mu.Unlock()
	if err := d.IngestFix(Fix{DriverID: "D1", Lat: 1, Lng: 1, TS: t0.Add(time.Second).UnixMilli()}, true); err == nil {
		t.Fatal("a fix was acknowledged unstored")
	}
	d.ApplySnapshots([]RouteSnapshot{snap("R1", "D1", 11, 0)})
	if h := d.StoreHealth(); h.OK || h.Pending == 0 {
		t.Fatalf("health while failing: %+v", h)
	}
	if n := len(pub.updates(t)); n != 3 {
		t.Fatalf("live delivery stopped: %d updates", n)
	}
	st.mu.Lock()
	st.fail = nil
	st.mu.Unlock()
	d.ApplySnapshots([]RouteSnapshot{snap("R1", "D1", 12, 0)})
	if h := d.StoreHealth(); !h.OK || h.Pending != 0 {
		t.Fatalf("health after recovery: %+v", h)
	}
	var seqs []uint64
	for _, e := range st.all().Events {
		seqs = append(seqs, e.Seq)
	}
	slices.Sort(seqs)
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("event log has a hole: %v", seqs)
		}
	}
	if len(seqs) < 4 || len(pub.events(t)) != len(seqs) {
		t.Fatalf("stored %v, published %d", seqs, len(pub.events(t)))
	}
}

func TestPendingStaysBounded(t *testing.T) {
	var b Batch
	for i := range maxPending + 500 {
		b.Events = append(b.Events, Event{Seq: uint64(i + 1)})
		b.Routes = append(b.Routes, RouteStatus{RouteID: "R1", CompletedStops: i})
		b.Latest = append(b.Latest, Fix{DriverID: "D1", TS: int64(i)})
	}
	p := compactPending(&b)
	if len(p.Events) != maxPending || p.Events[0].Seq != 501 {
		t.Fatalf("%d events from seq %d", len(p.Events), p.Events[0].Seq)
	}
	if len(p.Routes) != 1 || p.Routes[0].CompletedStops != maxPending+499 || len(p.Latest) != 1 {
		t.Fatalf("routes %d (%+v), latest %d", len(p.Routes), p.Routes, len(p.Latest))
	}
}

// states returns the retained route states of route published so far.
func (p *memPub) states(t *testing.T, route string) []RouteStatus {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []RouteStatus
	for _, m := range p.msgs {
		if m.topic == "depot/T/routes/"+route+"/state" {
			if !m.retain {
				t.Fatalf("route state not retained")
			}
			var r RouteStatus
			if err := json.Unmarshal(m.payload, &r); err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
	}
	return out
}

func TestRetainedStateThrottle(t *testing.T) {
	d, pub, _ := newDepot(t, &memStore{})
	if _, err := d.ApplySnapshots([]RouteSnapshot{snap("R1", "D1", 10, 0)}); err != nil {
		t.Fatal(err)
	}
	if n := len(pub.states(t, "R1")); n != 1 {
		t.Fatalf("feed: %d states, want 1", n)
	}
	// A burst of moves: every one is an event, the state follows within a
	// second with the newest position, and is not republished per fix.
	start := time.Now()
	lat := func(i int) float64 { return 38.6 + float64(i)/100 }
	for i := range 10 {
		if err := d.IngestFix(Fix{DriverID: "D1", Lat: lat(i), Lng: -121.4, TS: t0.Add(time.Duration(i+1) * time.Second).UnixMilli()}, true); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(pub.updates(t)); n != 11 {
		t.Fatalf("%d route:update events, want 11 (feed + 10 fixes)", n)
	}
	var st []RouteStatus
	for st = pub.states(t, "R1"); len(st) < 2 || st[len(st)-1].CurrentLat != lat(9); st = pub.states(t, "R1") {
		if time.Since(start) > 3*time.Second {
			t.Fatalf("newest position not in the retained state: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(st) > 4 {
		t.Fatalf("%d states for 10 moves within a second or so, want them coalesced", len(st))
	}
	// Anything but a move is published at once.
	s := snap("R1", "D1", 11, 0)
	s.LastUpdated = t0.Add(time.Minute)
	if _, err := d.ApplySnapshots([]RouteSnapshot{s}); err != nil {
		t.Fatal(err)
	}
	if st := pub.states(t, "R1"); st[len(st)-1].CompletedStops != 11 {
		t.Fatalf("stop count change not published at once: %+v", st[len(st)-1])
	}
}

// A move is stored as the driver's newest fix, not as a route record; a
// restart puts it back on the route.
func TestMovesSurviveRestart(t *testing.T) {
	st := &memStore{}
	d, _, _ := newDepot(t, st)
	if _, err := d.ApplySnapshots([]RouteSnapshot{snap("R1", "D1", 10, 0), snap("R2", "D2", 10, 0)}); err != nil {
		t.Fatal(err)
	}
	if err := d.IngestFix(Fix{DriverID: "D1", Lat: 38.7, Lng: -121.3, TS: t0.Add(time.Minute).UnixMilli()}, true); err != nil {
		t.Fatal(err)
	}
	if err := d.IngestFix(Fix{DriverID: "D2", Lat: 38.1, Lng: -121.1, TS: t0.Add(-time.Minute).UnixMilli()}, true); err != nil {
		t.Fatal(err) // older than the feed's position: history only
	}
	d.Close()
	all := st.all()
	if n := len(all.Routes); n != 2 {
		t.Fatalf("%d route records for 2 feed routes and a move, want 2", n)
	}
	st2 := &memStore{state: State{Routes: all.Routes, Latest: all.Latest, LastSeq: all.Events[len(all.Events)-1].Seq}}
	d2, _, _ := newDepot(t, st2)
	r1, _ := d2.Route("R1")
	if r1.CurrentLat != 38.7 || r1.CurrentLng != -121.3 || !r1.LastUpdated.Equal(t0.Add(time.Minute)) {
		t.Fatalf("R1 after restart: %+v", r1)
	}
	if r2, _ := d2.Route("R2"); r2.CurrentLat != 38.5 || !r2.LastUpdated.Equal(t0) {
		t.Fatalf("R2 took an older fix's position: %+v", r2)
	}
}

// fileSource reads a feed document from a file, as feed.FileSource does.
type fileSource string

func (s fileSource) String() string { return "file://" + string(s) }

func (s fileSource) Fetch(context.Context) ([]RouteSnapshot, error) {
	b, err := os.ReadFile(string(s))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFeed, err)
	}
	return ParseSnapshots(b)
}
