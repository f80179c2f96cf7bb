package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/depotcc/depot/ui"
)

// allowDownloads saves the tab's downloads in a new temporary directory,
// under the names the page gives them, and returns it.
func allowDownloads(t *testing.T, ctx context.Context) string {
	t.Helper()
	dir := t.TempDir()
	if err := chromedp.Do(ctx, func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, tg, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
			Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir})
		return chromedp.Void{}, err
	}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// clickDownload clicks sel, waits for the page to have downloaded one
// more file, and returns that file's content once Chromium has written it.
func clickDownload(t *testing.T, ctx context.Context, dir, sel string) (string, []byte) {
	t.Helper()
	before := jsNum(t, ctx, `window.__depot.exports.done`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the download of "+sel, fmt.Sprintf(`window.__depot.exports.done > %v`, before))
	name := jsText(t, ctx, `window.__depot.exports.last`)
	var b []byte
	checkFor(t, 15*time.Second, func() error {
		var err error
		if b, err = os.ReadFile(filepath.Join(dir, name)); err != nil {
			return err
		}
		if len(b) == 0 {
			return fmt.Errorf("%s: empty so far", name)
		}
		return nil
	})
	return name, b
}

// TestBrowserExports: the drawer's GPX, CSV and GeoJSON buttons download
// the trail's range, each a file that parses, named by route and day; the
// header's button downloads the day's events as CSV, an offer's row with
// its outcome and payroll reference. Nothing is refused by the page's CSP.
func TestBrowserExports(t *testing.T) {
	secret := "payroll-secret-0123456789"
	a := startApp(t, "", func(c *ServeConfig) { c.PayrollSecret = secret })
	drv := a.driver(t, "D1")
	base := time.Now().Add(-10 * time.Minute)
	for i := range 6 {
		if _, err := publish(drv, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(38.5816+float64(i)/1000, -121.4944, base.Add(time.Duration(i)*time.Minute))); err != nil {
			t.Fatal(err)
		}
	}
	// The day's events: an offer accepted and confirmed by payroll, one
	// declined whose reason is a formula, a rescue, a reassignment.
	var offer struct{ VTOID string }
	if code := a.request(t, "POST", "/api/v1/vto", a.disp, map[string]string{"driverId": "D1", "routeId": "R1", "reason": "light volume"}, &offer); code != 201 {
		t.Fatalf("POST /vto: %d", code)
	}
	if code := a.request(t, "POST", "/api/v1/vto/"+offer.VTOID+"/accept", a.disp, nil, nil); code != 200 {
		t.Fatalf("accept: %d", code)
	}
	body := []byte(`{"vtoId":"` + offer.VTOID + `","payrollRef":"PR-2026-0042"}`)
	now := time.Now().Unix()
	req, _ := http.NewRequest("POST", "http://"+a.HTTPAddr()+"/api/v1/webhooks/payroll", bytes.NewReader(body))
	req.Header.Set("X-Payroll-Timestamp", strconv.FormatInt(now, 10))
	req.Header.Set("X-Payroll-Signature", ui.SignPayroll([]byte(secret), now, body))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("payroll: %v %v", resp, err)
	}
	var offer2 struct{ VTOID string }
	if code := a.request(t, "POST", "/api/v1/vto", a.disp, map[string]string{"driverId": "D2", "routeId": "R2", "reason": "=1+1"}, &offer2); code != 201 {
		t.Fatalf("POST /vto: %d", code)
	}
	if code := a.request(t, "POST", "/api/v1/vto/"+offer2.VTOID+"/decline", a.disp, nil, nil); code != 200 {
		t.Fatalf("decline: %d", code)
	}
	writeFile(t, a.feed, feedJSON(44, 7)) // R1 falls 7 behind: a rescue
	checkFor(t, 10*time.Second, func() error {
		var rs []map[string]any
		if code := a.request(t, "GET", "/api/v1/rescues", a.disp, nil, &rs); code != 200 || len(rs) != 1 {
			return fmt.Errorf("rescues: %d %v", code, rs)
		}
		return nil
	})
	if code := a.request(t, "POST", "/api/v1/routes/R2/reassign", a.disp, map[string]string{"toDriverId": "D3"}, nil); code != 200 {
		t.Fatalf("reassign: %d", code)
	}

	ctx := browser(t)
	dir := allowDownloads(t, ctx)
	signIn(t, ctx, a, "ana", anaPassword)
	waitJS(t, ctx, "both routes", `document.querySelectorAll('#routes tbody tr').length === 2`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`tr[data-route="R1"] .codebtn`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the trail read", `(() => { const d = window.__depot.drawer; return d.open && d.routeId === 'R1' && d.points >= 6 && !d.loading; })()`)
	today := jsText(t, ctx, `(() => { const d = new Date(); const p = (n) => String(n).padStart(2, '0');
		return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()); })()`)

	name, b := clickDownload(t, ctx, dir, `#export-gpx`)
	if name != "CX01-"+today+".gpx" {
		t.Fatalf("GPX file %q", name)
	}
	var gpx struct {
		XMLName xml.Name `xml:"gpx"`
		Points  []struct {
			Lat float64 `xml:"lat,attr"`
		} `xml:"trk>trkseg>trkpt"`
	}
	if err := xml.Unmarshal(b, &gpx); err != nil || len(gpx.Points) < 6 {
		t.Fatalf("GPX: %v, %d points\n%s", err, len(gpx.Points), b)
	}

	name, b = clickDownload(t, ctx, dir, `#export-geojson`)
	var gj struct {
		Type     string
		Features []struct {
			Geometry struct {
				Type        string
				Coordinates [][2]float64
			}
		}
	}
	if err := json.Unmarshal(b, &gj); err != nil || name != "CX01-"+today+".geojson" || gj.Type != "FeatureCollection" || len(gj.Features) != 1 ||
		gj.Features[0].Geometry.Type != "LineString" || len(gj.Features[0].Geometry.Coordinates) < 6 {
		t.Fatalf("GeoJSON %s: %v %+v", name, err, gj)
	}

	name, b = clickDownload(t, ctx, dir, `#export-csv`)
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil || name != "CX01-"+today+".csv" || len(recs) < 7 || recs[0][0] != "ts" || recs[0][3] != "lat" {
		t.Fatalf("trail CSV %s: %v %q", name, err, recs)
	}
	waitJS(t, ctx, "the trail's download said", `document.getElementById('export-msg').textContent === 'Downloaded CX01-`+today+`.csv.'`)

	// The day's events.
	name, b = clickDownload(t, ctx, dir, `#export-events`)
	if name != "events-"+today+".csv" {
		t.Fatalf("events file %q", name)
	}
	recs, err = csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil || len(recs) < 5 || strings.Join(recs[0], ",") != "time,type,route,driver,details,outcome,payroll reference,actor,id" {
		t.Fatalf("events CSV: %v\n%s", err, b)
	}
	rows := map[string][]string{}
	for _, r := range recs[1:] {
		rows[r[1]+" "+r[2]] = r
	}
	// The actor is who offered it; who answered is in the outcome.
	if r := rows["vto CX01"]; r == nil || r[3] != "Ana Silva (D1)" || r[4] != "light volume" || r[5] != "confirmed (accepted by dispatcher:ana)" || r[6] != "PR-2026-0042" ||
		r[7] != "ana" || r[8] != offer.VTOID {
		t.Fatalf("the confirmed offer: %q\n%s", r, b)
	}
	if r := rows["vto CX02"]; r == nil || r[4] != "'=1+1" || r[5] != "declined by dispatcher:ana" || r[7] != "ana" {
		t.Fatalf("the declined offer: %q\n%s", r, b)
	}
	if r := rows["rescue CX01"]; r == nil || r[5] != "open" || !strings.Contains(r[4], "7 stops behind") {
		t.Fatalf("the rescue: %q\n%s", r, b)
	}
	if r := rows["reassignment CX02"]; r == nil || r[3] != "D3" || r[4] != "from D2 to D3" || r[7] != "ana" {
		t.Fatalf("the reassignment: %q\n%s", r, b)
	}
	waitJS(t, ctx, "the events' download said", `document.getElementById('export-events-msg').textContent === 'Downloaded events-`+today+`.csv.'`)
	waitJS(t, ctx, "no CSP refusals, no failed download", `window.__depot.csp.length === 0 && window.__depot.exports.failed === 0`)
}

// slash presses "/" as a keyboard does: one keyDown that carries its
// text, so that a page's preventDefault keeps the character out of a
// field, as it does for a person typing (chromedp.KeyEvent sends the
// character as an event of its own, which no keydown handler can stop).
func slash(t *testing.T, ctx context.Context) { press(t, ctx, "/", "Slash", "/", 191) }

// enter presses Enter as a keyboard does (see slash): a keydown handler
// that takes it keeps it from also pressing the button focused meanwhile.
func enter(t *testing.T, ctx context.Context) { press(t, ctx, "Enter", "Enter", "\r", 13) }

func press(t *testing.T, ctx context.Context, key, code, text string, vk int64) {
	t.Helper()
	if err := chromedp.Do(ctx, func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		for _, ty := range []input.DispatchKeyEventType{input.DispatchKeyEventTypeKeyDown, input.DispatchKeyEventTypeKeyUp} {
			p := input.DispatchKeyEventParams{Type: ty, Key: key, Code: code, WindowsVirtualKeyCode: vk, NativeVirtualKeyCode: vk}
			if ty == input.DispatchKeyEventTypeKeyDown {
				p.Text, p.UnmodifiedText = text, text
			}
			if _, err := cdp.Call(ctx, tg, input.DispatchKeyEvent, p); err != nil {
				return chromedp.Void{}, err
			}
		}
		return chromedp.Void{}, nil
	}); err != nil {
		t.Fatal(err)
	}
}

// visibleRoutes is the routes the table shows, in its order.
const visibleRoutes = `[...document.querySelectorAll('#routes tbody tr')].filter((tr) => !tr.hidden).map((tr) => tr.dataset.route).join(',')`

// markerOpacity is the opacity of route id's marker on the map.
func markerOpacity(id string) string {
	return `(() => { const m = document.querySelector('.route-icon [data-route="` + id + `"]');
		return m ? getComputedStyle(m.closest('.route-icon')).opacity : 'none'; })()`
}

// TestBrowserFindAndFilter: / focuses the find box (not while typing in
// another), typing filters the table and dims the others' markers, Enter
// opens the first match, Esc closes the drawer and then clears the box;
// the status filter follows live status changes; both are kept in the
// address, beside the route, over a reload.
func TestBrowserFindAndFilter(t *testing.T) {
	a := startApp(t, "", nil)
	ctx := browser(t)
	signIn(t, ctx, a, "ana", anaPassword)
	waitJS(t, ctx, "both routes", `document.querySelectorAll('#routes tbody tr').length === 2`)
	waitJS(t, ctx, "both on the map", `document.querySelectorAll('.route-icon [data-route]').length === 2`)
	waitJS(t, ctx, "the count", `document.getElementById('filter-count').textContent === '2 routes'`)

	// "/" from anywhere but a text field: the find box.
	slash(t, ctx)
	waitJS(t, ctx, "the find box focused", `document.activeElement === document.getElementById('find') && document.getElementById('find').value === ''`)
	if err := chromedp.Do(ctx, chromedp.KeyEvent("BEN")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "only Ben's route", `(`+visibleRoutes+`) === 'R2' && document.getElementById('filter-count').textContent === '1 of 2 routes' &&
		location.hash === '#q=ben'`)
	waitJS(t, ctx, "R1's marker dimmed", markerOpacity("R1")+` === '0.2' && `+markerOpacity("R2")+` === '1'`)
	// Enter opens the first match; Esc closes it and gives the keyboard
	// back to the find box; Esc again clears it.
	enter(t, ctx)
	waitJS(t, ctx, "R2's drawer", `!document.getElementById('drawer').hidden && window.__depot.drawer.routeId === 'R2' &&
		location.hash === '#route=R2&q=ben' && document.activeElement === document.getElementById('drawer-close')`)
	if err := chromedp.Do(ctx, chromedp.KeyEvent("\u001b")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the drawer closed, back in the find box", `document.getElementById('drawer').hidden && location.hash === '#q=ben' &&
		document.activeElement === document.getElementById('find') && (`+visibleRoutes+`) === 'R2'`)
	if err := chromedp.Do(ctx, chromedp.KeyEvent("\u001b")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the box cleared", `document.getElementById('find').value === '' && (`+visibleRoutes+`) === 'R1,R2' && location.hash === '' &&
		document.getElementById('filter-count').textContent === '2 routes' && `+markerOpacity("R1")+` === '1'`)
	// A "/" typed in a text field is a slash.
	if err := chromedp.Do(ctx, chromedp.KeyEvent("cx")); err != nil {
		t.Fatal(err)
	}
	slash(t, ctx)
	waitJS(t, ctx, "a slash in the box", `document.getElementById('find').value === 'cx/' && (`+visibleRoutes+`) === ''`)
	waitJS(t, ctx, "no match said", `!document.getElementById('nomatch').hidden`)
	if err := chromedp.Do(ctx, chromedp.KeyEvent("\u001b")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "cleared again", `(`+visibleRoutes+`) === 'R1,R2' && document.getElementById('nomatch').hidden`)

	// The status filter: Behind shows R1 (2 behind); when R1 falls 7
	// behind it leaves the filter with the next redraw, and R2 stays out.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#status-filter button[data-status="behind"]`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "behind only", `(`+visibleRoutes+`) === 'R1' && location.hash === '#status=behind' &&
		document.querySelector('#status-filter [data-status="behind"]').getAttribute('aria-pressed') === 'true' &&
		document.getElementById('filter-count').textContent === '1 of 2 routes'`)
	writeFile(t, a.feed, feedJSON(44, 7))
	waitJS(t, ctx, "R1 left the filter", `window.__depot.routes.get('R1').statusColor === 'RED' && (`+visibleRoutes+`) === '' &&
		document.getElementById('filter-count').textContent === '0 of 2 routes' && `+markerOpacity("R1")+` === '0.2'`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#status-filter button[data-status="rescue"]`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "rescue or behind", `(`+visibleRoutes+`) === 'R1' && location.hash === '#status=rescue,behind'`)

	// An address with the route, statuses and a query: followed when it
	// changes, and kept over a reload.
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+a.HTTPAddr()+"/#route=R2&status=rescue,on-time&q=A")); err != nil {
		t.Fatal(err)
	}
	kept := `(() => { const d = window.__depot;
		return !!d && !!d.filter && d.filter.q === 'a' && d.filter.statuses === 'GREEN,RED' && !!d.drawer && d.drawer.routeId === 'R2' &&
			document.getElementById('find').value === 'a' && (` + visibleRoutes + `) === 'R1,R2' &&
			document.querySelector('#status-filter [data-status="on-time"]').getAttribute('aria-pressed') === 'true' &&
			document.querySelector('#status-filter [data-status="behind"]').getAttribute('aria-pressed') === 'false'; })()`
	waitJS(t, ctx, "the address's filter and route", kept)
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the filter and the route after a reload", kept)
	waitJS(t, ctx, "live after the reload", `window.__depot.conn === 'live'`)
	// Show all clears both, the route stays.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#filter-clear`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "all shown", `location.hash === '#route=R2' && document.getElementById('filter-clear').hidden &&
		document.getElementById('filter-count').textContent === '2 routes'`)
	waitJS(t, ctx, "no CSP refusals", `window.__depot.csp.length === 0`)
}

// unnamedControls lists the page's buttons, inputs, selects and text
// areas (and elements in their roles) that have no accessible name by the
// rules a page author controls: text, aria-label, aria-labelledby, a
// label (for= or around it), title; hidden ones too.
const unnamedControls = `(() => {
	const byId = (id) => document.getElementById(id);
	const name = (e) => {
		if ((e.getAttribute('aria-label') || '').trim()) return true;
		const lb = (e.getAttribute('aria-labelledby') || '').split(/\s+/).filter(Boolean).map(byId);
		if (lb.some((l) => l && l.textContent.trim())) return true;
		if (e.labels && [...e.labels].some((l) => l.textContent.trim())) return true;
		if ((e.getAttribute('title') || '').trim()) return true;
		if (e.tagName === 'INPUT' && ['submit', 'button', 'reset'].includes(e.type) && e.value.trim()) return true;
		if (e.tagName !== 'INPUT' && e.tagName !== 'SELECT' && e.tagName !== 'TEXTAREA' && e.textContent.trim()) return true;
		return false;
	};
	return [...document.querySelectorAll('button, input:not([type="hidden"]), select, textarea, [role="button"], [role="textbox"], [role="combobox"]')]
		.filter((e) => !name(e)).map((e) => e.outerHTML.slice(0, 120));
})()`

// TestBrowserAccessibleNames: no button, input or select of the dashboard
// lacks an accessible name: by the rules above over the whole page, and by
// Chromium's own accessibility tree for every control it shows, with the
// drawer and the VTO dialog open.
func TestBrowserAccessibleNames(t *testing.T) {
	a := startApp(t, "", nil)
	ctx := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+a.HTTPAddr()+"/")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the login form", `!document.getElementById('login').hidden`)
	check := func(when string) {
		t.Helper()
		bad, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](unnamedControls))
		if err != nil {
			t.Fatal(err)
		}
		if len(bad) > 0 {
			t.Errorf("%s: controls without a name:\n%s", when, strings.Join(bad, "\n"))
		}
		// Chromium's own computation, for what it shows.
		tree, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (accessibility.GetFullAXTreeResult, error) {
			return cdp.Call(ctx, tg, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{})
		})
		if err != nil {
			t.Fatal(err)
		}
		nodes := tree.Nodes
		controls := map[string]bool{"button": true, "textbox": true, "searchbox": true, "combobox": true, "checkbox": true,
			"radio": true, "spinbutton": true, "slider": true, "switch": true, "ListBox": true}
		n := 0
		for _, nd := range nodes {
			if nd.Ignored || nd.Role == nil {
				continue
			}
			role := strings.Trim(string(nd.Role.Value), `"`)
			if !controls[role] {
				continue
			}
			n++
			name := ""
			if nd.Name != nil {
				name = strings.Trim(string(nd.Name.Value), `"`)
			}
			if strings.TrimSpace(name) == "" {
				html := ""
				if nd.BackendDOMNodeID != 0 {
					html = domOuterHTML(ctx, nd.BackendDOMNodeID)
				}
				t.Errorf("%s: a %s without a name in the accessibility tree: %.120s", when, role, html)
			}
		}
		if n == 0 {
			t.Fatalf("%s: no controls in the accessibility tree", when)
		}
	}
	check("the login page")
	signIn(t, ctx, a, "ana", anaPassword)
	waitJS(t, ctx, "both routes", `document.querySelectorAll('#routes tbody tr').length === 2`)
	waitJS(t, ctx, "the map's markers", `document.querySelectorAll('.route-icon [data-route]').length === 2`)
	check("the dashboard")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`tr[data-route="R1"] .codebtn`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the drawer", `!document.getElementById('drawer').hidden && !window.__depot.drawer.loading`)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const r = document.getElementById('trail-range');
		r.value = 'custom'; r.dispatchEvent(new Event('change')); return true; })()`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the custom range", `!document.getElementById('trail-custom').hidden`)
	check("the drawer")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#drawer-vto`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the VTO dialog", `document.getElementById('dlg').open`)
	check("the VTO dialog")
}

// domOuterHTML is the markup of a node the accessibility tree names.
func domOuterHTML(ctx context.Context, id cdp.BackendNodeID) string {
	res, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (dom.GetOuterHTMLResult, error) {
		return cdp.Call(ctx, tg, dom.GetOuterHTML, dom.GetOuterHTMLParams{BackendNodeID: id})
	})
	if err != nil {
		return err.Error()
	}
	return res.OuterHTML
}
