package main

import (
	"fmt"
	"math"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// replayFix is a fix a replay test publishes: dm metres north of the
// depot's latitude, at base + at.
type replayFix struct {
	dm float64
	at time.Duration
}

const replayLat0 = 38.5816

func replayNorth(dm float64) float64 { return replayLat0 + dm/111195 }

// publishTrack publishes fixes of driver's route at base + at, and waits
// until route's history holds them all.
func publishTrack(t *testing.T, a *testApp, driver, route string, base time.Time, fixes []replayFix) {
	t.Helper()
	drv := a.driver(t, driver)
	for _, f := range fixes {
		if _, err := publish(drv, "depot/DEMO1/drivers/"+driver+"/gps", 1, fixJSON(replayNorth(f.dm), -121.4944, base.Add(f.at))); err != nil {
			t.Fatal(err)
		}
	}
	checkFor(t, 10*time.Second, func() error {
		var h historyResp
		if code := a.request(t, "GET", "/api/v1/routes/"+route+"/history", a.disp, nil, &h); code != 200 || len(h.Fixes) != len(fixes) {
			return fmt.Errorf("history of %s: %d, %d fixes", route, code, len(h.Fixes))
		}
		return nil
	})
}

// TestBrowserReplayRoute: from the drawer, a route's trail plays back on
// the map: the replay marker starts at the route's first fix, moves on
// the line between two fixes as the clock runs (interpolated), a scrub
// puts it where the route was then, pause holds it, space plays again,
// Esc closes the replay (not the drawer) and the live view is as it was.
func TestBrowserReplayRoute(t *testing.T) {
	a := startApp(t, "", nil)
	// Six minutes of driving north, a fix a minute, ending 4 minutes ago.
	base := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	fixes := []replayFix{{0, 0}, {1000, time.Minute}, {2000, 2 * time.Minute}, {3000, 3 * time.Minute},
		{4000, 4 * time.Minute}, {5000, 5 * time.Minute}, {6000, 6 * time.Minute}}
	publishTrack(t, a, "D1", "R1", base, fixes)
	// where is R1 at ms (interpolated between its fixes), in latitude.
	where := func(ms float64) float64 {
		for i := 0; i+1 < len(fixes); i++ {
			t0 := float64(base.Add(fixes[i].at).UnixMilli())
			t1 := float64(base.Add(fixes[i+1].at).UnixMilli())
			if ms >= t0 && ms <= t1 {
				return replayNorth(fixes[i].dm + (fixes[i+1].dm-fixes[i].dm)*(ms-t0)/(t1-t0))
			}
		}
		return math.NaN()
	}
	first := float64(base.UnixMilli())

	ctx := browser(t)
	signIn(t, ctx, a, "ana", anaPassword)
	waitJS(t, ctx, "both routes", `document.querySelectorAll('#routes tbody tr').length === 2`)
	waitJS(t, ctx, "live", `window.__depot.conn === 'live'`)
	waitJS(t, ctx, "both live markers", `document.querySelectorAll('.route-icon').length === 2`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`tr[data-route="R1"] .codebtn`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the trail read", `window.__depot.drawer.points === 7 && !window.__depot.drawer.loading`)
	// The drawer's Replay, by its accessible name.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[aria-label="Replay this route"]`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the replay at R1's first fix", fmt.Sprintf(`(() => { const r = window.__depot.replay;
		const p = r.positions().R1;
		return r.open && r.scope === 'route' && r.routes === 1 && r.first === %[1]v && r.drawnT === %[1]v && r.markers === 1 &&
			!!p && p.lat === %[2]v && !document.getElementById('replay').hidden &&
			document.querySelectorAll('.replay-icon [data-replay="R1"]').length === 1 &&
			document.getElementById('map').classList.contains('replaying') &&
			document.activeElement === document.getElementById('replay-play'); })()`, first, replayNorth(0)))
	if got := jsText(t, ctx, `document.getElementById('replay-what').textContent`); len(got) < len("Route CX01 · ") || got[:len("Route CX01 · ")] != "Route CX01 · " {
		t.Fatalf("replay's title: %q", got)
	}

	// Play (at 60×, the default: a minute of the trail a second).
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[aria-label="Play"]`))); err != nil {
		t.Fatal(err)
	}
	var seen map[string]float64
	checkFor(t, 15*time.Second, func() error {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]float64](`(() => { const r = window.__depot.replay;
			const p = r.positions().R1 || {lat: NaN, lng: NaN};
			return {t: r.drawnT, lat: p.lat, lng: p.lng, playing: r.playing ? 1 : 0, frames: r.frames}; })()`))
		if err != nil {
			return err
		}
		seen = s
		// Moved, and not at a fix: on the line between two, where it was then.
		if s["playing"] != 1 || s["t"] <= first+5000 || s["t"] >= first+5*60000 {
			return fmt.Errorf("not yet playing in the middle: %v", s)
		}
		for _, f := range fixes {
			if s["lat"] == replayNorth(f.dm) {
				return fmt.Errorf("at a fix: %v", s)
			}
		}
		if want := where(s["t"]); math.Abs(s["lat"]-want) > 1e-9 || s["lng"] != -121.4944 {
			return fmt.Errorf("at %v, not %v (interpolated)", s, want)
		}
		return nil
	})
	t.Logf("playing: %v", seen)
	waitJS(t, ctx, "the pause button named", `document.getElementById('replay-play').getAttribute('aria-label') === 'Pause'`)

	// Pause, then scrub to a minute and a half in: half way between the
	// second and third fixes.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[aria-label="Pause"]`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "paused", `!window.__depot.replay.playing && document.getElementById('replay-play').getAttribute('aria-label') === 'Play'`)
	at := first + 90000
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`(() => { const s = document.getElementById('replay-scrub');
		s.value = '%v'; s.dispatchEvent(new Event('input')); return true; })()`, at))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "scrubbed", fmt.Sprintf(`(() => { const r = window.__depot.replay; const p = r.positions().R1;
		return r.drawnT === %v && !!p && Math.abs(p.lat - %v) < 1e-9 && r.markers === 1; })()`, at, replayNorth(1500)))
	clock := jsText(t, ctx, `document.getElementById('replay-clock').textContent`)
	if want := jsText(t, ctx, fmt.Sprintf(`new Date(%v).toLocaleTimeString([], {hour: '2-digit', minute: '2-digit', second: '2-digit'})`, at)); clock != want {
		t.Fatalf("the replay's clock shows %q, want %q", clock, want)
	}
	// Paused, the head stays where it was put.
	frames := jsNum(t, ctx, `window.__depot.replay.frames`)
	waitJS(t, ctx, "the head still", fmt.Sprintf(`window.__depot.replay.drawnT === %v && !window.__depot.replay.playing`, at))
	// Back to the start: the first fix.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const s = document.getElementById('replay-scrub');
		s.value = s.min; s.dispatchEvent(new Event('input')); return true; })()`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "at the start", fmt.Sprintf(`window.__depot.replay.frames > %v && window.__depot.replay.drawnT === %v && window.__depot.replay.markers === 1`, frames, first))

	// Space on the scrubber plays.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(document.getElementById('replay-scrub').focus(), true)`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.KeyEvent(" ")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "space played", fmt.Sprintf(`window.__depot.replay.playing && window.__depot.replay.drawnT > %v`, first))
	// Esc closes the replay, and only it: the drawer stays, the live view
	// is back as it was.
	if err := chromedp.Do(ctx, chromedp.KeyEvent("\u001b")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the replay closed", `(() => { const r = window.__depot.replay;
		return !r.open && !r.playing && document.getElementById('replay').hidden &&
			document.querySelectorAll('.replay-icon').length === 0 && !document.getElementById('map').classList.contains('replaying') &&
			!document.getElementById('drawer').hidden && document.querySelectorAll('.route-icon').length === 2 &&
			document.querySelectorAll('.route-icon.sel').length === 1; })()`)
	// Live fixes still move the live marker.
	drv := a.driver(t, "D1")
	if _, err := publish(drv, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(38.6543, -121.4321, time.Now())); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "R1 live at the new position", `window.__depot.routes.get('R1').currentLat === 38.6543`)
	waitJS(t, ctx, "no CSP refusals", `window.__depot.csp.length === 0`)
}

// TestBrowserReplayAll: the map's Replay plays every route back: a route
// is drawn from its first fix on, not before; each route with history has
// its marker; the close button gives the live view back.
func TestBrowserReplayAll(t *testing.T) {
	a := startApp(t, "", nil)
	base := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	publishTrack(t, a, "D1", "R1", base, []replayFix{{0, 0}, {1000, time.Minute}, {2000, 2 * time.Minute}, {3000, 3 * time.Minute}})
	// R2 starts two minutes later.
	publishTrack(t, a, "D2", "R2", base, []replayFix{{-500, 2 * time.Minute}, {-1500, 3 * time.Minute}, {-2500, 4 * time.Minute}})
	first := float64(base.UnixMilli())

	ctx := browser(t)
	signIn(t, ctx, a, "ana", anaPassword)
	waitJS(t, ctx, "both routes", `document.querySelectorAll('#routes tbody tr').length === 2`)
	waitJS(t, ctx, "both live markers", `document.querySelectorAll('.route-icon').length === 2`)
	// R1's drawer zooms the map on its trail, which leaves R2 out of view;
	// replaying all routes fits the map to all of them.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`tr[data-route="R1"] .codebtn`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "R1's trail, R2 out of view", `(() => { const d = window.__depot.drawer;
		return d.open && d.routeId === 'R1' && d.points === 4 && !d.loading && !window.__depot.replay.allInView(); })()`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[aria-label="Replay all routes"]`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "every route in view", `window.__depot.replay.open && window.__depot.replay.allInView()`)
	waitJS(t, ctx, "the replay at the first fix of the day: R1's, R2 not yet drawn", fmt.Sprintf(`(() => { const r = window.__depot.replay;
		const p = r.positions();
		return r.open && r.scope === 'all' && r.routes === 2 && r.first === %[1]v && r.drawnT === %[1]v &&
			r.markers === 1 && !!p.R1 && !p.R2 && document.querySelectorAll('.replay-icon').length === 1; })()`, first))
	// The speed list, by its name: 30×.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const s = document.querySelector('select[aria-label="Speed"]');
		s.value = '30'; s.dispatchEvent(new Event('change')); return true; })()`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "at 30×", `window.__depot.replay.speed === 30`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[aria-label="Play"]`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "both routes drawn", fmt.Sprintf(`(() => { const r = window.__depot.replay; const p = r.positions();
		return r.playing && r.drawnT > %v && r.markers === 2 && !!p.R1 && !!p.R2 &&
			document.querySelectorAll('.replay-icon [data-replay="R1"], .replay-icon [data-replay="R2"]').length === 2; })()`, first+2*60000))
	// DEPOT_SCREENSHOT_REPLAY=file.png saves a picture of the replay.
	if out := os.Getenv("DEPOT_SCREENSHOT_REPLAY"); out != "" {
		screenshot(t, ctx, out)
	}
	// At the end: stopped, each route held at its last fix.
	waitJSFor(t, ctx, 30*time.Second, "the end", fmt.Sprintf(`(() => { const r = window.__depot.replay; const p = r.positions();
		return !r.playing && r.drawnT === r.to && r.markers === 2 && p.R1.lat === %v && p.R2.lat === %v; })()`, replayNorth(3000), replayNorth(-2500)))
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[aria-label="Close replay"]`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the live view back", `!window.__depot.replay.open && document.getElementById('replay').hidden &&
		document.querySelectorAll('.replay-icon').length === 0 && document.querySelectorAll('.route-icon').length === 2 &&
		!document.getElementById('map').classList.contains('replaying') &&
		document.activeElement === document.querySelector('button[aria-label="Replay all routes"]')`)
	waitJS(t, ctx, "no CSP refusals", `window.__depot.csp.length === 0`)
}
