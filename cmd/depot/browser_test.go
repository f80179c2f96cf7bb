package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// browser starts headless Debian Chromium (scripts/deps.sh installs it) and
// returns a chromedp context for one tab, good for 90 s.
func browser(t testing.TB) context.Context {
	t.Helper()
	return browserFor(t, 90*time.Second)
}

// browserFor is browser with a context good for d.
func browserFor(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	path := os.Getenv("CHROMIUM")
	if path == "" {
		p, err := exec.LookPath("chromium")
		if err != nil {
			t.Fatal("chromium not installed: run `make deps` (scripts/deps.sh) or set CHROMIUM")
		}
		path = p
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // root in CI
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1920, 1080),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA() })
	ctx, cancelT := context.WithTimeout(ctx, d)
	t.Cleanup(cancelT)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// waitJS polls a JavaScript expression in the page until it is true.
func waitJS(t testing.TB, ctx context.Context, what, expr string) {
	t.Helper()
	waitJSFor(t, ctx, 15*time.Second, what, expr)
}

func waitJSFor(t testing.TB, ctx context.Context, d time.Duration, what, expr string) {
	t.Helper()
	checkFor(t, d, func() error {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("page: not yet %s", what)
		}
		return nil
	})
}

func rowText(t *testing.T, ctx context.Context, route string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`tr[data-route="`+route+`"]`)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// signIn opens the dashboard and signs in through its login form.
func signIn(t testing.TB, ctx context.Context, a *testApp, user, password string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+a.HTTPAddr()+"/")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the login form", `!document.getElementById('login').hidden`)
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#login-user"), user),
		chromedp.SendKeys(chromedp.CSS("#login-pass"), password),
		chromedp.Click(chromedp.CSS("#login-submit")),
	); err != nil {
		t.Fatal(err)
	}
}

func TestBrowserDashboardLive(t *testing.T) {
	a := startApp(t, "", nil)
	ctx := browser(t)
	signIn(t, ctx, a, "ana", "wrong-password")
	waitJS(t, ctx, "a refusal", `document.getElementById('login-msg').textContent.includes('wrong username or password')`)
	if err := chromedp.Do(ctx, chromedp.Clear(chromedp.CSS("#login-user"))); err != nil {
		t.Fatal(err)
	}
	signIn(t, ctx, a, "ana", anaPassword)
	waitJS(t, ctx, "showing both routes", `document.querySelectorAll('#routes tbody tr').length === 2`)
	// The login page is gone for real, not just marked hidden: what is on
	// top at the centre of the table is the table.
	waitJS(t, ctx, "the login overlay gone", `getComputedStyle(document.getElementById('login')).display === 'none' &&
		document.elementFromPoint(innerWidth / 4, innerHeight / 2).closest('#routes, .routes') !== null`)
	waitJS(t, ctx, "live", `document.querySelector('#conn .label').textContent === 'live · ws'`)
	// Under the page's Content-Security-Policy nothing it needs is refused:
	// script, styles, the map, the MQTT WebSocket and MQTT.js's timer worker.
	waitJS(t, ctx, "no CSP refusals", `window.__depot.csp.length === 0`)
	// The status bar says what it knows, and no "null" for what is off
	// here (the fleet link).
	waitJS(t, ctx, "the status bar", `(() => { const s = document.getElementById('status').textContent;
		return s.includes('fixes/s') && !s.includes('null') && !s.includes('fleet'); })()`)
	if s := rowText(t, ctx, "R1"); !strings.Contains(s, "CX01") || !strings.Contains(s, "BEHIND") || !strings.Contains(s, "Ana Silva") {
		t.Fatalf("R1 row: %q", s)
	}

	// A feed change: R1 falls 7 behind. It turns RED, says RESCUE (not colour
	// alone) and moves to the top.
	writeFile(t, a.feed, feedJSON(44, 7))
	waitJS(t, ctx, "R1 red at the top", `(() => { const r = document.querySelector('#routes tbody tr');
		return r && r.dataset.route === 'R1' && r.classList.contains('s-RED'); })()`)
	if s := rowText(t, ctx, "R1"); !strings.Contains(s, "RESCUE") || !strings.Contains(s, "44/180") {
		t.Fatalf("R1 row after feed change: %q", s)
	}
	// The crossing raised a rescue alert: an unmissable banner naming the
	// route and the rescuer, until acknowledged on this screen.
	waitJS(t, ctx, "the rescue banner", `(() => { const b = document.querySelector('#rescues .rescue');
		return b && b.textContent.includes('RESCUE CX01') && b.textContent.includes('Ben Okafor') &&
			!b.classList.contains('acked'); })()`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#rescues [data-act="ack"]`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the banner acknowledged", `document.querySelector('#rescues .rescue').classList.contains('acked')`)

	// A VTO offer shows with a countdown on the server's clock.
	if code := a.request(t, "POST", "/api/v1/vto", a.disp, map[string]string{"driverId": "D2", "routeId": "R2", "reason": "light volume"}, nil); code != 201 {
		t.Fatalf("POST /vto: %d", code)
	}
	waitJS(t, ctx, "the VTO countdown", `(() => { const c = document.querySelector('#offers li .countdown');
		return c && /^(30:00|29:[0-5]\d)$/.test(c.textContent) && c.closest('li').textContent.includes('CX02'); })()`)

	// A GPS fix from the route's driver moves the route on the page.
	drv := a.driver(t, "D1")
	if _, err := publish(drv, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(38.6543, -121.4321, time.Now())); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "R1 at the new position", `window.__depot.routes.get('R1').currentLat === 38.6543`)
	waitJS(t, ctx, "an update delay shown", `/delay (<1|\d+) ms/.test(document.getElementById('delay').textContent)`)

	// The page loses its connection (the server cuts it) while 10 events
	// happen; it reconnects, catches up, and applies every event once, in
	// order, ending where the server is.
	before, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`window.__depot.events`))
	if err != nil {
		t.Fatal(err)
	}
	if n := a.broker.Disconnect("dispatcher:ana"); n != 1 {
		t.Fatalf("cut %d dashboard sessions", n)
	}
	base := time.Now().Add(time.Minute)
	for i := range 10 {
		publish(drv, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(38.66+float64(i)/1000, -121.4321, base.Add(time.Duration(i)*time.Second)))
	}
	last := a.depot.LastSeq()
	waitJS(t, ctx, "caught up", fmt.Sprintf(`window.__depot.lastSeq >= %d && window.__depot.conn === 'live' && window.__depot.transport === 'ws'`, last))
	res, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]float64](
		`({gaps: window.__depot.gaps, events: window.__depot.events, lat: window.__depot.routes.get('R1').currentLat})`))
	if err != nil {
		t.Fatal(err)
	}
	if res["gaps"] != 0 || res["events"]-before < 10 || res["lat"] != 38.669 {
		t.Fatalf("after the cut: %v (events before %v)", res, before)
	}

	// A token the server no longer accepts sends the page back to login with
	// a message, instead of reconnecting forever.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => {
		const a = JSON.parse(sessionStorage.getItem('depot.auth')); a.token = a.token.slice(0, -4) + 'AAAA';
		sessionStorage.setItem('depot.auth', JSON.stringify(a)); location.reload(); return true; })()`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "back at login with a message", `!document.getElementById('login').hidden &&
		document.getElementById('login-msg').textContent.includes('session has ended')`)
}

// TestBrowserDemoDepot is what `make run` shows: 30 demo routes updating
// live. With DEPOT_SCREENSHOT=file.png it also saves the README screenshot.
func TestBrowserDemoDepot(t *testing.T) {
	a := startApp(t, "", func(c *ServeConfig) { c.CortexURL, c.Demo = "", true })
	within := 90 * time.Second
	if os.Getenv("DEPOT_SCREENSHOT") != "" || os.Getenv("DEPOT_SCREENSHOTS") != "" {
		// The pictures wait for the demo's first rescue, then for two
		// minutes of trail: longer than a browser test's 90 s.
		within = 8 * time.Minute
	}
	ctx := browserFor(t, within)
	signIn(t, ctx, a, "ana", anaPassword)
	waitJS(t, ctx, "30 routes", `document.querySelectorAll('#routes tbody tr').length === 30`)
	before, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`window.__depot.events`))
	if err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "live updates arriving", fmt.Sprintf(`window.__depot.events > %v + 20`, before))
	waitJS(t, ctx, "drivers on the map", `document.querySelectorAll('.route-icon .tag').length >= 30`)
	if out := os.Getenv("DEPOT_SCREENSHOT"); out != "" {
		// The README picture shows the demo's first rescue (about a minute in).
		waitJSFor(t, ctx, 3*time.Minute, "the demo's rescue", `document.querySelector('#rescues .rescue') !== null`)
		time.Sleep(2 * time.Second) // let the map fit and the rows settle for the picture
		screenshot(t, ctx, out)
	}
	// DEPOT_SCREENSHOTS=dir saves the README's workspace pictures there:
	// a route's drawer with its trail, and the replay of every route.
	if dir := os.Getenv("DEPOT_SCREENSHOTS"); dir != "" {
		waitJSFor(t, ctx, 3*time.Minute, "two minutes of trail", `window.__depot.events > 30 * 120`)
		do(t, ctx, chromedp.Click(chromedp.CSS(`#routes tbody tr:nth-child(4) .codebtn`)))
		waitJS(t, ctx, "the trail read", `(() => { const d = window.__depot.drawer; return d.open && !d.loading && d.points > 60; })()`)
		do(t, ctx, chromedp.Click(chromedp.CSS(`#trail-follow`)))
		time.Sleep(2 * time.Second) // the map's pan and zoom settle for the picture
		screenshot(t, ctx, filepath.Join(dir, "workspace.png"))
		// The replay of every route fits the map to them all, from the
		// driver followed.
		do(t, ctx, chromedp.KeyEvent(kb.Escape), chromedp.Click(chromedp.CSS(`#replay-all`)))
		// At 5×, so that the picture is of the replay under way.
		waitJS(t, ctx, "the replay open, every route in view", `window.__depot.replay.open && window.__depot.replay.ready && window.__depot.replay.allInView()`)
		do(t, ctx, chromedp.SetValue(chromedp.CSS(`#replay-speed`), "5"),
			chromedp.Evaluate[chromedp.Void](`document.getElementById('replay-speed').dispatchEvent(new Event('change'))`),
			chromedp.Click(chromedp.CSS(`#replay-play`)))
		waitJSFor(t, ctx, time.Minute, "the replay drawing the routes", `(() => { const r = window.__depot.replay;
			return r.playing && r.markers >= 25; })()`)
		screenshot(t, ctx, filepath.Join(dir, "replay.png"))
	}
}

// screenshot saves the page as a PNG at path (README pictures).
func screenshot(t testing.TB, ctx context.Context, path string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBrowserFallsBackToSSE: with the WebSocket refused (a proxy that
// strips the upgrade), the page goes live over Server-Sent Events, shows
// updates, and resumes without a gap after the stream is cut.
func TestBrowserFallsBackToSSE(t *testing.T) {
	a := startApp(t, "", nil, func(m *Main) { m.faults.noWS = true })
	ctx := browser(t)
	signIn(t, ctx, a, "ana", anaPassword)
	waitJS(t, ctx, "both routes", `document.querySelectorAll('#routes tbody tr').length === 2`)
	waitJS(t, ctx, "live over SSE", `document.querySelector('#conn .label').textContent === 'live · sse'`)
	drv := a.driver(t, "D1")
	publish(drv, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(38.6111, -121.4, time.Now()))
	waitJSFor(t, ctx, 2*time.Second, "the fix over SSE", `window.__depot.routes.get('R1').currentLat === 38.6111`)

	a.web.Events().CutAll()
	base := time.Now().Add(time.Minute)
	for i := range 10 {
		publish(drv, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(38.62+float64(i)/1000, -121.4, base.Add(time.Duration(i)*time.Second)))
	}
	last := a.depot.LastSeq()
	waitJS(t, ctx, "caught up over SSE", fmt.Sprintf(`window.__depot.lastSeq >= %d`, last))
	res, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]any](
		`({gaps: window.__depot.gaps, lat: window.__depot.routes.get('R1').currentLat, t: window.__depot.transport})`))
	if err != nil {
		t.Fatal(err)
	}
	if res["gaps"] != 0.0 || res["lat"] != 38.629 || res["t"] != "sse" {
		t.Fatalf("after the cut: %v", res)
	}
}

// TestBrowserFallsBackToPolling: WebSocket and SSE both cut; the page
// polls the event log and still shows updates.
func TestBrowserFallsBackToPolling(t *testing.T) {
	a := startApp(t, "", nil, func(m *Main) { m.faults.noWS, m.faults.noSSE = true, true })
	ctx := browser(t)
	signIn(t, ctx, a, "ana", anaPassword)
	waitJS(t, ctx, "live by polling", `document.querySelector('#conn .label').textContent === 'live · polling'`)
	publish(a.driver(t, "D1"), "depot/DEMO1/drivers/D1/gps", 1, fixJSON(38.6222, -121.4, time.Now()))
	waitJS(t, ctx, "the fix by polling", `window.__depot.routes.get('R1').currentLat === 38.6222 && window.__depot.gaps === 0`)
}
