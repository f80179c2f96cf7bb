package ui

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge"
)

// logArchive is an Archive over an event log in memory, whose first
// events may have been pruned (seqs start at first).
type logArchive struct {
	first  uint64
	evs    []json.RawMessage // seq first+i
	served int               // events answered, all told
}

func (l *logArchive) History(string, time.Time, time.Time) ([]bridge.Fix, error) { return nil, nil }
func (l *logArchive) OldestSeq() (uint64, error) {
	if len(l.evs) == 0 {
		return 0, nil
	}
	return l.first, nil
}
func (l *logArchive) EventsAfter(after uint64, limit int) ([]json.RawMessage, error) {
	var out []json.RawMessage
	for i, e := range l.evs {
		if seq := l.first + uint64(i); seq > after && len(out) < limit {
			out = append(out, e)
		}
	}
	l.served += len(out)
	return out, nil
}
func (l *logArchive) last() uint64 { return l.first + uint64(len(l.evs)) - 1 }

// add appends an event of type typ at t.
func (l *logArchive) add(t *testing.T, typ string, at time.Time, payload any) {
	t.Helper()
	p, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	seq := l.first + uint64(len(l.evs))
	raw, err := json.Marshal(bridge.Envelope{Seq: seq, ID: fmt.Sprint("evt_", seq), Type: typ, Priority: "NORMAL", Timestamp: at, Payload: p})
	if err != nil {
		t.Fatal(err)
	}
	l.evs = append(l.evs, raw)
}

// logDepot is the Depot of a logArchive: its last seq, and one route.
type logDepot struct{ log *logArchive }

func (d logDepot) Routes() []bridge.RouteStatus { return nil }
func (d logDepot) Route(id string) (bridge.RouteStatus, bool) {
	if id == "R3" {
		return bridge.RouteStatus{RouteID: "R3", RouteCode: "CX03"}, true
	}
	return bridge.RouteStatus{}, false
}
func (d logDepot) Feed() bridge.FeedHealth { return bridge.FeedHealth{} }
func (d logDepot) LastSeq() uint64         { return d.log.last() }

// exportAPI is the admin API's accounts over a logArchive.
func exportAPI(t *testing.T, l *logArchive) *adminAPI {
	a := newAdminAPI(t)
	now := time.Date(2026, 12, 3, 21, 0, 0, 0, time.UTC)
	a.h = New(Config{Accounts: a.acc, DepotID: "D1", Log: a.acc.Log, Archive: l, Depot: logDepot{l}, Now: func() time.Time { return now }}).Handler()
	return a
}

// dayLog is a day (the window is 08:00–20:00 UTC of 2026-12-03) of
// offers, a rescue and a reassignment among route updates, with events
// before and after the window.
func dayLog(t *testing.T) *logArchive {
	l := &logArchive{first: 1}
	at := func(h, m int) time.Time { return time.Date(2026, 12, 3, h, m, 0, 0, time.UTC) }
	upd := map[string]any{"routeId": "R1", "currentLat": 38.5}
	l.add(t, "vto:offer", at(7, 40), bridge.OfferStatus{OfferTerms: bridge.OfferTerms{VTOID: "vto_1", RouteID: "R3", RouteCode: "CX03", DriverID: "D3", DriverName: "Cy"}})
	l.add(t, "route:update", at(7, 59), upd)
	l.add(t, "vto:offer", at(8, 0), bridge.VTOOffered{OfferStatus: bridge.OfferStatus{OfferTerms: bridge.OfferTerms{VTOID: "vto_3", RouteID: "R1", RouteCode: "CX01",
		DriverID: "D1", DriverName: "Ana Silva", Reason: "light volume"}, State: "open"}, By: "ben"})
	l.add(t, "route:update", at(8, 1), upd)
	l.add(t, "vto:accepted", at(8, 5), bridge.VTOAnswered{VTOID: "vto_3", DriverID: "D1", RouteID: "R1", State: "accepted", By: "driver:D1"})
	// vto_1, offered before the window, expires in it.
	l.add(t, "vto:expired", at(8, 10), bridge.VTOExpired{VTOID: "vto_1", DriverID: "D3", RouteID: "R3", State: "expired"})
	l.add(t, "vto:confirmed", at(9, 0), bridge.VTOConfirmed{VTOID: "vto_3", DriverID: "D1", State: "confirmed", PayrollRef: "PR-2026-0042"})
	// Markup and formulas from outside: the reason, a driver's name.
	l.add(t, "vto:offer", at(10, 0), bridge.VTOOffered{OfferStatus: bridge.OfferStatus{OfferTerms: bridge.OfferTerms{VTOID: "vto_8", RouteID: "R2", RouteCode: "CX02",
		DriverID: "D2", DriverName: "+Eve", Reason: `=HYPERLINK("http://evil.example/","click")`}}, By: "@boss"})
	l.add(t, "vto:declined", at(10, 2), bridge.VTOAnswered{VTOID: "vto_8", DriverID: "D2", RouteID: "R2", State: "declined", By: "dispatcher:ana"})
	l.add(t, "rescue:alert", at(11, 0), bridge.RescueAlert{RescueID: "rsc_10", StruggleRoute: bridge.RescueRoute{RouteID: "R2", RouteCode: "CX02",
		DriverID: "D2", DriverName: "Ben Okafor", BehindSchedule: 7}, RescueDriver: &bridge.RescueDriver{DriverID: "D4", DriverName: "Dee"},
		TransferLocation: bridge.Point{Address: "@5th and Main"}})
	l.add(t, "rescue:updated", at(11, 3), bridge.RescueUpdated{RescueID: "rsc_10", RouteID: "R2", State: "acknowledged", By: "driver:D4"})
	l.add(t, "route:reassigned", at(12, 0), bridge.RouteReassigned{RouteID: "R1", RouteCode: "CX01", FromDriverID: "D1", ToDriverID: "D5", By: "-ana"})
	l.add(t, "rescue:updated", at(12, 30), bridge.RescueUpdated{RescueID: "rsc_10", RouteID: "R2", State: "resolved", By: "ana"})
	// Offered just before the window's end, answered after it: joined.
	// Logged before offers recorded who made them (no by): no actor.
	l.add(t, "vto:offer", at(19, 50), bridge.OfferStatus{OfferTerms: bridge.OfferTerms{VTOID: "vto_14", RouteID: "R2", RouteCode: "CX02", DriverID: "D2"}})
	l.add(t, "route:update", at(20, 0), upd)
	l.add(t, "vto:accepted", at(20, 10), bridge.VTOAnswered{VTOID: "vto_14", DriverID: "D2", RouteID: "R2", State: "accepted", By: "driver:D2"})
	// After the window: no row.
	l.add(t, "vto:offer", at(20, 15), bridge.OfferStatus{OfferTerms: bridge.OfferTerms{VTOID: "vto_17", RouteID: "R1", DriverID: "D5"}})
	l.add(t, "route:reassigned", at(21, 0), bridge.RouteReassigned{RouteID: "R2", FromDriverID: "D2", ToDriverID: "D1", By: "ana"})
	return l
}

func windowQuery() string {
	return fmt.Sprintf("from=%d&to=%d", time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC).UnixMilli(), time.Date(2026, 12, 3, 20, 0, 0, 0, time.UTC).UnixMilli())
}

// getExport answers GET /api/v1/events/export?query as token.
func getExport(t *testing.T, a *adminAPI, query, token string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("GET", "/api/v1/events/export?"+query, nil)
	req.RemoteAddr = "192.0.2.1:1234"
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	a.h.ServeHTTP(w, req)
	return w
}

func readCSV(t *testing.T, body string) [][]string {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("not CSV: %v\n%s", err, body)
	}
	return recs
}

// TestExportEvents: one row per offer, rescue and reassignment of the
// window, each offer's and rescue's later events joined to its row
// (outcome, payroll reference, actor), formulas defused.
func TestExportEvents(t *testing.T) {
	a := exportAPI(t, dayLog(t))
	w := getExport(t, a, windowQuery()+"&format=csv", a.token("ann"))
	if w.Code != 200 {
		t.Fatalf("HTTP %d %s", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "text/csv; charset=utf-8" {
		t.Fatalf("Content-Type %q", ct)
	}
	if cd := w.Header().Get("Content-Disposition"); !strings.Contains(cd, `filename="events-`) {
		t.Fatalf("Content-Disposition %q", cd)
	}
	if c := w.Header().Get("X-Export-Complete"); c != "true" {
		t.Fatalf("X-Export-Complete %q (cut %q)", c, w.Header().Get("X-Export-Cut"))
	}
	recs := readCSV(t, w.Body.String())
	if got := strings.Join(recs[0], ","); got != "time,type,route,driver,details,outcome,payroll reference,actor,id" {
		t.Fatalf("header %q", got)
	}
	type row struct{ at, kind, route, driver, details, outcome, payroll, actor, id string }
	var rows []row
	for _, r := range recs[1:] {
		at, err := time.Parse(time.RFC3339, r[0])
		if err != nil {
			t.Fatalf("time %q: %v", r[0], err)
		}
		rows = append(rows, row{at.UTC().Format("15:04"), r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8]})
	}
	want := []row{
		{"08:00", "vto", "CX01", "Ana Silva (D1)", "light volume", "confirmed (accepted by driver:D1)", "PR-2026-0042", "ben", "vto_3"},
		{"08:10", "vto", "CX03", "D3", "offered before this window", "expired", "", "", "vto_1"},
		{"10:00", "vto", "CX02", "'+Eve (D2)", `'=HYPERLINK("http://evil.example/","click")`, "declined by dispatcher:ana", "", "'@boss", "vto_8"},
		{"11:00", "rescue", "CX02", "Ben Okafor (D2)", "7 stops behind; rescuer Dee (D4); meet at @5th and Main", "resolved", "", "ana", "rsc_10"},
		{"12:00", "reassignment", "CX01", "D5", "from D1 to D5", "reassigned", "", "'-ana", ""},
		{"19:50", "vto", "CX02", "D2", "", "accepted by driver:D2", "", "", "vto_14"},
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d:\n%s", len(rows), len(want), w.Body)
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Errorf("row %d:\n got %q\nwant %q", i+1, rows[i], want[i])
		}
	}

	// An admin may too; nobody signed in may not.
	if w := getExport(t, a, windowQuery(), a.token("root")); w.Code != 200 {
		t.Fatalf("admin: HTTP %d", w.Code)
	}
	if w := getExport(t, a, windowQuery(), ""); w.Code != 401 {
		t.Fatalf("no token: HTTP %d", w.Code)
	}
	if w := getExport(t, a, windowQuery(), a.token("ann")+"x"); w.Code != 401 {
		t.Fatalf("a bad token: HTTP %d", w.Code)
	}
	// A day by its date, in the box's time zone.
	w = getExport(t, a, "date=2026-12-03", a.token("ann"))
	if w.Code != 200 || !strings.Contains(w.Header().Get("Content-Disposition"), `filename="events-2026-12-03.csv"`) {
		t.Fatalf("date: HTTP %d %q", w.Code, w.Header().Get("Content-Disposition"))
	}
	if recs := readCSV(t, w.Body.String()); len(recs) < 2 {
		t.Fatalf("date: %d lines", len(recs))
	}
}

// TestExportEventsBadParams: a window that is not one, another format,
// an unknown or repeated parameter: 400 with a reason.
func TestExportEventsBadParams(t *testing.T) {
	a := exportAPI(t, dayLog(t))
	tok := a.token("ann")
	for _, q := range []string{"", "format=csv", "format=json&" + windowQuery(), "format=xlsx&date=2026-12-03",
		"date=2026-13-01", "date=yesterday", "date=2026-12-03&from=1", "from=abc", "from=1&to=xyz",
		"from=1764748800000&to=1764748800000", "from=1764748800000&to=1764700000000",
		"from=1764748800000&to=1770000000000", "date=2026-12-03&date=2026-12-04", "date=2026-12-03&limit=5",
		"from=-5", "date=0000-01-01"} {
		w := getExport(t, a, q, tok)
		if w.Code != 400 || !strings.Contains(w.Body.String(), `"error"`) {
			t.Errorf("%q: HTTP %d %s", q, w.Code, w.Body)
		}
	}
}

// TestExportEventsCut: an export that cannot read the whole window says
// so: too many events to read, or the window's start already pruned.
func TestExportEventsCut(t *testing.T) {
	l := dayLog(t)
	a := exportAPI(t, l)
	old := maxExportScan
	maxExportScan = 8
	w := getExport(t, a, windowQuery(), a.token("ann"))
	maxExportScan = old
	if w.Code != 200 || w.Header().Get("X-Export-Complete") != "false" || w.Header().Get("X-Export-Cut") != "scan" {
		t.Fatalf("cut by the scan: HTTP %d %v", w.Code, w.Header())
	}
	through, err := time.Parse(time.RFC3339Nano, w.Header().Get("X-Export-Through"))
	if err != nil || !through.Equal(time.Date(2026, 12, 3, 11, 0, 0, 0, time.UTC)) {
		t.Fatalf("X-Export-Through %q", w.Header().Get("X-Export-Through"))
	}
	if recs := readCSV(t, w.Body.String()); len(recs) != 5 { // header, three offers, the rescue
		t.Fatalf("%d lines:\n%s", len(recs), w.Body)
	}

	// The first four events pruned: the window's first offer is gone.
	l.first, l.evs = 5, l.evs[4:]
	w = getExport(t, a, windowQuery(), a.token("ann"))
	if w.Code != 200 || w.Header().Get("X-Export-Complete") != "false" || w.Header().Get("X-Export-Cut") != "pruned" {
		t.Fatalf("pruned: HTTP %d %v", w.Code, w.Header())
	}
	// An empty log: a header and nothing else.
	a = exportAPI(t, &logArchive{first: 1})
	w = getExport(t, a, windowQuery(), a.token("ann"))
	if w.Code != 200 || w.Body.String() != strings.Join(exportHeader, ",")+"\n" || w.Header().Get("X-Export-Complete") != "true" {
		t.Fatalf("empty log: HTTP %d %q", w.Code, w.Body)
	}
}

func TestCSVSafe(t *testing.T) {
	for in, want := range map[string]string{"": "", "Ana": "Ana", "=1+2": "'=1+2", "+1": "'+1", "-1": "'-1", "@SUM(A1)": "'@SUM(A1)",
		"\tx": "'\tx", "\rx": "'\rx", "a=b": "a=b", "'=x": "'=x"} {
		if got := csvSafe(in); got != want {
			t.Errorf("csvSafe(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzExportWindow: the export's date, from and to are outside input;
// whatever they hold, the answer is an error or a window of at most 31
// days that ends after it starts (a date: one day), and never a panic.
func FuzzExportWindow(f *testing.F) {
	for _, s := range [][3]string{{"2026-12-03", "", ""}, {"", "1764748800000", "1764792000000"}, {"", "2026-12-03T08:00:00Z", ""},
		{"2026-02-30", "", ""}, {"", "-1", "5"}, {"", "9999999999999999", ""}, {"9999-12-31", "", ""}, {"", "1", "2"}} {
		f.Add(s[0], s[1], s[2])
	}
	now := time.Date(2026, 12, 3, 21, 0, 0, 0, time.UTC)
	loc := time.FixedZone("depot", -8*3600)
	f.Fuzz(func(t *testing.T, date, from, to string) {
		a, b, err := exportWindow(date, from, to, now, loc)
		if err != nil {
			return
		}
		if !b.After(a) || b.Sub(a) > maxExportSpan {
			t.Fatalf("%q %q %q: window %v – %v", date, from, to, a, b)
		}
		if date != "" && (from != "" || to != "" || b.Sub(a) != 24*time.Hour || a.In(loc).Format("2006-01-02") != date) {
			t.Fatalf("%q %q %q: window %v – %v", date, from, to, a, b)
		}
		if a.Year() < 1970 || b.Year() > 9999 {
			t.Fatalf("%q %q %q: window %v – %v", date, from, to, a, b)
		}
	})
}

// TestExportEventsOutsideLog: a window before or after every event kept
// has no rows, and reads nothing of the log.
func TestExportEventsOutsideLog(t *testing.T) {
	l := dayLog(t)
	a := exportAPI(t, l)
	tok := a.token("ann")
	for _, q := range []string{"date=2026-11-01", "date=2026-12-20"} {
		l.served = 0
		w := getExport(t, a, q, tok)
		if recs := readCSV(t, w.Body.String()); w.Code != 200 || len(recs) != 1 {
			t.Fatalf("%s: HTTP %d, %d lines", q, w.Code, len(recs))
		}
		// Two binary searches over 18 events: a handful each.
		if l.served > 12 {
			t.Fatalf("%s: read %d events of %d", q, l.served, len(l.evs))
		}
	}
}
