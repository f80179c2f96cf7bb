package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/depotcc/depot/hq"
	"github.com/depotcc/depot/internal/natstest"
	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/crypto/bcrypt"
)

const hqAdminPassword = "hq-admin-pass-1"

// startFleet runs a NATS JetStream server, two whole depots forwarding to
// it (DEMO1 with the usual feed, NORTH with R1 seven stops behind: RED, a
// rescue) and one `depot hq` over it, all in-process.
func startFleet(t *testing.T) (demo, north *testApp, h *hq.HQ) {
	t.Helper()
	ns := natstest.Start(t, server.Options{})
	demo = startApp(t, "", func(c *ServeConfig) { c.Upstream = ns.ClientURL() })
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "feed.json"), feedJSON(20, 7))
	north = startApp(t, dir, func(c *ServeConfig) { c.Upstream, c.Depot = ns.ClientURL(), "NORTH" })
	h, err := hq.Start(context.Background(), hq.Config{URLs: ns.ClientURL(), HTTPAddr: "127.0.0.1:0", Instance: "hq-test",
		AdminPassword: hqAdminPassword, HashCost: bcrypt.MinCost, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.Close(ctx)
	})
	return demo, north, h
}

// fleetSignIn opens the fleet page of h and signs in as its admin.
func fleetSignIn(t *testing.T, ctx context.Context, h *hq.HQ) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+h.Addr()+"/")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the login form", `!document.getElementById('login').hidden && document.title.includes('Fleet')`)
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#login-user"), "admin"),
		chromedp.SendKeys(chromedp.CSS("#login-pass"), hqAdminPassword),
		chromedp.Click(chromedp.CSS("#login-submit")),
	); err != nil {
		t.Fatal(err)
	}
}

// fleetCell is the text of one count of a depot's row in the overview.
func fleetCell(depot, count string) string {
	return fmt.Sprintf(`(document.querySelector('#fleet tr[data-depot="%s"] td[data-count="%s"]') || {}).textContent`, depot, count)
}

// TestBrowserFleet: the fleet page of `depot hq` in Chromium, over two real
// depots forwarding to a real JetStream server. Sign in; every depot with
// its counts, worst first; open one (mouse and keyboard): its routes in the
// table, read-only, and on the map; a change at the depot shows live, in
// the depot's table and in the overview; nothing refused by the policy.
func TestBrowserFleet(t *testing.T) {
	demo, north, h := startFleet(t)
	ctx := browser(t)
	var mu sync.Mutex
	var thrown []string // what the page's scripts threw: nothing, ever
	_ = chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok {
			mu.Lock()
			thrown = append(thrown, e.ExceptionDetails.Text+" "+e.ExceptionDetails.Exception.Description)
			mu.Unlock()
		}
	})
	// DEPOT_FLEET_SCREENSHOTS=dir saves what the page shows (overview.png,
	// depot.png), to look at.
	shot := func(name string) {
		if dir := os.Getenv("DEPOT_FLEET_SCREENSHOTS"); dir != "" {
			time.Sleep(1200 * time.Millisecond) // a tick of the page's clock: ages and the status bar drawn
			png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	fleetSignIn(t, ctx, h)

	// Both depots, worst first: NORTH has a route in rescue.
	waitJSFor(t, ctx, 30*time.Second, "both depots with their routes", `(() => {
		const rows = [...document.querySelectorAll('#fleet tbody tr')].map((r) => r.dataset.depot);
		return rows.join() === 'NORTH,DEMO1' && `+fleetCell("NORTH", "routes")+` === '2' && `+fleetCell("DEMO1", "routes")+` === '2'; })()`)
	waitJS(t, ctx, "live over SSE", `window.__fleet.conn === 'live' && window.__fleet.mode === 'sse' &&
		document.querySelector('#conn .label').textContent === 'live · sse'`)
	waitJS(t, ctx, "NORTH's rescue counted", fleetCell("NORTH", "RED")+` === '▲1' && `+fleetCell("NORTH", "rescues")+` === '1'`)
	counts, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`({
		demoGreen: `+fleetCell("DEMO1", "GREEN")+`, demoYellow: `+fleetCell("DEMO1", "YELLOW")+`, demoRed: `+fleetCell("DEMO1", "RED")+`,
		northGreen: `+fleetCell("NORTH", "GREEN")+`, uplink: document.querySelector('#fleet tr[data-depot="DEMO1"]').textContent,
		summary: document.getElementById('fleet-summary').textContent})`))
	if err != nil {
		t.Fatal(err)
	}
	if counts["demoGreen"] != "●1" || counts["demoYellow"] != "◆1" || counts["demoRed"] != "0" || counts["northGreen"] != "●1" ||
		!strings.Contains(counts["uplink"], "live") || !strings.Contains(counts["summary"], "2 depots") {
		t.Fatalf("overview: %v", counts)
	}

	shot("overview.png")

	// Open DEMO1 with the mouse: its two routes, read-only, and on the map.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#fleet tr[data-depot="DEMO1"] td[data-count="routes"]`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "DEMO1's routes", `!document.getElementById('depot-view').hidden && document.getElementById('overview').hidden &&
		document.getElementById('depot-name').textContent === 'DEMO1' &&
		[...document.querySelectorAll('#routes tbody tr')].map((r) => r.dataset.route).sort().join() === 'R1,R2'`)
	if s := rowText(t, ctx, "R1"); !strings.Contains(s, "CX01") || !strings.Contains(s, "Ana Silva") || !strings.Contains(s, "BEHIND") {
		t.Fatalf("R1 row: %q", s)
	}
	waitJS(t, ctx, "read-only rows", `document.querySelectorAll('#routes button, #routes .rowbtn').length === 0`)
	// Both markers on the map, inside it (fitted to the depot's routes:
	// hq's own centre is nowhere near them).
	waitJS(t, ctx, "the routes on the map", `(() => {
		const m = document.getElementById('map').getBoundingClientRect();
		const tags = [...document.querySelectorAll('#map .route-icon')];
		return tags.length === 2 && tags.every((e) => { const r = e.getBoundingClientRect();
			return r.left >= m.left && r.right <= m.right + 200 && r.top >= m.top && r.bottom <= m.bottom; }) &&
			document.querySelector('#map .route-icon .tag').textContent.includes('CX0'); })()`)

	// A change at the depot: R1 falls 7 behind and completes 44 stops. It
	// turns RED at the top of the table, a rescue opens, the overview counts it.
	writeFile(t, demo.feed, feedJSON(44, 7))
	waitJS(t, ctx, "R1 red at the top", `(() => { const r = document.querySelector('#routes tbody tr');
		return r && r.dataset.route === 'R1' && r.classList.contains('s-RED') && r.textContent.includes('44/180') &&
			r.textContent.includes('RESCUE'); })()`)
	waitJS(t, ctx, "the rescue listed", `document.querySelector('#depot-rescues li[data-rescue]') !== null &&
		document.getElementById('depot-rescues').textContent.includes('CX01')`)
	waitJS(t, ctx, "the depot's summary", `document.querySelector('#summary [data-count="RED"]').textContent.startsWith('▲1')`)
	waitJS(t, ctx, "R1's marker red", `document.querySelectorAll('#map .route-icon.RED').length === 1`)

	shot("depot.png")

	// Back with the button; the overview now has DEMO1's rescue too.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#back"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the overview again", `!document.getElementById('overview').hidden && document.getElementById('depot-view').hidden &&
		`+fleetCell("DEMO1", "RED")+` === '▲1' && `+fleetCell("DEMO1", "rescues")+` === '1'`)

	// Open NORTH with the keyboard: its button, Enter. Escape goes back.
	if err := chromedp.Do(ctx, chromedp.Focus(chromedp.CSS(`#fleet tr[data-depot="NORTH"] .depot-link`)),
		chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "NORTH's routes", `document.getElementById('depot-name').textContent === 'NORTH' &&
		document.querySelectorAll('#routes tbody tr').length === 2 && document.querySelectorAll('#map .route-icon').length === 2 &&
		document.querySelector('#routes tbody tr').classList.contains('s-RED')`)
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Escape)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "back by Escape", `!document.getElementById('overview').hidden && document.activeElement.closest('tr').dataset.depot === 'NORTH'`)

	// A renewed token: the stream reopens with it, from where it was, and
	// a GPS fix still arrives (and moves R1 on the map).
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(window.__fleet.renewNow(), true)`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "renewed and live again", `window.__fleet.renewals === 1 && window.__fleet.conn === 'live' && window.__fleet.mode === 'sse'`)
	if _, err := publish(demo.driver(t, "D1"), "depot/DEMO1/drivers/D1/gps", 1, fixJSON(38.6543, -121.4321, time.Now())); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "R1 at the new position", `window.__fleet.depots.get('DEMO1').routes.get('R1').currentLat === 38.6543`)

	mu.Lock()
	if len(thrown) > 0 {
		t.Errorf("the page threw: %q", thrown)
	}
	mu.Unlock()
	res, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]any](`({csp: window.__fleet.csp.join('; '), gaps: window.__fleet.gaps,
		dupes: window.__fleet.dupes, dropped: window.__fleet.dropped, events: window.__fleet.events,
		demoSeq: window.__fleet.depots.get('DEMO1').lastSeq, northSeq: window.__fleet.depots.get('NORTH').lastSeq,
		status: document.getElementById('status').textContent})`))
	if err != nil {
		t.Fatal(err)
	}
	if res["csp"] != "" || res["gaps"] != 0.0 || res["dupes"] != 0.0 || res["dropped"] != 0.0 || res["events"].(float64) < 5 {
		t.Fatalf("page counters: %v", res)
	}
	if s := res["status"].(string); !strings.Contains(s, "2 depots") || !strings.Contains(s, "newest event") || !strings.Contains(s, "live · sse") {
		t.Fatalf("status bar: %q", s)
	}
	if float64(demo.depot.LastSeq()) < res["demoSeq"].(float64) || res["northSeq"].(float64) < 1 || north.depot.LastSeq() == 0 {
		t.Fatalf("seqs: page %v/%v, depots %d/%d", res["demoSeq"], res["northSeq"], demo.depot.LastSeq(), north.depot.LastSeq())
	}
}

// TestBrowserFleetPolling: where no EventSource can be opened (a proxy
// that buffers or cuts streams, stubbed here), the fleet page polls
// /api/v1/fleet/events and still shows every change, once.
func TestBrowserFleetPolling(t *testing.T) {
	demo, _, h := startFleet(t)
	ctx := browser(t)
	// Every EventSource fails at once, closed for good.
	const noSSE = `window.EventSource = class { constructor() { this.readyState = 0; this.opened = 0;
		setTimeout(() => { this.readyState = 2; if (this.onerror) this.onerror(new Event('error')); }, 20); }
		close() { this.readyState = 2; } addEventListener() {} }; window.EventSource.CLOSED = 2;`
	if err := chromedp.Do(ctx, func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: noSSE})
		return chromedp.Void{}, err
	}); err != nil {
		t.Fatal(err)
	}
	fleetSignIn(t, ctx, h)
	waitJSFor(t, ctx, 30*time.Second, "both depots, live by polling", `document.querySelectorAll('#fleet tbody tr').length === 2 &&
		window.__fleet.mode === 'polling' && window.__fleet.conn === 'live' &&
		document.querySelector('#conn .label').textContent === 'live · polling'`)
	writeFile(t, demo.feed, feedJSON(44, 7))
	waitJS(t, ctx, "DEMO1's rescue by polling", fleetCell("DEMO1", "RED")+` === '▲1' && `+fleetCell("DEMO1", "rescues")+` === '1'`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#fleet tr[data-depot="DEMO1"] .depot-link`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "R1 red in DEMO1's table", `(() => { const r = document.querySelector('#routes tbody tr');
		return r && r.dataset.route === 'R1' && r.classList.contains('s-RED') && r.textContent.includes('44/180'); })()`)
	res, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]any](`({csp: window.__fleet.csp.join('; '), gaps: window.__fleet.gaps,
		dupes: window.__fleet.dupes, dropped: window.__fleet.dropped})`))
	if err != nil {
		t.Fatal(err)
	}
	if res["csp"] != "" || res["gaps"] != 0.0 || res["dupes"] != 0.0 || res["dropped"] != 0.0 {
		t.Fatalf("page counters: %v", res)
	}
}
