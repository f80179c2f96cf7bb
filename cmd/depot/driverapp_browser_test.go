package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/depotcc/depot/bridge"
)

// feedR2Behind is feedJSON with R2 (driver D2) behind by r2Behind stops,
// so that a rescue names D1 (R1's TOP-tier driver) as the rescuer.
func feedR2Behind(r2Behind int) string {
	return strings.Replace(feedJSON(42, 0), `"completedStops":30,"totalPackages":200,"completedPackages":40,"behindSchedule":0`,
		fmt.Sprintf(`"completedStops":30,"totalPackages":200,"completedPackages":40,"behindSchedule":%d`, r2Behind), 1)
}

// phone makes the tab a 360×740 phone whose geolocation says lat, lng.
func phone(t *testing.T, ctx context.Context, origin string, lat, lng float64) {
	t.Helper()
	acc := 8.0
	if err := chromedp.Do(ctx, func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		if _, err := cdp.Call(ctx, tg, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
			Permission: &cdpbrowser.PermissionDescriptor{Name: "geolocation"}, Setting: cdpbrowser.PermissionSettingGranted, Origin: origin}); err != nil {
			return chromedp.Void{}, err
		}
		if _, err := cdp.Call(ctx, tg, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
			Width: 360, Height: 740, DeviceScaleFactor: 2, Mobile: true}); err != nil {
			return chromedp.Void{}, err
		}
		_, err := cdp.Call(ctx, tg, emulation.SetGeolocationOverride, emulation.SetGeolocationOverrideParams{Latitude: &lat, Longitude: &lng, Accuracy: &acc})
		return chromedp.Void{}, err
	}); err != nil {
		t.Fatal(err)
	}
}

// waitPromise waits until the promise expr resolves to true.
func waitPromise(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	checkFor(t, 15*time.Second, func() error {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr, chromedp.EvalAwaitPromise))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("page: not yet %s", what)
		}
		return nil
	})
}

func click(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const e = document.querySelector(`+"`"+sel+"`"+`); if (!e) return false; e.click(); return true; })()`))
	if err != nil || !ok {
		t.Fatalf("click %s: %v (not found: %v)", sel, err, !ok)
	}
}

// TestBrowserDriverApp: a driver pairs a phone from the link of the
// admin's provisioning, sees the route, accepts a VTO offer (the
// dispatcher's dashboard shows it accepted), acknowledges a rescue and
// shares a location that reaches history: real Chromium at a phone's size,
// the real appliance behind it.
func TestBrowserDriverApp(t *testing.T) {
	a := startApp(t, "", nil)
	origin := "http://" + a.HTTPAddr()

	// The admin provisions D1's handheld; its set-ups carry the driver
	// app's link (the QR code of kind driverapp holds the same).
	var dev struct {
		Token string `json:"token"`
		Setup struct {
			DriverApp string `json:"driverApp"`
		} `json:"setup"`
	}
	if code := a.request(t, "POST", "/api/v1/devices", a.admin, map[string]string{"driverId": "D1", "name": "Ana's phone"}, &dev); code != 201 {
		t.Fatalf("provision: %d", code)
	}
	if !strings.HasPrefix(dev.Setup.DriverApp, origin+"/driver/#") || strings.Contains(strings.SplitN(dev.Setup.DriverApp, "#", 2)[0], dev.Token) {
		t.Fatalf("driver app link %q: the token must ride only in the fragment", dev.Setup.DriverApp)
	}

	ctx := browser(t)
	const lat, lng = 38.6123, -121.4567
	phone(t, ctx, origin, lat, lng)
	if err := chromedp.Do(ctx, chromedp.Navigate(dev.Setup.DriverApp)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "connected", `document.getElementById('conn').dataset.conn === 'connected'`)
	waitJS(t, ctx, "the token gone from the address bar", `location.hash === '' && !location.href.includes('token')`)
	waitJS(t, ctx, "the route card", `document.getElementById('route-code').textContent.includes('CX01') &&
		document.getElementById('route').dataset.status === 'YELLOW' && document.getElementById('driver-name').textContent.includes('Ana Silva')`)
	waitJS(t, ctx, "a phone-sized page that does not scroll sideways", `innerWidth === 360 && document.documentElement.scrollWidth <= 360`)
	// The service worker keeps this build's shell, all of it, in a cache
	// named for the build.
	waitPromise(t, ctx, "the app shell cached", `(async () => {
		const ks = (await caches.keys()).filter((k) => k.startsWith('depot-driver-'));
		return ks.length === 1 && /^depot-driver-shell-[0-9a-f]{16}$/.test(ks[0]) && (await (await caches.open(ks[0])).keys()).length === 6;
	})()`)

	// The dispatcher's dashboard, in a tab of its own.
	dash, cancel := chromedp.NewContext(ctx)
	defer cancel()
	signIn(t, dash, a, "ana", anaPassword)
	waitJS(t, dash, "live", `document.querySelector('#conn .label').textContent === 'live · ws'`)

	// A VTO offer reaches the phone; the driver accepts it.
	var offer struct {
		VTOID string `json:"vtoId"`
	}
	if code := a.request(t, "POST", "/api/v1/vto", a.disp, map[string]string{"driverId": "D1", "routeId": "R1", "reason": "light volume"}, &offer); code != 201 {
		t.Fatalf("offer: %d", code)
	}
	card := `#inbox li[data-kind="offer"][data-id="` + offer.VTOID + `"]`
	waitJS(t, ctx, "the offer with its countdown", `(() => { const c = document.querySelector('`+card+` .countdown');
		return c && /^(30:00|29:[0-5]\d)$/.test(c.textContent); })()`)
	click(t, ctx, card+` button[data-action="accept"]`)
	waitJS(t, ctx, "the answer acknowledged", `!!document.querySelector('`+card+`[data-answer="acked"][data-state="accepted"]')`)
	waitJS(t, dash, "the dashboard showing it accepted", `(() => { const li = document.querySelector('#offers li[data-vto="`+offer.VTOID+`"]');
		return li && li.textContent.includes('accepted'); })()`)

	// R2 falls 7 behind: D1 is asked to rescue it, and says "On my way".
	writeFile(t, a.feed, feedR2Behind(7))
	waitJS(t, ctx, "the rescue assignment", `!!document.querySelector('#inbox li[data-kind="rescue"][data-state="open"]') &&
		document.querySelector('#inbox li[data-kind="rescue"]').textContent.includes('CX02')`)
	click(t, ctx, `#inbox li[data-kind="rescue"] button[data-action="ack"]`)
	waitJS(t, ctx, "the ack acknowledged", `!!document.querySelector('#inbox li[data-kind="rescue"][data-answer="acked"][data-state="acknowledged"]')`)
	checkFor(t, 5*time.Second, func() error {
		var rs []bridge.Rescue
		a.getJSON(t, "/api/v1/rescues", &rs)
		if len(rs) != 1 || rs[0].State != bridge.StateAcknowledged || rs[0].RescuerID != "D1" {
			return fmt.Errorf("rescues %+v", rs)
		}
		return nil
	})

	// Share my location: the phone's position reaches history.
	click(t, ctx, `#share`)
	waitJS(t, ctx, "a fix sent and acknowledged", `document.getElementById('gps-status').dataset.lastSent !== '0'`)
	var fixes []bridge.Fix
	checkFor(t, 5*time.Second, func() error {
		fixes = a.history(t, "R1")
		for _, f := range fixes {
			if f.Lat == lat && f.Lng == lng {
				return nil
			}
		}
		return fmt.Errorf("history %+v", fixes)
	})
	var st bridge.Snapshot
	a.getJSON(t, "/api/v1/state", &st)
	if dv := st.Devices["D1"]; dv.App != bridge.AppDriverApp || dv.Acc != 8 {
		t.Fatalf("device health %+v", dv)
	}

	// A reload shows the same cards, none twice. The two answers are
	// left as a tab killed before their PUBACKs leaves them: kept, so they
	// go again after the reload; the depot refuses them as conflicts, and
	// the phone shows them taken, not "Not taken".
	before, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`[...document.querySelectorAll('#inbox li')].map(l => l.dataset.id + ':' + l.dataset.state).join(' ')`))
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`localStorage.setItem('depot.driver.pending.D1', JSON.stringify([
		{ ref: '`+offer.VTOID+`', action: 'accept', at: Date.now() },
		{ ref: document.querySelector('#inbox li[data-kind="rescue"]').dataset.id, action: 'ack', at: Date.now() }])) === undefined`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the same cards after a reload", `document.getElementById('conn').dataset.conn === 'connected' &&
		[...document.querySelectorAll('#inbox li')].map(l => l.dataset.id + ':' + l.dataset.state).join(' ') === `+"`"+before+"`")
	waitJS(t, ctx, "the answers sent again, and shown taken", `localStorage.getItem('depot.driver.pending.D1') === null &&
		!!document.querySelector('`+card+`[data-answer="acked"][data-state="accepted"]') &&
		!!document.querySelector('#inbox li[data-kind="rescue"][data-answer="acked"][data-state="acknowledged"]') &&
		!document.querySelector('#inbox [role="alert"]')`)
	waitJS(t, ctx, "no CSP refusals", `window.__driver.csp.length === 0`)

	if out := os.Getenv("DEPOT_DRIVER_SCREENSHOT"); out != "" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The same link again, and then a forged one: neither unpairs the
	// phone. A one-time code (once the back end makes the link of one) is
	// used by now, and the phone says so; a link with the credential
	// itself still holds it.
	kept, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`localStorage.getItem('depot.driver')`))
	revisit := func(link, what, notice string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Navigate("about:blank"), chromedp.Navigate(link)); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, what, `location.hash === '' && document.getElementById('conn').dataset.conn === 'connected' &&
			document.getElementById('route-code').textContent.includes('CX01') && localStorage.getItem('depot.driver') === `+"`"+kept+"`"+` &&
			(`+"`"+notice+"`"+` === '' ? document.getElementById('notice').hidden :
				!document.getElementById('notice').hidden && document.getElementById('notice-text').textContent.includes(`+"`"+notice+"`"+`))`)
	}
	if strings.Contains(dev.Setup.DriverApp, "#pair=") {
		revisit(dev.Setup.DriverApp, "the used code refused, the phone still paired", "This pairing code was already used or has expired: ask your dispatcher for a new QR code. This phone stays paired as Ana Silva (D1).")
	} else {
		revisit(dev.Setup.DriverApp, "the same credential again, the phone still paired", "")
	}
	revisit(origin+"/driver/#pair=Zm9yZ2VkLWNvZGUtZm9yZ2VkLWNvZGUtZm9yZ2VkLWM", "a forged code refused, the phone still paired", "ask your dispatcher for a new QR code. This phone stays paired as Ana Silva (D1).")

	// Another driver's link: the phone asks on the page before it
	// switches. Kept, it stays D1's; switched, it is D2's, and D1's state
	// is gone from it.
	d2 := func() {
		var dev2 struct {
			Setup struct {
				DriverApp string `json:"driverApp"`
			} `json:"setup"`
		}
		if code := a.request(t, "POST", "/api/v1/devices", a.admin, map[string]string{"driverId": "D2", "name": "Bo's phone"}, &dev2); code != 201 {
			t.Fatalf("provision D2: %d", code)
		}
		if err := chromedp.Do(ctx, chromedp.Navigate("about:blank"), chromedp.Navigate(dev2.Setup.DriverApp)); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the question", `location.hash === '' && !document.getElementById('switch').hidden &&
			document.getElementById('switch-text').textContent.includes('Ana Silva (D1)') && document.getElementById('app').hidden`)
	}
	d2()
	click(t, ctx, `#switch-no`)
	waitJS(t, ctx, "still D1's", `document.getElementById('conn').dataset.conn === 'connected' &&
		document.getElementById('route-code').textContent.includes('CX01') && localStorage.getItem('depot.driver') === `+"`"+kept+"`")
	d2()
	click(t, ctx, `#switch-yes`)
	waitJS(t, ctx, "D2's now", `document.getElementById('conn').dataset.conn === 'connected' &&
		document.getElementById('route-code').textContent.includes('CX02') && JSON.parse(localStorage.getItem('depot.driver')).driver === 'D2' &&
		localStorage.getItem('depot.driver.state.D1') === null && localStorage.getItem('depot.driver.state.D2') !== null`)
	waitJS(t, ctx, "no CSP refusals after the links", `window.__driver.csp.length === 0`)
}
