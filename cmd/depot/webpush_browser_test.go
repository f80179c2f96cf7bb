package main

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/serviceworker"
	"github.com/chromedp/chromedp"
)

// pushStub replaces the browser's push subscription with one made here.
//
// Why a stub: PushManager.subscribe asks the browser's push service (for
// Chromium, Google's FCM) for an endpoint, over the internet. That service
// is outside the box, and headless Chromium here cannot reach it: subscribe
// would fail with "push service error". So subscribe and getSubscription
// are replaced at that boundary, before the app runs, by ones that answer
// with a well-formed subscription: an https endpoint, a real P-256 public
// key (p256dh) and 16 random bytes (auth), as a browser gives them. The
// rest is real: the notifications permission (granted by CDP), the app,
// its service worker, and the depot that registers the subscription.
//
// The subscription lives in sessionStorage, as the browser's lives across
// reloads; window.__pushStub says what the app asked for.
const pushStub = `(() => {
  if (typeof PushManager !== 'function') return;
  const SUB = %s;
  const KEY = 'pushStub.sub';
  const b64 = (u8) => btoa(String.fromCharCode(...u8)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  const stub = window.__pushStub = { subscribes: 0, unsubscribes: 0, key: sessionStorage.getItem(KEY) };
  const make = (key) => ({
    endpoint: SUB.endpoint, expirationTime: null, options: { userVisibleOnly: true, applicationServerKey: null },
    toJSON: () => JSON.parse(JSON.stringify(SUB)),
    unsubscribe: async () => { stub.unsubscribes++; stub.key = null; sessionStorage.removeItem(KEY); return true; },
  });
  PushManager.prototype.subscribe = async function (opts) {
    if (!opts || opts.userVisibleOnly !== true) throw new DOMException('userVisibleOnly', 'NotAllowedError');
    stub.subscribes++;
    stub.key = b64(new Uint8Array(opts.applicationServerKey));
    sessionStorage.setItem(KEY, stub.key);
    return make(stub.key);
  };
  PushManager.prototype.getSubscription = async function () { return stub.key ? make(stub.key) : null; };
})();`

// TestBrowserDriverPush: a driver turns on "Notify me when the app is
// closed"; the depot then holds the phone's Web Push subscription as a
// push target of D1's device, registered again (not twice) on the next
// start. Turned off, and on sign-out, the depot is told and forgets it.
// An answer given by a notification's button (the app opened at
// #answer=accept:<vtoId>) reaches the depot as the card's would.
// Needs the depot's Web Push API (GET /api/v1/push/vapid, POST and DELETE
// /api/v1/push/register, the targets in GET /api/v1/devices).
func TestBrowserDriverPush(t *testing.T) {
	a := startApp(t, "", nil)
	origin := "http://" + a.HTTPAddr()

	// The subscription a browser would get from its push service.
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	rand.Read(auth)
	endpoint := "https://push.example/wp/" + base64.RawURLEncoding.EncodeToString(auth[:9])
	sub, _ := json.Marshal(map[string]any{"endpoint": endpoint, "expirationTime": nil, "keys": map[string]string{
		"p256dh": base64.RawURLEncoding.EncodeToString(priv.PublicKey().Bytes()), "auth": base64.RawURLEncoding.EncodeToString(auth)}})

	var dev struct {
		Setup struct {
			DriverApp string `json:"driverApp"`
		} `json:"setup"`
	}
	if code := a.request(t, "POST", "/api/v1/devices", a.admin, map[string]string{"driverId": "D1", "name": "Ana's phone"}, &dev); code != 201 {
		t.Fatalf("provision: %d", code)
	}

	ctx := browser(t)
	phone(t, ctx, origin, 38.6, -121.4)
	var mu sync.Mutex
	var regID serviceworker.RegistrationID // the app's service worker's, for CDP's pushes
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*serviceworker.EventWorkerRegistrationUpdated); ok {
			for _, r := range e.Registrations {
				if r.ScopeURL == origin+"/driver/" && !r.IsDeleted {
					mu.Lock()
					regID = r.RegistrationID
					mu.Unlock()
				}
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		if _, err := cdp.Call(ctx, tg, serviceworker.Enable, cdp.Empty{}); err != nil {
			return chromedp.Void{}, err
		}
		if _, err := cdp.Call(ctx, tg, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
			Permission: &cdpbrowser.PermissionDescriptor{Name: "notifications"}, Setting: cdpbrowser.PermissionSettingGranted, Origin: origin}); err != nil {
			return chromedp.Void{}, err
		}
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: fmt.Sprintf(pushStub, sub)})
		return chromedp.Void{}, err
	}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(dev.Setup.DriverApp)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "connected", `document.getElementById('conn').dataset.conn === 'connected'`)

	// A push, as the browser's push service would bring it (CDP delivers
	// it to the service worker, decrypted): the worker shows it, tagged
	// with its ref, with Accept and Decline on an offer; a rescue stays
	// until touched; one past its expires is dropped. Pushed until shown:
	// one delivered while the worker still starts is lost.
	push := func(payload string) {
		t.Helper()
		mu.Lock()
		id := regID
		mu.Unlock()
		if err := chromedp.Do(ctx, func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			_, err := cdp.Call(ctx, tg, serviceworker.DeliverPushMessage, serviceworker.DeliverPushMessageParams{Origin: origin, RegistrationID: id, Data: payload})
			return chromedp.Void{}, err
		}); err != nil {
			t.Fatal(err)
		}
	}
	pushed := func(typ, ref, title string, expires time.Time) string {
		b, _ := json.Marshal(map[string]any{"id": "evt_42", "title": title, "body": "CX01 · light volume", "expires": expires.UTC().Format(time.RFC3339),
			"data": map[string]string{"type": typ, "ref": ref, "seq": "42", "driverId": "D1", "url": "/driver/#msg=" + ref}})
		return string(b)
	}
	shown := func(what string, redo func(), cond string) {
		t.Helper()
		checkFor(t, 15*time.Second, func() error {
			if redo != nil {
				redo()
			}
			ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`navigator.serviceWorker.ready.then((r) => r.getNotifications()).then((ns) => `+cond+`)`, chromedp.EvalAwaitPromise))
			if err != nil || !ok {
				return fmt.Errorf("notifications: not yet %s (%v)", what, err)
			}
			return nil
		})
	}
	waitPromise(t, ctx, "the service worker", `navigator.serviceWorker.ready.then(() => true)`)
	offerPush := pushed("vto:offer", "vto_p1", "Time off offered", time.Now().Add(30*time.Minute))
	checkFor(t, 15*time.Second, func() error {
		push(offerPush)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`new Promise((ok) => setTimeout(ok, 300)).then(() => navigator.serviceWorker.ready).then((r) => r.getNotifications()).then((ns) => ns.length > 0)`, chromedp.EvalAwaitPromise))
		if err != nil || !ok {
			return fmt.Errorf("no notification yet (%v)", err)
		}
		return nil
	})
	push(pushed("vto:offer", "vto_old", "Time off offered", time.Now().Add(-time.Minute)))
	rescuePush := pushed("rescue:alert", "rsc_R2_7", "Rescue: help CX02", time.Now().Add(30*time.Minute))
	// Pushed again on each look (CDP may hand one to a worker that is
	// being stopped, which drops it): a push with the same tag replaces
	// itself, so the count stays 2.
	shown("the offer and the rescue", func() { push(rescuePush); push(offerPush) }, `ns.length === 2 && ns.some((n) => n.tag === 'vto_p1' && n.title === 'Time off offered' &&
		n.body === 'CX01 · light volume' && !n.requireInteraction && n.data.ref === 'vto_p1' && n.data.type === 'vto:offer' &&
		n.actions.map((a) => a.action).join() === 'accept,decline') &&
		ns.some((n) => n.tag === 'rsc_R2_7' && n.requireInteraction && n.actions.length === 0)`)

	// A notification's Accept opens the app at #answer=accept:<vtoId>: the
	// answer is kept and sent as the card's button would, the fragment gone.
	var offer struct {
		VTOID string `json:"vtoId"`
	}
	if code := a.request(t, "POST", "/api/v1/vto", a.disp, map[string]string{"driverId": "D1", "routeId": "R1", "reason": "light volume"}, &offer); code != 201 {
		t.Fatalf("offer: %d", code)
	}
	card := `#inbox li[data-kind="offer"][data-id="` + offer.VTOID + `"]`
	// A link with #answer= that no notification made (sent by someone
	// else) only shows the card: nothing is answered for the driver.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank"), chromedp.Navigate(origin+"/driver/#answer=accept:"+offer.VTOID)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the card shown, not answered", `location.hash === '' && !!document.querySelector('`+card+`[data-state="open"][data-highlight]') &&
		!document.querySelector('`+card+`[data-answer]')`)
	// The service worker leaves its proof when a notification's button
	// opens the app (CDP cannot click a notification; the page writes the
	// same record the worker would, in Cache Storage, which no link can).
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`caches.open('depot-answers').then((c) => c.put(new URL('./', location.href).href + '__answer/accept/`+offer.VTOID+`', new Response('1'))).then(() => true)`, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank"), chromedp.Navigate(origin+"/driver/#answer=accept:"+offer.VTOID)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the answer taken, its card shown", `location.hash === '' && !!document.querySelector('`+card+`[data-answer="acked"][data-state="accepted"][data-highlight]') &&
		localStorage.getItem('depot.driver.pending.D1') === null`)
	checkFor(t, 5*time.Second, func() error {
		var offers []struct {
			VTOID string `json:"vtoId"`
			State string `json:"state"`
		}
		a.getJSON(t, "/api/v1/vto", &offers)
		for _, o := range offers {
			if o.VTOID == offer.VTOID && o.State == "accepted" {
				return nil
			}
		}
		return fmt.Errorf("offers %+v", offers)
	})

	// A click on a notification while the app is open: the worker posts
	// what was clicked to it (here, as the worker would post it). One for
	// another driver (this phone's before) is ignored.
	var offer2 struct {
		VTOID string `json:"vtoId"`
	}
	if code := a.request(t, "POST", "/api/v1/vto", a.disp, map[string]string{"driverId": "D1", "routeId": "R1", "reason": "rain"}, &offer2); code != 201 {
		t.Fatalf("offer: %d", code)
	}
	card2 := `#inbox li[data-kind="offer"][data-id="` + offer2.VTOID + `"]`
	waitJS(t, ctx, "the second offer", `!!document.querySelector('`+card2+`[data-state="open"]')`)
	post := func(driver, url string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`navigator.serviceWorker.dispatchEvent(new MessageEvent('message',
			{ data: { type: 'depot:push', url: '`+url+`', driverId: '`+driver+`' } }))`)); err != nil {
			t.Fatal(err)
		}
	}
	post("D2", "#answer=accept:"+offer2.VTOID)
	post("D1", "#answer=decline:"+offer2.VTOID)
	waitJS(t, ctx, "declined, as the notification's button said", `!!document.querySelector('`+card2+`[data-answer="acked"][data-state="declined"][data-highlight]') &&
		!document.querySelector('`+card+`[data-highlight]')`)

	// The rest needs the depot's Web Push API.
	var vapid struct {
		PublicKey string `json:"publicKey"`
	}
	if code := a.request(t, "GET", "/api/v1/push/vapid", "", nil, &vapid); code != 200 || vapid.PublicKey == "" {
		t.Fatalf("GET /api/v1/push/vapid: %d %+v (Web Push must be on in the appliance)", code, vapid)
	}
	waitJS(t, ctx, "the switch, off", `!document.getElementById('push-card').hidden && !document.getElementById('push').checked &&
		document.getElementById('push-status').dataset.state === 'off' && window.__pushStub.subscribes === 0`)

	// targets is what the admin sees of D1's push targets.
	targets := func() []map[string]any {
		t.Helper()
		var ds []struct {
			DriverID string           `json:"driverId"`
			Push     []map[string]any `json:"push"`
		}
		if code := a.request(t, "GET", "/api/v1/devices", a.admin, nil, &ds); code != 200 {
			t.Fatalf("GET /api/v1/devices: %d", code)
		}
		for _, d := range ds {
			if d.DriverID == "D1" {
				return d.Push
			}
		}
		t.Fatalf("no device of D1 in %+v", ds)
		return nil
	}
	oneTarget := func(what string) {
		t.Helper()
		checkFor(t, 5*time.Second, func() error {
			ts := targets()
			if len(ts) != 1 || ts[0]["kind"] != "webpush" || ts[0]["id"] == "" || ts[0]["created"] == nil {
				return fmt.Errorf("%s: D1's push targets %v", what, ts)
			}
			return nil
		})
	}
	noTarget := func(what string) {
		t.Helper()
		checkFor(t, 5*time.Second, func() error {
			if ts := targets(); len(ts) != 0 {
				return fmt.Errorf("%s: D1's push targets %v", what, ts)
			}
			return nil
		})
	}
	on := `document.getElementById('push').checked && document.getElementById('push-status').dataset.state === 'on' &&
		document.getElementById('push-status').textContent === 'On: this phone is woken for offers and rescues'`
	off := `!document.getElementById('push').checked && document.getElementById('push-status').dataset.state === 'off'`

	// On: subscribed with the depot's key, registered as D1's target.
	noTarget("before")
	click(t, ctx, `#push`)
	waitJS(t, ctx, "the switch on", on+` && window.__pushStub.subscribes === 1 && window.__pushStub.key === '`+strings.TrimRight(vapid.PublicKey, "=")+`' &&
		localStorage.getItem('depot.driver.push.D1') === '1'`)
	oneTarget("turned on")

	// The next start registers the same subscription again: still one target.
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "still on after a reload, with no new subscription", on+` && window.__pushStub.subscribes === 0`)
	oneTarget("after a reload")

	// Off: the depot told, the subscription dropped.
	click(t, ctx, `#push`)
	waitJS(t, ctx, "the switch off", off+` && window.__pushStub.unsubscribes === 1 && window.__pushStub.key === null &&
		localStorage.getItem('depot.driver.push.D1') === null`)
	noTarget("turned off")

	// On again, then signing out: the depot is told first.
	click(t, ctx, `#push`)
	waitJS(t, ctx, "the switch on again", on)
	oneTarget("on again")
	click(t, ctx, `#signout`)
	click(t, ctx, `#signout-yes`)
	waitJS(t, ctx, "signed out", `!document.getElementById('pair').hidden && localStorage.getItem('depot.driver') === null &&
		window.__pushStub.key === null`)
	noTarget("signed out")
	waitJS(t, ctx, "no CSP refusals", `window.__driver.csp.length === 0`)
}
