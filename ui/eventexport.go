package ui

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/labstack/echo/v4"
)

// The day's events as a spreadsheet (docs/workspace.md, Exports):
// GET /api/v1/events/export?date=YYYY-MM-DD (the box's time zone) or
// ?from=&to= (Unix ms or RFC 3339; to defaults to now), format=csv (the
// only one). One row per rescue, VTO offer and reassignment of the
// window; an offer's or rescue's later events (answer, expiry, payroll's
// confirmation, acknowledgement, resolution) fill its row's outcome,
// joined by the offer's or rescue's id, also when they fall after the
// window. A later event whose offer or rescue began before the window
// gets a row of its own, which says so.

// exportHeader is the CSV's first line.
var exportHeader = []string{"time", "type", "route", "driver", "details", "outcome", "payroll reference", "actor", "id"}

// maxExportScan bounds the events one export reads through: a day of a
// busy depot is about a million, nearly all route updates. maxExportRows
// bounds the rows one export holds (they are joined in memory before they
// are written). Variables for the tests.
var maxExportScan, maxExportRows = 1_500_000, 50_000

const (
	// maxExportSpan is the longest window one export covers.
	maxExportSpan = 31 * 24 * time.Hour
	// joinAfter is how far past the window's end the export reads for the
	// outcomes of its offers and rescues: an offer lasts 30 minutes.
	joinAfter = bridge.OfferTTL + time.Minute
)

// exportTypes are the events the export reads.
var exportTypes = map[string]bool{
	bridge.EventRescueAlert: true, bridge.EventRescueUpdated: true, bridge.EventVTOOffer: true,
	bridge.EventVTOAccepted: true, bridge.EventVTODeclined: true, bridge.EventVTOExpired: true,
	bridge.EventVTOConfirmed: true, bridge.EventRouteReassign: true,
}

var errExportWindow = errors.New("want date=YYYY-MM-DD, or from= (and to=) as Unix milliseconds or RFC 3339")

// exportWindow reads the window of an export: date (a day in loc), or
// from and to (to defaults to now). The window is [from, to).
func exportWindow(date, from, to string, now time.Time, loc *time.Location) (time.Time, time.Time, error) {
	if date != "" {
		if from != "" || to != "" {
			return time.Time{}, time.Time{}, errors.New("date: give a date, or from and to, not both")
		}
		d, err := time.ParseInLocation("2006-01-02", date, loc)
		if err != nil || d.Year() < 1970 || d.Year() > 9998 {
			return time.Time{}, time.Time{}, fmt.Errorf("date: %w", errExportWindow)
		}
		return d, d.AddDate(0, 0, 1), nil
	}
	if from == "" {
		return time.Time{}, time.Time{}, errExportWindow
	}
	f, err := parseTime(from, time.Time{})
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("from: %w", errExportWindow)
	}
	t, err := parseTime(to, now)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("to: %w", errExportWindow)
	}
	if !t.After(f) {
		return time.Time{}, time.Time{}, errors.New("to: must be after from")
	}
	if t.Sub(f) > maxExportSpan {
		return time.Time{}, time.Time{}, errors.New("to: a window of at most 31 days")
	}
	return f, t, nil
}

// seqAt is the first seq at or after t among oldest..last (last+1: none),
// by a binary search over the events' times.
func (s *Server) seqAt(t time.Time, oldest, last uint64) (uint64, error) {
	lo, hi := oldest, last+1 // the answer is in [lo, hi]
	for lo < hi {
		mid := lo + (hi-lo)/2
		evs, err := s.cfg.Archive.EventsAfter(mid-1, 1)
		if err != nil {
			return 0, err
		}
		h, ok := bridge.EventHead{}, false
		if len(evs) == 1 {
			h, ok = bridge.ReadEventHead(evs[0])
		}
		if !ok || h.Seq != mid {
			// A hole (pruned meanwhile): search above it.
			lo = mid + 1
			continue
		}
		if h.Timestamp.Before(t) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// exportRow is one line of the export, as it is being joined.
type exportRow struct {
	at                                                    time.Time
	kind, route, driver, details, outcome, payroll, actor string
	id                                                    string
	// answered: how a VTO offer was answered and by whom ("accepted by
	// driver:D1"), kept in its outcome once payroll confirms it.
	answered string
}

func (r *exportRow) cells(loc *time.Location) []string {
	outcome := r.outcome
	if r.answered != "" && outcome != r.answered {
		outcome += " (" + r.answered + ")"
	}
	return []string{r.at.In(loc).Format(time.RFC3339), r.kind, r.route, r.driver, r.details, outcome, r.payroll, r.actor, r.id}
}

// csvSafe keeps a cell from being read as a formula by a spreadsheet
// (CSV injection): a cell starting with = + - @ tab or CR gets a leading '.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// codeOr is a route as the export shows it: its code, else its id.
func codeOr(code, id string) string {
	if code != "" {
		return code
	}
	return id
}

// nameOf is a driver as the export shows it: "Ana Silva (D1)".
func nameOf(name, id string) string {
	switch {
	case name != "" && id != "":
		return name + " (" + id + ")"
	case name != "":
		return name
	}
	return id
}

// joiner builds the rows: one per rescue, offer and reassignment, the
// later events of an offer or rescue joined to its row by id.
type joiner struct {
	from, to    time.Time
	rows        []*exportRow
	offers      map[string]*exportRow
	rescues     map[string]*exportRow
	full        bool // maxExportRows reached
	routeCodeOf func(id string) string
}

func (j *joiner) add(r *exportRow) *exportRow {
	if len(j.rows) >= maxExportRows {
		j.full = true
		return nil
	}
	j.rows = append(j.rows, r)
	return r
}

// inWindow says whether an event at t starts a row.
func (j *joiner) inWindow(t time.Time) bool { return !t.Before(j.from) && t.Before(j.to) }

// event takes one envelope of exportTypes.
func (j *joiner) event(h bridge.EventHead, raw []byte) {
	var env struct {
		Payload json.RawMessage `json:"payload"`
	}
	if json.Unmarshal(raw, &env) != nil {
		return
	}
	p := env.Payload
	in := j.inWindow(h.Timestamp)
	switch h.Type {
	case bridge.EventRescueAlert:
		var a bridge.RescueAlert
		if !in || json.Unmarshal(p, &a) != nil || a.RescueID == "" {
			return
		}
		sr := a.StruggleRoute
		details := fmt.Sprintf("%d stops behind; ", sr.BehindSchedule)
		if rd := a.RescueDriver; rd != nil {
			details += "rescuer " + nameOf(rd.DriverName, rd.DriverID)
		} else {
			details += "nobody free to help"
		}
		if a.TransferLocation.Address != "" {
			details += "; meet at " + a.TransferLocation.Address
		}
		if r := j.add(&exportRow{at: h.Timestamp, kind: "rescue", route: codeOr(sr.RouteCode, sr.RouteID), driver: nameOf(sr.DriverName, sr.DriverID),
			details: details, outcome: bridge.StateOpen, id: a.RescueID}); r != nil {
			j.rescues[a.RescueID] = r
		}
	case bridge.EventRescueUpdated:
		var u bridge.RescueUpdated
		if json.Unmarshal(p, &u) != nil || u.RescueID == "" {
			return
		}
		r := j.rescues[u.RescueID]
		if r == nil {
			if !in {
				return
			}
			r = j.add(&exportRow{at: h.Timestamp, kind: "rescue", route: j.routeCodeOf(u.RouteID),
				details: "raised before this window", id: u.RescueID})
			if r == nil {
				return
			}
			j.rescues[u.RescueID] = r
		}
		r.outcome, r.actor = u.State, u.By
	case bridge.EventVTOOffer:
		// The actor is the dispatcher who offered it (by; a log written
		// before offers recorded it has none: the cell stays empty).
		var o bridge.VTOOffered
		if !in || json.Unmarshal(p, &o) != nil || o.VTOID == "" {
			return
		}
		if r := j.add(&exportRow{at: h.Timestamp, kind: "vto", route: codeOr(o.RouteCode, o.RouteID), driver: nameOf(o.DriverName, o.DriverID),
			details: o.Reason, outcome: bridge.StateOpen, actor: o.By, id: o.VTOID}); r != nil {
			j.offers[o.VTOID] = r
		}
	case bridge.EventVTOAccepted, bridge.EventVTODeclined, bridge.EventVTOExpired, bridge.EventVTOConfirmed:
		var v struct {
			VTOID      string `json:"vtoId"`
			DriverID   string `json:"driverId"`
			RouteID    string `json:"routeId"`
			State      string `json:"state"`
			By         string `json:"by"`
			PayrollRef string `json:"payrollRef"`
		}
		if json.Unmarshal(p, &v) != nil || v.VTOID == "" {
			return
		}
		r := j.offers[v.VTOID]
		if r == nil {
			if !in {
				return
			}
			r = j.add(&exportRow{at: h.Timestamp, kind: "vto", route: j.routeCodeOf(v.RouteID), driver: v.DriverID,
				details: "offered before this window", id: v.VTOID})
			if r == nil {
				return
			}
			j.offers[v.VTOID] = r
		}
		if v.State == "" {
			v.State = strings.TrimPrefix(h.Type, "vto:")
		}
		// Who answered goes in the outcome ("accepted by driver:D1",
		// "declined by dispatcher:ana"), and stays there once payroll
		// confirms it: "confirmed (accepted by driver:D1)".
		r.outcome = v.State
		if v.By != "" {
			r.outcome += " by " + v.By
			r.answered = r.outcome
		}
		if v.PayrollRef != "" {
			r.payroll = v.PayrollRef
		}
	case bridge.EventRouteReassign:
		var ra bridge.RouteReassigned
		if !in || json.Unmarshal(p, &ra) != nil {
			return
		}
		j.add(&exportRow{at: h.Timestamp, kind: "reassignment", route: codeOr(ra.RouteCode, ra.RouteID), driver: ra.ToDriverID,
			details: "from " + ra.FromDriverID + " to " + ra.ToDriverID, outcome: "reassigned", actor: ra.By})
	}
}

// exportEvents answers GET /api/v1/events/export. When the answer is not
// the whole window, X-Export-Complete is false and X-Export-Cut says why:
// "scan" (more events than one export reads; X-Export-Through is the time
// of the last event read), "rows" (more rows than one export holds) or
// "pruned" (the retention deleted the window's start).
func (s *Server) exportEvents(c echo.Context) error {
	if f := c.QueryParam("format"); f != "" && f != "csv" {
		return echo.NewHTTPError(http.StatusBadRequest, "format: want csv")
	}
	q := c.QueryParams()
	for k, v := range q {
		if len(v) > 1 || (k != "date" && k != "from" && k != "to" && k != "format") {
			return echo.NewHTTPError(http.StatusBadRequest, "parameters: date, or from and to, and format=csv, each once")
		}
	}
	loc := time.Local
	from, to, err := exportWindow(q.Get("date"), q.Get("from"), q.Get("to"), s.cfg.Now(), loc)
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, err.Error())
	}
	j := &joiner{from: from, to: to, offers: map[string]*exportRow{}, rescues: map[string]*exportRow{},
		routeCodeOf: func(id string) string {
			r, _ := s.cfg.Depot.Route(id)
			return codeOr(r.RouteCode, id)
		}}
	cut := ""
	var through time.Time
	oldest, err := s.cfg.Archive.OldestSeq()
	if err != nil {
		return err
	}
	last := s.cfg.Depot.LastSeq()
	if oldest > 0 && last >= oldest {
		start, err := s.seqAt(from, oldest, last)
		if err != nil {
			return err
		}
		if start == oldest && oldest > 1 {
			if evs, err := s.cfg.Archive.EventsAfter(oldest-1, 1); err == nil && len(evs) == 1 {
				if h, ok := bridge.ReadEventHead(evs[0]); ok && h.Timestamp.After(from) {
					cut = "pruned" // events of the window were before the oldest kept
				}
			}
		}
		end, err := s.seqAt(to.Add(joinAfter), start, last) // the first seq past what is read
		if err != nil {
			return err
		}
		if end > start { // events start..end-1 (scanLog's end 0 would be the log's)
			cur, err := s.scanLog(start-1, end-1, maxExportScan, func(h bridge.EventHead, raw json.RawMessage) bool {
				through = h.Timestamp
				if exportTypes[h.Type] {
					j.event(h, raw)
				}
				return !j.full
			})
			if err != nil {
				return err
			}
			switch {
			case j.full:
				cut = "rows"
			case cur < end-1:
				cut = "scan"
			}
		}
	}
	hd := c.Response().Header()
	hd.Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	hd.Set(echo.HeaderContentDisposition, `attachment; filename="events-`+from.In(loc).Format("2006-01-02")+`.csv"`)
	hd.Set("X-Export-Complete", strconv.FormatBool(cut == ""))
	if cut != "" {
		hd.Set("X-Export-Cut", cut)
		if !through.IsZero() {
			hd.Set("X-Export-Through", through.UTC().Format(time.RFC3339Nano))
		}
	}
	c.Response().WriteHeader(http.StatusOK)
	w := csv.NewWriter(c.Response())
	_ = w.Write(exportHeader)
	for _, r := range j.rows {
		cells := r.cells(loc)
		for i := range cells {
			cells[i] = csvSafe(cells[i])
		}
		if err := w.Write(cells); err != nil {
			return err
		}
	}
	w.Flush()
	return w.Error()
}
