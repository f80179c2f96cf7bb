package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// signInAt opens path and signs in through its login form.
func signInAt(t testing.TB, ctx context.Context, a *testApp, path, user, password string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+a.HTTPAddr()+path)); err != nil {
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

func do(t testing.TB, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// TestAdminBrowserUsersAndBox: an admin reaches the admin page from the
// dashboard's link; adds a user in the page (a refusal of the API, a name
// taken, shows as its message), changes her role there and back and sets
// her password; disables a dispatcher (by keyboard), whose token stops
// at once; presses "back up now" and sees the new backup listed. The new
// user signs in: as a dispatcher she sees no admin link on the dashboard,
// the admin page says admins only, and the admin APIs answer her 403. No
// Content-Security-Policy refusal on the way.
func TestAdminBrowserUsersAndBox(t *testing.T) {
	// No scheduled backup (one would be taken at start): only the button's.
	a := startApp(t, "", func(c *ServeConfig) { c.BackupInterval = 0 })
	ctx := browser(t)
	signInAt(t, ctx, a, "/", "admin", adminPassword)
	waitJS(t, ctx, "the admin link", `!document.getElementById('admin-link').hidden`)
	do(t, ctx, chromedp.Click(chromedp.CSS("#admin-link")))
	waitJS(t, ctx, "the admin page with its users", `location.pathname === '/admin' && !!window.__admin &&
		document.querySelectorAll('#users tbody tr').length === 2 && document.querySelector('#users tr[data-user="ana"]') !== null`)
	waitJS(t, ctx, "the box", `(() => { const d = document.querySelector('#box [data-fact="Version"]');
		return d && d.textContent !== '' && document.querySelector('#box [data-fact="Store size"]').textContent.includes('B'); })()`)
	waitJS(t, ctx, "no backup yet", `document.querySelector('#box [data-fact="Last backup"]').textContent === 'never' &&
		document.querySelector('#box [data-fact="Backups"]').textContent.startsWith('only on demand') &&
		!document.getElementById('backups-empty').hidden`)

	// The form says what is wrong before anything is sent …
	do(t, ctx, chromedp.SendKeys(chromedp.CSS("#nu-name"), "cy"), chromedp.SendKeys(chromedp.CSS("#nu-pass"), "short"),
		chromedp.Click(chromedp.CSS("#nu-submit")))
	waitJS(t, ctx, "the password rule", `document.getElementById('user-form-err').textContent.includes('8 to 72')`)
	// … and the API's refusal shows as its message.
	do(t, ctx, chromedp.SetValue(chromedp.CSS("#nu-name"), "ana"), chromedp.SetValue(chromedp.CSS("#nu-pass"), "cy-secret-1"),
		chromedp.Click(chromedp.CSS("#nu-submit")))
	waitJS(t, ctx, "the name taken", `document.getElementById('user-form-err').textContent.includes('already exists')`)
	do(t, ctx, chromedp.SetValue(chromedp.CSS("#nu-name"), "cy"), chromedp.SetValue(chromedp.CSS("#nu-pass"), "cy-secret-1"),
		chromedp.Click(chromedp.CSS("#nu-submit")))
	waitJS(t, ctx, "cy listed", `(() => { const r = document.querySelector('#users tr[data-user="cy"]');
		return r && r.textContent.includes('dispatcher') && r.textContent.includes('enabled') &&
			document.getElementById('user-form-err').textContent === ''; })()`)

	// Her role, there and back; her password, set by the admin in the
	// dialog (a short one is refused there first).
	do(t, ctx, chromedp.Click(chromedp.CSS(`#users tr[data-user="cy"] [data-act="Make admin"]`)))
	waitJS(t, ctx, "cy an admin", `(() => { const r = document.querySelector('#users tr[data-user="cy"]');
		return r && r.children[1].textContent === 'admin' && r.querySelector('[data-act="Make dispatcher"]') !== null; })()`)
	do(t, ctx, chromedp.Click(chromedp.CSS(`#users tr[data-user="cy"] [data-act="Make dispatcher"]`)))
	waitJS(t, ctx, "cy a dispatcher again", `document.querySelector('#users tr[data-user="cy"]').children[1].textContent === 'dispatcher'`)
	do(t, ctx, chromedp.Click(chromedp.CSS(`#users tr[data-user="cy"] [data-act="Reset password"]`)))
	waitJS(t, ctx, "the password dialog", `document.getElementById('dlg').open && document.activeElement.id === 'dlg-input'`)
	do(t, ctx, chromedp.SendKeys(chromedp.CSS("#dlg-input"), "short"), chromedp.Click(chromedp.CSS("#dlg-ok")))
	waitJS(t, ctx, "too short", `document.getElementById('dlg').open && document.getElementById('dlg-error').textContent.includes('8 to 72')`)
	do(t, ctx, chromedp.SetValue(chromedp.CSS("#dlg-input"), "cy-secret-2"), chromedp.Click(chromedp.CSS("#dlg-ok")))
	waitJS(t, ctx, "the password set", `!document.getElementById('dlg').open &&
		document.getElementById('note').textContent === 'The password of cy is changed.'`)

	// Yourself: the row's buttons say why not, and send nothing.
	do(t, ctx, chromedp.Click(chromedp.CSS(`#users tr[data-user="admin"] [data-act="Delete"]`)))
	waitJS(t, ctx, "why not", `document.getElementById('users-err').textContent === 'You cannot delete yourself.'`)

	// Disable ana, with the keyboard: her token stops at once.
	do(t, ctx, chromedp.Focus(chromedp.CSS(`#users tr[data-user="ana"] [data-act="Disable"]`)), chromedp.KeyEvent(kb.Enter))
	waitJS(t, ctx, "the confirmation", `document.getElementById('dlg').open && document.activeElement.id === 'dlg-ok'`)
	do(t, ctx, chromedp.KeyEvent(kb.Enter))
	waitJS(t, ctx, "ana disabled", `!document.getElementById('dlg').open &&
		document.querySelector('#users tr[data-user="ana"]').textContent.includes('disabled')`)
	if code := a.request(t, "GET", "/api/v1/routes", a.disp, nil, nil); code != 401 {
		t.Fatalf("a disabled dispatcher's token: HTTP %d, want 401", code)
	}

	// Back up now: the new backup is listed and the last backup is now.
	// The page ages a backup from its start; under the race detector on a
	// busy machine, gzipping the store's preallocated segment takes seconds
	// (once more than the 10 s that still read "just now"), so "now" is
	// within the minute, and the wait is as long.
	do(t, ctx, chromedp.Click(chromedp.CSS("#backup-now")))
	waitJSFor(t, ctx, time.Minute, "the backup listed", `document.getElementById('backup-msg').textContent.startsWith('Backup written: depot-') &&
		document.querySelectorAll('#backups tbody tr').length === 1 &&
		/^(just now|\d+ s ago) \(/.test(document.querySelector('#box [data-fact="Last backup"]').textContent)`)
	names, err := os.ReadDir(backupDir(a.Config.Data))
	if err != nil || len(names) != 1 {
		t.Fatalf("backups on disk: %v %v", names, err)
	}
	if s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#backups tbody tr').textContent`)); !strings.Contains(s, names[0].Name()) {
		t.Fatalf("backup row %q, file %s", s, names[0].Name())
	}
	waitJS(t, ctx, "no CSP refusals", `window.__admin.csp.length === 0`)
	if dir := os.Getenv("DEPOT_SCREENSHOTS"); dir != "" { // the README's picture
		screenshot(t, ctx, filepath.Join(dir, "admin.png"))
	}

	// Cy signs in (after the admin signs out): a dispatcher.
	do(t, ctx, chromedp.Click(chromedp.CSS("#logout")))
	waitJS(t, ctx, "signed out", `!document.getElementById('login').hidden && document.getElementById('admin').hidden`)
	do(t, ctx, chromedp.SendKeys(chromedp.CSS("#login-user"), "cy"), chromedp.SendKeys(chromedp.CSS("#login-pass"), "cy-secret-2"),
		chromedp.Click(chromedp.CSS("#login-submit")))
	waitJS(t, ctx, "admins only", `!document.getElementById('denied').hidden && document.getElementById('admin').hidden &&
		document.querySelector('#users tbody').children.length === 0`)
	do(t, ctx, chromedp.Navigate("http://"+a.HTTPAddr()+"/"))
	waitJS(t, ctx, "cy's dashboard", `document.getElementById('who').textContent === '(cy)' &&
		document.querySelectorAll('#routes tbody tr').length === 2`)
	waitJS(t, ctx, "no admin link", `document.getElementById('admin-link').hidden`)
	waitJS(t, ctx, "no CSP refusals", `window.__depot.csp.length === 0`)
	var cy struct{ Token string }
	if code := a.request(t, "POST", "/api/v1/auth/login", "", map[string]string{"username": "cy", "password": "cy-secret-2"}, &cy); code != 200 {
		t.Fatalf("cy login: HTTP %d", code)
	}
	for _, r := range [][2]string{{"GET", "/api/v1/users"}, {"PATCH", "/api/v1/users/ana"}, {"POST", "/api/v1/users/ana/password"},
		{"GET", "/api/v1/devices"}, {"POST", "/api/v1/devices"}, {"GET", "/api/v1/admin/box"}, {"POST", "/api/v1/admin/backup"}} {
		if code := a.request(t, r[0], r[1], cy.Token, map[string]string{}, nil); code != 403 {
			t.Errorf("%s %s as a dispatcher: HTTP %d, want 403", r[0], r[1], code)
		}
	}
}

// TestAdminBrowserDevices: the handhelds list shows a handheld's last fix,
// presence and battery; an admin provisions a handheld in the page and
// its set-up QR loads (the depot's PNG, as an image); revoking a live
// handheld in the page (after a confirmation) ends its MQTT session.
func TestAdminBrowserDevices(t *testing.T) {
	a := startApp(t, "", nil)
	drv := a.driver(t, "D1")
	done := make(chan struct{})
	go func() { <-drv.Done(); close(done) }()
	// D2's handheld says where it is and how its battery is.
	if code, err := publish(a.driver(t, "D2"), "depot/DEMO1/drivers/D2/gps", 1, fixJSON(38.6012, -121.4711, time.Now())); err != nil || code != 0 {
		t.Fatalf("publish: code 0x%02x, %v", code, err)
	}
	ctx := browser(t)
	signInAt(t, ctx, a, "/admin", "admin", adminPassword)
	waitJS(t, ctx, "the handhelds", `document.querySelectorAll('#devices tbody tr').length === 2 &&
		document.querySelector('#devices tr[data-driver="D1"]') !== null`)
	waitJSFor(t, ctx, 20*time.Second, "D2's health", `(() => { const c = document.querySelector('#devices tr[data-driver="D2"]').children;
		return (c[3].textContent === 'just now' || c[3].textContent.endsWith(' s ago')) && c[4].textContent === 'online' && c[6].textContent === '81 %'; })()`)
	if s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#devices tr[data-driver="D1"]').children[3].textContent`)); s != "never" {
		t.Fatalf("D1 (connected, no fix) last seen %q", s)
	}

	do(t, ctx, chromedp.SendKeys(chromedp.CSS("#nd-driver"), "D9"), chromedp.SendKeys(chromedp.CSS("#nd-name"), "<b>spare</b>"),
		chromedp.Click(chromedp.CSS("#nd-submit")))
	waitJS(t, ctx, "D9 listed, its name as text", `(() => { const r = document.querySelector('#devices tr[data-driver="D9"]');
		return r && r.textContent.includes('<b>spare</b>') && r.querySelector('b') === null; })()`)
	waitJSFor(t, ctx, 20*time.Second, "the set-up QR loaded", `(() => { const q = window.__admin.qr, i = document.getElementById('setup-img');
		return q && q.driver === 'D9' && q.loaded && !i.hidden && i.complete && i.naturalWidth > 100 &&
			i.src.startsWith('data:image/png;base64,') && i.alt.includes('D9'); })()`)
	waitJS(t, ctx, "the token shown once", `document.getElementById('setup-token').textContent.length > 20 &&
		document.getElementById('setup-user').textContent === 'D9'`)
	// Another kind of set-up for the same device.
	do(t, ctx, chromedp.SetValue(chromedp.CSS("#setup-kind"), "owntracks"))
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById('setup-kind').dispatchEvent(new Event('change'))`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the OwnTracks QR loaded", `(() => { const q = window.__admin.qr;
		return q && q.kind === 'owntracks' && q.loaded && document.getElementById('setup-err').textContent === ''; })()`)

	// Revoke D1, whose handheld is connected: confirm, and its session ends.
	do(t, ctx, chromedp.Click(chromedp.CSS(`#devices tr[data-driver="D1"] [data-act="revoke"]`)))
	waitJS(t, ctx, "the confirmation", `document.getElementById('dlg').open &&
		document.getElementById('dlg-title').textContent.includes('D1')`)
	select {
	case <-done:
		t.Fatal("disconnected before the confirmation")
	default:
	}
	do(t, ctx, chromedp.Click(chromedp.CSS("#dlg-ok")))
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the revoked handheld is still connected")
	}
	waitJS(t, ctx, "D1 gone", `document.querySelector('#devices tr[data-driver="D1"]') === null &&
		document.getElementById('note').textContent.includes('D1 is revoked')`)
	if _, code, _ := mqttConnect(a.MQTTAddr(), "drv-D1", "D1", a.tokens["D1"]); code != 0x86 {
		t.Fatalf("revoked token: CONNACK 0x%02x", code)
	}
	// A set-up no longer held says so.
	do(t, ctx, chromedp.Click(chromedp.CSS(`#devices tr[data-driver="D2"] [data-act="setup"]`)))
	waitJS(t, ctx, "the set-up gone", `document.getElementById('setup-err').textContent.includes('provision it again') &&
		document.getElementById('setup-img').hidden`)
	waitJS(t, ctx, "no CSP refusals", `window.__admin.csp.length === 0`)
}
