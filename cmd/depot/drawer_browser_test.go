package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// jsNum evaluates a JavaScript expression that gives a number.
func jsNum(t *testing.T, ctx context.Context, expr string) float64 {
	t.Helper()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[float64](expr))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// jsText evaluates a JavaScript expression that gives a string.
func jsText(t *testing.T, ctx context.Context, expr string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestBrowserRouteDrawer: a click on a route's row, and on its marker,
// opens the drawer with the route's numbers, its driver's device health
// and its day in events (read back, then live); Esc and the close button
// close it; the page's CSP refuses nothing.
func TestBrowserRouteDrawer(t *testing.T) {
	a := startApp(t, "", nil)
	// Before the page opens: D1 comes online and sends a fix (device
	// health), and is offered VTO (an event the drawer reads back).
	drv := a.driver(t, "D1")
	if _, err := publish(drv, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(38.5821, -121.4944, time.Now())); err != nil {
		t.Fatal(err)
	}
	if code := a.request(t, "POST", "/api/v1/vto", a.disp, map[string]string{"driverId": "D1", "routeId": "R1", "reason": "light volume"}, nil); code != 201 {
		t.Fatalf("POST /vto: %d", code)
	}
	ctx := browser(t)
	signIn(t, ctx, a, "ana", anaPassword)
	waitJS(t, ctx, "both routes", `document.querySelectorAll('#routes tbody tr').length === 2`)
	waitJS(t, ctx, "live", `window.__depot.conn === 'live'`)

	// From the map: a click on R2's marker.
	// (Once the map has fitted the routes: R2's dot is what is at its place.)
	waitJS(t, ctx, "R2 on the map", `(() => { const m = document.querySelector('.route-icon [data-route="R2"] .dot');
		if (!m) return false;
		const d = m.getBoundingClientRect(); const e = document.elementFromPoint(d.x + d.width / 2, d.y + d.height / 2);
		return !!e && e.closest('[data-route="R2"]') !== null; })()`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`.route-icon [data-route="R2"] .dot`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the drawer of R2, its marker ringed", `!document.getElementById('drawer').hidden &&
		document.getElementById('drawer-title').textContent === 'Route CX02' && location.hash === '#route=R2' &&
		document.querySelectorAll('.route-icon.sel').length === 1 && document.querySelector('.route-icon.sel [data-route="R2"]') !== null`)
	waitJS(t, ctx, "no device yet for D2", `document.getElementById('drawer-device').textContent.includes('no device health yet')`)
	// Locate now: D2's handheld (the driver app's inbox) is asked.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#drawer-locate`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "D2 asked", `document.getElementById('drawer-locate-msg').textContent === 'Asked its handheld for a fix.'`)
	// The close button, by its accessible name.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[aria-label="Close route details"]`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "closed by its button", `document.getElementById('drawer').hidden && !document.querySelector('main').classList.contains('with-drawer') &&
		document.querySelector('.route-icon.sel') === null`)

	// From the table: a click on the row (not on its buttons).
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`tr[data-route="R1"] td:nth-child(5)`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the drawer of R1", `(() => { const d = document.getElementById('drawer');
		return !d.hidden && d.getAttribute('role') === 'complementary' && d.getAttribute('aria-labelledby') === 'drawer-title' &&
			document.getElementById('drawer-title').textContent === 'Route CX01' && location.hash === '#route=R1' &&
			document.querySelector('tr[data-route="R1"]').classList.contains('sel'); })()`)
	route := jsText(t, ctx, `document.getElementById('drawer-route').textContent`)
	for _, want := range []string{"BEHIND", "Ana Silva", "42 / 180", "61 / 260", "2 stops", "Positionfix "} {
		if !strings.Contains(route, want) {
			t.Fatalf("drawer numbers %q: no %q", route, want)
		}
	}
	waitJS(t, ctx, "the device health", `(() => { const s = document.getElementById('drawer-device').textContent;
		return s.includes('81 %') && s.includes('5 m') && s.includes('online since') && s.includes('Last fix'); })()`)
	waitJS(t, ctx, "the VTO offer read back", `document.getElementById('drawer-timeline').textContent.includes('VTO offered: light volume')`)
	waitJS(t, ctx, "online in the timeline", `document.getElementById('drawer-timeline').textContent.includes('Driver online')`)
	// Another route: the last one's note is gone; D1 is asked in turn.
	waitJS(t, ctx, "the last route's note gone", `document.getElementById('drawer-locate-msg').textContent === ''`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#drawer-locate`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "D1 asked", `document.getElementById('drawer-locate-msg').textContent.startsWith('Asked ')`)

	// Live: R1 falls 7 behind; the drawer's numbers and timeline follow.
	writeFile(t, a.feed, feedJSON(44, 7))
	waitJS(t, ctx, "the rescue in the timeline", `(() => { const tl = document.getElementById('drawer-timeline');
		return tl.textContent.includes('Rescue raised: 7 stops behind') && tl.firstElementChild.dataset.kind === 'rescue'; })()`)
	waitJS(t, ctx, "the drawer's numbers live", `(() => { const s = document.getElementById('drawer-route').textContent;
		return s.includes('RESCUE') && s.includes('44 / 180') && s.includes('7 stops'); })()`)

	// The drawer's Reassign is the row's: the same dialog.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#drawer-reassign`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the reassign dialog", `document.getElementById('dlg').open && document.getElementById('dlg-title').textContent === 'Reassign CX01'`)
	// Esc closes the dialog, not the drawer.
	if err := chromedp.Do(ctx, chromedp.KeyEvent("\u001b")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the dialog closed, the drawer not", `!document.getElementById('dlg').open && !document.getElementById('drawer').hidden`)
	// The drawer's VTO is the row's dialog too.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#drawer-vto`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the VTO dialog", `document.getElementById('dlg').open && document.getElementById('dlg-title').textContent === 'Offer VTO to Ana Silva'`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#dlg button[value="cancel"]`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the VTO dialog closed", `!document.getElementById('dlg').open`)
	// A reassignment through the drawer: its timeline says so, and its
	// device part is the new driver's (not heard from).
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#drawer-reassign`)),
		chromedp.SendKeys(chromedp.CSS(`#dlg-input`), "D3"), chromedp.Click(chromedp.CSS(`#dlg-ok`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the reassignment in the drawer", `(() => { const tl = document.getElementById('drawer-timeline');
		return !document.getElementById('dlg').open && tl.firstElementChild.textContent.includes('Reassigned from D1 to D3 by ana') &&
			document.getElementById('drawer-route').textContent.includes('(D3)') &&
			document.getElementById('drawer-device').textContent.includes('not heard from'); })()`)
	if err := chromedp.Do(ctx, chromedp.KeyEvent("\u001b")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "Esc closed the drawer", `document.getElementById('drawer').hidden && location.hash === '' &&
		!document.querySelector('tr[data-route="R1"]').classList.contains('sel')`)

	// By keyboard: the route's code is a button; the drawer takes the
	// keyboard to its close button, and Esc gives it back.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(document.querySelector('tr[data-route="R1"] .codebtn').focus(), true)`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.KeyEvent("\r")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the drawer, keyboard on its close button", `!document.getElementById('drawer').hidden &&
		document.activeElement === document.getElementById('drawer-close')`)
	if err := chromedp.Do(ctx, chromedp.KeyEvent("\u001b")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the keyboard back on the code", `document.getElementById('drawer').hidden &&
		document.activeElement === document.querySelector('tr[data-route="R1"] .codebtn')`)

	waitJS(t, ctx, "no CSP refusals", `window.__depot.csp.length === 0`)
}

// TestBrowserTrail: the selected route's trail is read from history, with
// its stop marked; new fixes extend it, and a dwell among them is a
// second stop; a reload shows it whole again
// from #route=; fixes sent while the page is cut are on it after the
// reconnect; follow mode keeps the driver in view until the map is dragged.
func TestBrowserTrail(t *testing.T) {
	a := startApp(t, "", nil)
	drv := a.driver(t, "D1")
	// A trail of the last 10 minutes: driving, 2.5 min within 20 m (a stop), driving.
	base := time.Now().Add(-10 * time.Minute)
	north := func(m float64) float64 { return 38.5816 + m/111195 }
	pts := []struct {
		dm float64
		at time.Duration
	}{{0, 0}, {1000, time.Minute}, {2000, 2 * time.Minute}, {2010, 3 * time.Minute}, {1995, 4 * time.Minute},
		{2015, 4*time.Minute + 30*time.Second}, {3000, 5 * time.Minute}}
	for _, p := range pts {
		if _, err := publish(drv, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(north(p.dm), -121.4944, base.Add(p.at))); err != nil {
			t.Fatal(err)
		}
	}
	checkFor(t, 10*time.Second, func() error {
		var h historyResp
		if code := a.request(t, "GET", "/api/v1/routes/R1/history", a.disp, nil, &h); code != 200 || len(h.Fixes) != len(pts) {
			return fmt.Errorf("history: %d, %d fixes", code, len(h.Fixes))
		}
		return nil
	})

	ctx := browser(t)
	signIn(t, ctx, a, "ana", anaPassword)
	waitJS(t, ctx, "both routes", `document.querySelectorAll('#routes tbody tr').length === 2`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`tr[data-route="R1"] .codebtn`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the trail read", `(() => { const d = window.__depot.drawer;
		return d.open && d.routeId === 'R1' && d.points === 7 && d.line === 7 && d.stops === 1 && !d.loading; })()`)
	waitJS(t, ctx, "the stop marked", `(() => { const s = document.querySelectorAll('.stop-icon');
		return s.length === 1 && /^Stopped 3 min, /.test(s[0].title); })()`)
	waitJS(t, ctx, "the trail's words", `document.getElementById('trail-info').textContent === '7 fixes · 1 stops'`)

	// Live fixes extend the trail: 2.5 minutes within 15 m are a second
	// stop, found as the fixes come; then the driver moves on.
	for i, p := range []struct {
		dm float64
		at time.Duration
	}{{3500, 6 * time.Minute}, {3510, 7 * time.Minute}, {3495, 8 * time.Minute}, {3505, 8*time.Minute + 30*time.Second}} {
		if _, err := publish(drv, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(north(p.dm), -121.4944, base.Add(p.at))); err != nil {
			t.Fatal(err)
		}
		// (The line waits for a move of a pixel or more: these may be less.)
		waitJS(t, ctx, "the trail grown", fmt.Sprintf(`window.__depot.drawer.points === %d && window.__depot.drawer.line <= %[1]d`, 8+i))
	}
	waitJS(t, ctx, "the live stop marked", `window.__depot.drawer.stops === 2 && document.querySelectorAll('.stop-icon').length === 2`)
	if _, err := publish(drv, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(north(4500), -121.4944, time.Now().Add(-time.Second))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the trail grown", `window.__depot.drawer.points === 12 && window.__depot.drawer.line === 12 && window.__depot.drawer.stops === 2`)
	// DEPOT_SCREENSHOT_DRAWER=file.png saves a picture of the drawer.
	if out := os.Getenv("DEPOT_SCREENSHOT_DRAWER"); out != "" {
		screenshot(t, ctx, out)
	}

	// A reload keeps the route (the address) and reads the trail whole.
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the trail after a reload", `(() => { const d = window.__depot && window.__depot.drawer;
		return !!d && d.open && d.routeId === 'R1' && d.loads === 1 && d.points === 12 && d.line === 12 && d.stops === 2 &&
			!document.getElementById('drawer').hidden && location.hash === '#route=R1'; })()`)
	waitJS(t, ctx, "live again", `window.__depot.conn === 'live'`)

	// Cut: fixes sent meanwhile are on the trail after the reconnect, once:
	// four that the catch-up replays as moves, and one sent late (older
	// than those: stored, but it moves no route) that only the re-read of
	// history from where the trail was cut brings.
	if n := a.broker.Disconnect("dispatcher:ana"); n != 1 {
		t.Fatalf("cut %d dashboard sessions", n)
	}
	now := time.Now()
	for i := range 4 {
		publish(drv, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(north(3600+float64(i)*100), -121.4944, now.Add(time.Duration(i)*100*time.Millisecond)))
	}
	publish(drv, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(north(3550), -121.4944, now.Add(-500*time.Millisecond)))
	waitJS(t, ctx, "the trail after the reconnect", `(() => { const d = window.__depot.drawer;
		return window.__depot.conn === 'live' && d.rereads >= 1 && d.points === 17 && d.line === 17; })()`)
	var h historyResp
	if code := a.request(t, "GET", "/api/v1/routes/R1/history", a.disp, nil, &h); code != 200 || len(h.Fixes) != 17 {
		t.Fatalf("history: %d, %d fixes", code, len(h.Fixes))
	}

	// A late fix while the drawer is open (a handheld's backlog after a
	// dead zone, or out of order): older than the newest, it moves no
	// route and makes no event; the route's late topic brings it into the
	// trail between its neighbours, with no reload and no re-read, and
	// the marker stays at the newest fix.
	waitJS(t, ctx, "subscribed to R1's late fixes", `window.__depot.lateSub === 'depot/DEMO1/routes/R1/late' && window.__depot.conn === 'live'`)
	loads, rereads := jsNum(t, ctx, `window.__depot.drawer.loads`), jsNum(t, ctx, `window.__depot.drawer.rereads || 0`)
	lat := jsNum(t, ctx, `window.__depot.routes.get('R1').currentLat`)
	if _, err := publish(drv, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(north(3575), -121.4944, now.Add(-250*time.Millisecond))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the late fix in the trail", `(() => { const d = window.__depot.drawer;
		return d.late === 1 && d.points === 18 && d.line === 18; })()`)
	if got := jsNum(t, ctx, `window.__depot.drawer.loads`); got != loads {
		t.Fatalf("the trail was read again (%v loads, was %v)", got, loads)
	}
	if got := jsNum(t, ctx, `window.__depot.drawer.rereads || 0`); got != rereads {
		t.Fatalf("the trail was re-read (%v, was %v)", got, rereads)
	}
	if got := jsNum(t, ctx, `window.__depot.routes.get('R1').currentLat`); got != lat {
		t.Fatalf("a late fix moved the route: %v, was %v", got, lat)
	}

	// Follow mode: the driver far away comes into view; a drag ends it.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button#trail-follow`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "following", `document.getElementById('trail-follow').getAttribute('aria-pressed') === 'true' && window.__depot.drawer.follow`)
	if _, err := publish(drv, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(38.95, -121.10, time.Now().Add(time.Second))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the far fix in view, by a pan", `window.__depot.drawer.points === 19 && window.__depot.drawer.lastInView() && window.__depot.drawer.pans >= 1`)
	drag(t, ctx, "#map")
	waitJS(t, ctx, "a drag ends follow mode", `document.getElementById('trail-follow').getAttribute('aria-pressed') === 'false' && !window.__depot.drawer.follow`)

	// The range picker: the last hour holds the same fixes; a custom range
	// in the past holds none and takes no live fix.
	pick := func(kind, from, to string) {
		t.Helper()
		before := jsNum(t, ctx, `window.__depot.drawer.loads`)
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`(() => {
			document.getElementById('trail-from').value = %q; document.getElementById('trail-to').value = %q;
			const r = document.getElementById('trail-range'); r.value = %q; r.dispatchEvent(new Event('change'));
			if (r.value === 'custom') document.getElementById('trail-apply').click();
			return true; })()`, from, to, kind))); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the trail of "+kind, fmt.Sprintf(`window.__depot.drawer.loads > %v && !window.__depot.drawer.loading`, before))
	}
	pick("hour", "", "")
	if n := jsNum(t, ctx, `window.__depot.drawer.points`); n != 19 {
		t.Fatalf("the last hour: %v fixes, want 19", n)
	}
	pick("custom", time.Now().Add(-3*time.Hour).Format("2006-01-02T15:04"), time.Now().Add(-2*time.Hour).Format("2006-01-02T15:04"))
	waitJS(t, ctx, "an empty past range", `window.__depot.drawer.points === 0 && window.__depot.drawer.line === 0 &&
		document.getElementById('trail-info').textContent === '0 fixes · 0 stops' && !document.getElementById('trail-custom').hidden`)
	if _, err := publish(drv, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(38.951, -121.10, time.Now().Add(2*time.Second))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the fix on the route", `window.__depot.routes.get('R1').currentLat === 38.951`)
	if n := jsNum(t, ctx, `window.__depot.drawer.points`); n != 0 {
		t.Fatalf("a past range took a live fix: %v fixes", n)
	}
	waitJS(t, ctx, "no CSP refusals", `window.__depot.csp.length === 0`)
}

// drag presses the mouse at a quarter of sel's width and three quarters of
// its height (away from the followed driver, at the centre), moves it 120
// px and lets go.
func drag(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	box, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]float64](`(() => { const r = document.querySelector(`+
		fmt.Sprintf("%q", sel)+`).getBoundingClientRect(); return {x: r.x + r.width / 4, y: r.y + r.height * 3 / 4}; })()`))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.DragAndDropXY(box["x"], box["y"], box["x"]+120, box["y"]+60, 6)); err != nil {
		t.Fatal(err)
	}
}

// TestBrowserDrawerShowsMarkupAsText: a route, its driver's device and
// presence and its timeline events that carry markup (an attacker who can
// put envelopes in seq order) show in the drawer as text; nothing runs.
func TestBrowserDrawerShowsMarkupAsText(t *testing.T) {
	a := startApp(t, "", nil)
	ctx := browser(t)
	signIn(t, ctx, a, "ana", anaPassword)
	waitJS(t, ctx, "both routes", `document.querySelectorAll('#routes tbody tr').length === 2`)
	waitJS(t, ctx, "live", `window.__depot.conn === 'live'`)
	drv := scriptMarkup // the driver's id
	var applied bool
	for try := 0; try < 5 && !applied; try++ {
		s := pageSeq(t, ctx) + 1
		publishEvents(t, a,
			forgedEnvelope(s, "route:update", map[string]any{"routeId": "R9", "routeCode": imgMarkup, "driverId": drv,
				"driverName": scriptMarkup, "performanceTier": imgMarkup, "statusColor": "RED", "completedStops": 3, "totalStops": 10,
				"currentLat": 38.59, "currentLng": -121.49, "lastUpdated": time.Now().UTC().Format(time.RFC3339Nano)}),
			forgedEnvelope(s+1, "driver:device", map[string]any{"driverId": drv, "app": imgMarkup, "batt": imgMarkup,
				"battState": imgMarkup, "acc": 7, "conn": imgMarkup, "lastFix": imgMarkup}),
			forgedEnvelope(s+2, "driver:presence", map[string]any{"driverId": drv, "state": imgMarkup, "since": imgMarkup}),
			forgedEnvelope(s+3, "vto:offer", map[string]any{"vtoId": "V9", "routeId": "R9", "driverId": drv, "reason": imgMarkup,
				"routeCode": imgMarkup, "driverName": scriptMarkup, "state": "open"}),
			forgedEnvelope(s+4, "route:reassigned", map[string]any{"routeId": "R9", "fromDriverId": imgMarkup, "toDriverId": drv, "by": scriptMarkup}),
		)
		applied = pollJS(ctx, 3*time.Second, `document.querySelector('#routes tr[data-route="R9"]') !== null && window.__depot.presence.has(`+
			fmt.Sprintf("%q", drv)+`)`) == nil
	}
	if !applied {
		t.Fatal("the in-order forged envelopes never showed")
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`tr[data-route="R9"] .codebtn`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the drawer of R9 with its timeline", `(() => { const tl = document.getElementById('drawer-timeline').textContent;
		return !document.getElementById('drawer').hidden && tl.includes('VTO offered: ' + `+fmt.Sprintf("%q", imgMarkup)+`) &&
			tl.includes('Reassigned from ' + `+fmt.Sprintf("%q", imgMarkup)+`); })()`)
	res, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`({title: document.getElementById('drawer-title').textContent,
		route: document.getElementById('drawer-route').textContent, device: document.getElementById('drawer-device').textContent})`))
	if err != nil {
		t.Fatal(err)
	}
	if res["title"] != "Route "+imgMarkup || !strings.Contains(res["route"], scriptMarkup) ||
		!strings.Contains(res["device"], imgMarkup) || !strings.Contains(res["device"], "7 m") {
		t.Fatalf("drawer: %q", res)
	}
	checkInert(t, ctx)
}
