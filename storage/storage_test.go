package storage

import (
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge"
)

var t0 = time.Date(2026, 11, 26, 15, 0, 0, 0, time.UTC)

func mustOpen(tb testing.TB, dir string) *DB {
	tb.Helper()
	db, err := Open(dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func fix(driver string, at time.Time, lat float64) bridge.Fix {
	return bridge.Fix{DriverID: driver, Lat: lat, Lng: -121, TS: at.UnixMilli(), Recv: at.UnixMilli()}
}

func TestCommitLoadReopen(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir)
	st, err := db.LoadState()
	if err != nil || st.LastSeq != 0 || len(st.Routes) != 0 {
		t.Fatalf("empty store: %+v, %v", st, err)
	}
	r := bridge.RouteStatus{RouteID: "R1", DriverID: "D1", BehindSchedule: 7, StatusColor: bridge.Red, LastUpdated: t0}
	r2 := r
	r2.BehindSchedule = 8
	b := &bridge.Batch{
		Fixes:  []bridge.HistoryFix{{RouteID: "R1", Fix: fix("D1", t0, 38.1)}, {Fix: fix("D9", t0, 1)}},
		Latest: []bridge.Fix{fix("D1", t0, 38.0), fix("D1", t0.Add(time.Second), 38.1)},
		Routes: []bridge.RouteStatus{r, r2},
		Events: []bridge.Event{{Seq: 1, Raw: []byte(`{"seq":1}`)}, {Seq: 2, Raw: []byte(`{"seq":2}`)}},
	}
	if err := db.Commit(b); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal("second Close:", err)
	}

	db = mustOpen(t, dir)
	st, err = db.LoadState()
	if err != nil {
		t.Fatal(err)
	}
	if st.LastSeq != 2 || len(st.Routes) != 1 || st.Routes[0].BehindSchedule != 8 || !st.Routes[0].LastUpdated.Equal(t0) {
		t.Fatalf("after reopen: %+v", st)
	}
	if len(st.Latest) != 1 || st.Latest[0].Lat != 38.1 {
		t.Fatalf("latest: %+v", st.Latest)
	}
	h, err := db.History("R1", t0.Add(-time.Hour), t0.Add(time.Hour))
	if err != nil || len(h) != 1 || h[0].Lat != 38.1 {
		t.Fatalf("history: %+v, %v", h, err)
	}
}

func TestHistoryWindowAndIdempotence(t *testing.T) {
	db := mustOpen(t, t.TempDir())
	var b bridge.Batch
	for i := range 100 {
		b.Fixes = append(b.Fixes, bridge.HistoryFix{RouteID: "R1", Fix: fix("D1", t0.Add(time.Duration(i)*time.Second), float64(i)/100)})
		b.Fixes = append(b.Fixes, bridge.HistoryFix{RouteID: "R10", Fix: fix("D2", t0.Add(time.Duration(i)*time.Second), 0)})
	}
	if err := db.Commit(&b); err != nil {
		t.Fatal(err)
	}
	// The same fix again (a QoS 1 redelivery) does not double.
	if err := db.Commit(&bridge.Batch{Fixes: b.Fixes[:2]}); err != nil {
		t.Fatal(err)
	}
	h, err := db.History("R1", t0.Add(10*time.Second), t0.Add(19*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 10 || h[0].TS != t0.Add(10*time.Second).UnixMilli() || h[9].TS != t0.Add(19*time.Second).UnixMilli() {
		t.Fatalf("window: %d fixes, %+v", len(h), h)
	}
	for _, f := range h {
		if f.DriverID != "D1" {
			t.Fatalf("R10's fix leaked into R1: %+v", f)
		}
	}
	all, _ := db.History("R1", t0.Add(-time.Hour), t0.Add(time.Hour))
	if len(all) != 100 {
		t.Fatalf("%d fixes in R1", len(all))
	}
	if none, err := db.History("R2", t0, t0.Add(time.Hour)); err != nil || len(none) != 0 {
		t.Fatalf("unknown route: %v, %v", none, err)
	}
}

func TestEventsAfter(t *testing.T) {
	db := mustOpen(t, t.TempDir())
	var b bridge.Batch
	for i := uint64(1); i <= 30; i++ {
		raw, _ := json.Marshal(map[string]uint64{"seq": i})
		b.Events = append(b.Events, bridge.Event{Seq: i, Raw: raw})
	}
	if err := db.Commit(&b); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		after      uint64
		limit      int
		first, num int
	}{{0, 10, 1, 10}, {25, 10, 26, 5}, {30, 10, 0, 0}, {5, 1, 6, 1}, {0, 0, 0, 0}, {1<<64 - 1, 5, 0, 0}, {1<<64 - 3, 5, 0, 0}} {
		evs, err := db.EventsAfter(tt.after, tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != tt.num {
			t.Fatalf("after %d limit %d: %d events", tt.after, tt.limit, len(evs))
		}
		if tt.num > 0 {
			var e struct{ Seq int }
			json.Unmarshal(evs[0], &e)
			if e.Seq != tt.first {
				t.Fatalf("after %d: first seq %d", tt.after, e.Seq)
			}
		}
	}
}

func TestOpenTwiceFails(t *testing.T) {
	dir := t.TempDir()
	mustOpen(t, dir)
	if db, err := Open(dir, nil); err == nil {
		db.Close()
		t.Fatal("second opener of the same directory was allowed")
	}
}

func BenchmarkCommit100Fixes(b *testing.B) {
	db := mustOpen(b, b.TempDir())
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		var batch bridge.Batch
		for k := range 100 {
			batch.Fixes = append(batch.Fixes, bridge.HistoryFix{RouteID: "R1", Fix: fix("D1", t0.Add(time.Duration(i*100+k)*time.Millisecond), 1)})
		}
		if err := db.Commit(&batch); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDispatchRecordsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir)
	b := &bridge.Batch{
		Rescues:     []bridge.Rescue{{RescueID: "rsc_1", RouteID: "R1", State: bridge.StateOpen, Seq: 4}},
		Offers:      []bridge.Offer{{OfferTerms: bridge.OfferTerms{VTOID: "vto_2", DriverID: "D1", ExpiresAt: t0}, State: bridge.StateOpen}},
		Assignments: []bridge.Assignment{{RouteID: "R1", DriverID: "D2"}, {RouteID: "R2", DriverID: "D3"}},
	}
	if err := db.Commit(b); err != nil {
		t.Fatal(err)
	}
	b = &bridge.Batch{Offers: []bridge.Offer{{OfferTerms: bridge.OfferTerms{VTOID: "vto_2", DriverID: "D1"}, State: bridge.StateAccepted}},
		Assignments: []bridge.Assignment{{RouteID: "R2"}}}
	if err := db.Commit(b); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = mustOpen(t, dir)
	st, err := db.LoadState()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Rescues) != 1 || st.Rescues[0].Seq != 4 || len(st.Offers) != 1 || st.Offers[0].State != bridge.StateAccepted ||
		len(st.Assignments) != 1 || st.Assignments[0].DriverID != "D2" {
		t.Fatalf("state after reopen: %+v", st)
	}
}

func TestPruneEvents(t *testing.T) {
	db := mustOpen(t, t.TempDir())
	var b bridge.Batch
	for i := uint64(1); i <= 25; i++ {
		raw, _ := json.Marshal(map[string]any{"seq": i, "timestamp": t0.Add(time.Duration(i) * time.Minute)})
		b.Events = append(b.Events, bridge.Event{Seq: i, Raw: raw})
	}
	if err := db.Commit(&b); err != nil {
		t.Fatal(err)
	}
	n, err := db.PruneEvents(t0.Add(17*time.Minute+30*time.Second), 4) // small chunks: several transactions
	if err != nil || n != 17 {
		t.Fatalf("pruned %d, %v", n, err)
	}
	if seq, _ := db.OldestSeq(); seq != 18 {
		t.Fatalf("oldest %d", seq)
	}
	if st, _ := db.LoadState(); st.LastSeq != 25 {
		t.Fatalf("last seq %d after pruning", st.LastSeq)
	}
	if n, _ := db.PruneEvents(t0, 4); n != 0 {
		t.Fatalf("pruned %d newer events", n)
	}
}

func TestPruneHistory(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir)
	var b bridge.Batch
	b.Routes = []bridge.RouteStatus{{RouteID: "R1"}, {RouteID: "R2"}}
	b.Latest = []bridge.Fix{fix("D9", t0, 1)}
	for i := range 30 {
		at := t0.Add(time.Duration(i) * time.Hour)
		b.Fixes = append(b.Fixes, bridge.HistoryFix{RouteID: "R1", Fix: fix("D1", at, 1)},
			bridge.HistoryFix{RouteID: "R2", Fix: fix("D2", at, 2)}, bridge.HistoryFix{Fix: fix("D9", at, 3)})
	}
	if err := db.Commit(&b); err != nil {
		t.Fatal(err)
	}
	n, err := db.PruneHistory(t0.Add(10*time.Hour), 3) // small chunks
	if err != nil || n != 30 {
		t.Fatalf("pruned %d, %v", n, err)
	}
	for _, r := range []string{"R1", "R2"} {
		h, _ := db.History(r, t0.Add(-time.Hour), t0.Add(48*time.Hour))
		if len(h) != 20 || h[0].TS != t0.Add(10*time.Hour).UnixMilli() {
			t.Fatalf("%s keeps %d fixes from %v", r, len(h), h[0].Time())
		}
	}
	if err := db.Merge(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = mustOpen(t, dir)
	if h, _ := db.History("R1", t0.Add(-time.Hour), t0.Add(48*time.Hour)); len(h) != 20 {
		t.Fatalf("after merge and reopen: %d fixes", len(h))
	}
}
