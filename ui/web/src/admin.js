// The admin page (admin.html, docs/admin.md): users, handhelds and the box,
// for admins only (the API refuses everyone else). It signs in as the
// dashboard does (login.js: the token in sessionStorage, so the dashboard's
// sign-in carries over in the same tab) and only calls the REST API.
// Every value from the network becomes text (dom.js el / textContent),
// never markup: user names and app names are anyone's to choose. The
// set-up QR is the depot's own PNG, shown as a data: URL (the page's
// Content-Security-Policy allows images from 'self' and data: only).
import './style.css';
import './admin.css';
import { $, el } from './dom.js';
import { isObj } from './eventlog.js';
import { num, text, upstreamSummary, pushSummary } from './checks.js';
import { Session, showLogin, bindLogin } from './login.js';
import {
  formatBytes, formatDuration, formatAge, formatTime, checkPassword, checkNewUser, checkNewDevice,
  cleanUsers, userActions, joinDevices, cleanBackups, feedSummary,
} from './adminlogic.js';

export const REFRESH_EVERY = 15000;

// The page's state, for tests and curious operators: users, devices, box,
// backups, qr (the set-up shown), csp (what the policy refused: stays empty).
const page = { users: [], devices: [], box: null, backups: [], qr: null, csp: [], me: null, loaded: 0 };
window.__admin = page;
document.addEventListener('securitypolicyviolation', (e) => {
  if (page.csp.length < 20) page.csp.push(`${e.effectiveDirective} ${String(e.blockedURI).slice(0, 100)}`);
});

const session = new Session({
  storage: sessionStorage,
  fetch: (...a) => fetch(...a),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (t) => clearTimeout(t),
  serverNow: () => Date.now(),
  onEnd(msg) {
    $('admin').hidden = true;
    $('denied').hidden = true;
    forget();
    showLogin(msg);
  },
  onRenewed() {},
});
const api = (...a) => session.api(...a);
bindLogin(session, () => start());

// forget drops what the page showed: whoever signs in next at this
// screen may not be an admin.
function forget() {
  Object.assign(page, { users: [], devices: [], box: null, backups: [], me: null });
  closeSetup();
  for (const id of ['users', 'devices', 'backups']) $(id).tBodies[0].replaceChildren();
  $('box').replaceChildren();
  for (const id of ['note', 'users-err', 'devices-err', 'box-err', 'user-form-err', 'device-form-err', 'backup-msg']) $(id).textContent = '';
  if ($('dlg').open) $('dlg').close();
}

function isAdmin() { return !!session.auth && session.auth.role === 'admin'; }
function note(msg) { $('note').textContent = msg; }
function fail(id, e) { if (session.auth) $(id).textContent = e && e.message ? e.message : String(e); }

// ---- the dialog: a confirmation, or one input ----
// ask shows the dialog; run(value) does the work and may throw, and then
// its message shows in the dialog, which stays open. It resolves true
// when run succeeded, false when cancelled.
function ask({ title, body = '', label = '', type = 'password', ok = 'OK', run }) {
  return new Promise((resolve) => {
    const d = $('dlg');
    const form = $('dlg-form');
    const inp = $('dlg-input');
    $('dlg-title').textContent = title;
    $('dlg-text').textContent = body;
    $('dlg-label').hidden = !label;
    $('dlg-label-text').textContent = label;
    inp.type = type;
    inp.value = '';
    $('dlg-error').textContent = '';
    $('dlg-ok').textContent = ok;
    let done = false;
    const finish = (v) => {
      if (done) return;
      done = true;
      form.removeEventListener('submit', onSubmit);
      $('dlg-cancel').removeEventListener('click', onCancel);
      d.removeEventListener('close', onClose);
      if (d.open) d.close();
      resolve(v);
    };
    async function onSubmit(ev) {
      ev.preventDefault();
      $('dlg-ok').disabled = true;
      try {
        await run(inp.value);
        finish(true);
      } catch (e) {
        $('dlg-error').textContent = e && e.message ? e.message : String(e);
      } finally {
        $('dlg-ok').disabled = false;
      }
    }
    function onCancel() { finish(false); }
    function onClose() { finish(false); } // Escape
    form.addEventListener('submit', onSubmit);
    $('dlg-cancel').addEventListener('click', onCancel);
    d.addEventListener('close', onClose);
    d.showModal();
    (label ? inp : $('dlg-ok')).focus();
  });
}

// ---- users ----
async function loadUsers() {
  try {
    const list = await api('api/v1/users');
    if (!isAdmin()) return; // signed out meanwhile
    page.users = cleanUsers(list);
    $('users-err').textContent = '';
    renderUsers();
  } catch (e) { fail('users-err', e); }
}

// action is a row's button: allowed is true or why not. A button that may
// not be used stays focusable (aria-disabled) and says why when pressed.
function action(label, who, allowed, fn, cls = '') {
  const ok = allowed === true;
  return el('button', {
    type: 'button', className: 'rowbtn' + (cls ? ' ' + cls : ''), 'aria-label': `${label}: ${who}`,
    'aria-disabled': ok ? null : 'true', title: ok ? null : allowed, dataset: { act: label },
    onclick: () => (ok ? fn() : ($('users-err').textContent = allowed)),
  }, label);
}

function renderUsers() {
  const rows = page.users.map((u) => {
    const acts = userActions(u, page.me, page.users);
    const to = u.role === 'admin' ? 'dispatcher' : 'admin';
    return el('tr', { dataset: { user: u.username } },
      el('td', null, u.username, u.username === page.me ? el('span', { className: 'muted' }, ' (you)') : null),
      el('td', null, u.role),
      el('td', { className: u.disabled ? 'state-disabled' : '' }, u.disabled ? 'disabled' : 'enabled'),
      el('td', null, formatTime(u.created)),
      el('td', null,
        action(`Make ${to}`, u.username, acts.role, () => changeUser(u, { role: to }, `${u.username} is now ${to === 'admin' ? 'an admin' : 'a dispatcher'}.`)),
        u.disabled
          ? action('Enable', u.username, true, () => changeUser(u, { disabled: false }, `${u.username} may sign in again.`))
          : action('Disable', u.username, acts.disable, () => disableUser(u)),
        action('Reset password', u.username, acts.password, () => resetPassword(u)),
        action('Delete', u.username, acts.remove, () => deleteUser(u), 'danger')));
  });
  $('users').tBodies[0].replaceChildren(...rows);
}

async function changeUser(u, body, done) {
  $('users-err').textContent = '';
  try {
    await api('api/v1/users/' + encodeURIComponent(u.username), 'PATCH', body);
    note(done);
  } catch (e) { fail('users-err', e); }
  await loadUsers();
}

async function disableUser(u) {
  const yes = await ask({
    title: `Disable ${u.username}?`, ok: 'Disable',
    body: `${u.username} is signed out everywhere at once and cannot sign in until enabled again.`,
    run: () => api('api/v1/users/' + encodeURIComponent(u.username), 'PATCH', { disabled: true }),
  });
  if (yes) note(`${u.username} is disabled.`);
  await loadUsers();
}

async function resetPassword(u) {
  const self = u.username === page.me;
  const yes = await ask({
    title: `New password for ${u.username}`, label: 'New password', ok: 'Set password',
    body: `At least 8 characters. ${self ? 'You are' : u.username + ' is'} signed out everywhere; tell ${self ? 'no one' : 'them'} the new password in person.`,
    run: async (p) => {
      const bad = checkPassword(p);
      if (bad) throw new Error(bad);
      await api('api/v1/users/' + encodeURIComponent(u.username) + '/password', 'POST', { password: p });
    },
  });
  if (yes) {
    if (self) { session.end('Your password was changed. Sign in with the new one.'); return; }
    note(`The password of ${u.username} is changed.`);
  }
}

async function deleteUser(u) {
  const yes = await ask({
    title: `Delete ${u.username}?`, ok: 'Delete',
    body: `${u.username} is signed out everywhere at once and cannot sign in again. This cannot be undone.`,
    run: () => api('api/v1/users/' + encodeURIComponent(u.username), 'DELETE'),
  });
  if (yes) note(`${u.username} is deleted.`);
  await loadUsers();
}

$('user-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const body = { username: $('nu-name').value.trim(), role: $('nu-role').value, password: $('nu-pass').value };
  const bad = checkNewUser(body);
  $('user-form-err').textContent = bad || '';
  if (bad) return;
  $('nu-submit').disabled = true;
  try {
    await api('api/v1/users', 'POST', body);
    note(`${body.username} is added as ${body.role}.`);
    $('nu-name').value = '';
    $('nu-pass').value = '';
  } catch (e) { fail('user-form-err', e); }
  $('nu-submit').disabled = false;
  await loadUsers();
});

// ---- handhelds ----
async function loadDevices() {
  try {
    const [creds, state] = await Promise.all([api('api/v1/devices'), api('api/v1/state').catch(() => null)]);
    if (!isAdmin()) return;
    page.devices = joinDevices(creds, state);
    $('devices-err').textContent = '';
    renderDevices();
  } catch (e) { fail('devices-err', e); }
}

function renderDevices() {
  const now = Date.now();
  const rows = page.devices.map((d) => el('tr', { dataset: { driver: d.driverId } },
    el('td', null, d.driverId),
    el('td', null, d.name),
    el('td', null, formatTime(d.created)),
    el('td', null, formatAge(d.lastSeen, now)),
    el('td', null, d.presence),
    el('td', null, d.app),
    el('td', { className: d.battery.low ? 'low' : '' }, d.battery.text),
    el('td', null,
      el('button', { type: 'button', className: 'rowbtn', 'aria-label': `Set-up QR: ${d.driverId}`, dataset: { act: 'setup' },
        onclick: () => showSetup(d.driverId, null) }, 'Set-up QR'),
      el('button', { type: 'button', className: 'rowbtn danger', 'aria-label': `Revoke: ${d.driverId}`, dataset: { act: 'revoke' },
        onclick: () => revokeDevice(d.driverId) }, 'Revoke'))));
  $('devices').tBodies[0].replaceChildren(...rows);
  $('devices-empty').hidden = rows.length > 0;
}

async function revokeDevice(id) {
  const yes = await ask({
    title: `Revoke the handheld of ${id}?`, ok: 'Revoke',
    body: `Its credential stops working at once and its live session ends. To use it again, provision it anew.`,
    run: () => api('api/v1/devices/' + encodeURIComponent(id), 'DELETE'),
  });
  if (yes) {
    note(`The handheld of ${id} is revoked.`);
    if (page.qr && page.qr.driver === id) closeSetup();
  }
  await loadDevices();
}

$('device-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const body = { driverId: $('nd-driver').value.trim(), name: $('nd-name').value.trim() };
  const bad = checkNewDevice(body);
  $('device-form-err').textContent = bad || '';
  if (bad) return;
  $('nd-submit').disabled = true;
  try {
    const r = await api('api/v1/devices', 'POST', body);
    note(`The handheld of ${body.driverId} is provisioned.`);
    $('nd-driver').value = '';
    $('nd-name').value = '';
    showSetup(body.driverId, isObj(r) ? r : null);
  } catch (e) { fail('device-form-err', e); }
  $('nd-submit').disabled = false;
  await loadDevices();
});

// showSetup shows a handheld's set-up QR; cred is the answer of its
// provisioning (the token, shown once), or null.
function showSetup(id, cred) {
  page.qr = { driver: id, kind: $('setup-kind').value, loaded: false, error: '' };
  $('setup').hidden = false;
  $('setup-driver').textContent = id;
  $('setup-token-line').hidden = !cred;
  $('setup-user').textContent = cred ? text(cred.mqttUsername) : '';
  $('setup-token').textContent = cred ? text(cred.token) : '';
  loadQR();
  $('setup-kind').focus();
}

function closeSetup() {
  page.qr = null;
  $('setup').hidden = true;
  $('setup-img').hidden = true;
  $('setup-img').removeAttribute('src');
  $('setup-token').textContent = '';
}

async function loadQR() {
  const q = page.qr;
  if (!q || !session.auth) return;
  q.kind = $('setup-kind').value;
  const img = $('setup-img');
  img.hidden = true;
  $('setup-err').textContent = '';
  let r;
  try {
    r = await fetch(`api/v1/devices/${encodeURIComponent(q.driver)}/setup?kind=${encodeURIComponent(q.kind)}&format=png`,
      { cache: 'no-store', headers: { Authorization: 'Bearer ' + session.auth.token } });
  } catch {
    q.error = 'The depot cannot be reached.';
    $('setup-err').textContent = q.error;
    return;
  }
  if (page.qr !== q) return;
  if (r.status === 401) { session.end('Your session has ended. Please sign in again.'); return; }
  if (!r.ok) {
    const b = await r.json().catch(() => ({}));
    q.error = (isObj(b) && typeof b.error === 'string' && b.error) || `HTTP ${r.status}`;
    $('setup-err').textContent = q.error;
    return;
  }
  // Only the depot's PNG becomes an image; anything else is refused.
  if ((r.headers.get('Content-Type') || '').split(';')[0].trim() !== 'image/png') {
    q.error = 'The depot did not answer with a PNG image.';
    $('setup-err').textContent = q.error;
    return;
  }
  const url = await new Promise((resolve, reject) => {
    r.blob().then((b) => {
      const fr = new FileReader();
      fr.onload = () => resolve(fr.result);
      fr.onerror = () => reject(fr.error);
      fr.readAsDataURL(new Blob([b], { type: 'image/png' }));
    }, reject);
  }).catch(() => '');
  if (page.qr !== q || typeof url !== 'string' || !url.startsWith('data:image/png;base64,')) return;
  img.onload = () => { if (page.qr === q) q.loaded = img.naturalWidth > 0; };
  img.alt = `Set-up QR code of ${q.driver} for ${$('setup-kind').selectedOptions[0].textContent}`;
  img.src = url;
  img.hidden = false;
}
$('setup-kind').addEventListener('change', () => loadQR());
$('setup-close').addEventListener('click', () => closeSetup());

// ---- the box ----
async function loadBox() {
  try {
    const b = await api('api/v1/admin/box');
    if (!isAdmin()) return;
    if (!isObj(b)) throw new Error('unexpected answer');
    page.box = b;
    page.backups = cleanBackups(b);
    $('box-err').textContent = '';
    renderBox();
  } catch (e) { fail('box-err', e); }
}

function renderBox() {
  const b = page.box;
  const now = Date.now();
  const st = isObj(b.store) ? b.store : {};
  const ret = isObj(b.retention) ? b.retention : {};
  const bk = isObj(b.backups) ? b.backups : {};
  const sh = isObj(b.storeHealth) ? b.storeHealth : null;
  const feed = feedSummary(b.feed);
  const up = upstreamSummary(b.upstream);
  const push = pushSummary(b.push);
  const last = page.backups[0];
  const facts = [
    ['Depot', text(b.depot)],
    ['Version', text(b.version)],
    ['Uptime', formatDuration(b.uptimeS)],
    ['Connected clients', num(b.clients) ?? '—'],
    ['Store size', typeof st.error === 'string' ? `unknown: ${st.error}` : formatBytes(st.bytes)],
    ['Store growth', num(st.bytesPerDay) !== null ? `about ${formatBytes(st.bytesPerDay)} a day` : 'too young to estimate'],
    ['Events kept', num(st.events) !== null ? `${st.events}${st.oldestEvent ? ', since ' + formatTime(st.oldestEvent) : ''}` : '—'],
    ['Store writes', sh ? (sh.ok === true ? `ok (${num(sh.pending) ?? 0} pending)` : `FAILING${sh.error ? ': ' + text(sh.error) : ''}`) : '—', sh && sh.ok !== true],
    ['Retention', `events ${formatDuration(ret.eventsS)}, GPS history ${formatDuration(ret.historyS)}`],
    ['Backups', num(bk.intervalS) ? `every ${formatDuration(bk.intervalS)}, the newest ${num(bk.keep) ?? '—'} kept` : `only on demand, the newest ${num(bk.keep) ?? '—'} kept`],
    ['Last backup', last ? `${formatAge(last.at, now)} (${formatTime(last.at)})` : 'never', !last],
    ['Route feed', feed.text, feed.bad],
    ['Upstream (fleet)', up ? up.text : 'not configured', up && up.bad],
    ['Push', push ? push.text : 'off', push && push.bad],
  ];
  $('box').replaceChildren(...facts.flatMap(([k, v, bad]) => [el('dt', null, k), el('dd', { className: bad ? 'bad' : '', dataset: { fact: k } }, String(v))]));
  $('backups').tBodies[0].replaceChildren(...page.backups.map((x) => el('tr', null,
    el('td', null, `${formatTime(x.at)} (${formatAge(x.at, now)})`), el('td', null, x.file), el('td', { className: 'num' }, formatBytes(x.bytes)))));
  $('backups-empty').hidden = page.backups.length > 0;
  page.loaded++;
}

$('backup-now').addEventListener('click', async () => {
  const btn = $('backup-now');
  btn.disabled = true;
  $('backup-msg').textContent = 'Backing up…';
  try {
    const r = await api('api/v1/admin/backup', 'POST');
    const f = isObj(r) ? text(r.file).split('/').pop() : '';
    $('backup-msg').textContent = `Backup written: ${f}`;
  } catch (e) {
    $('backup-msg').textContent = '';
    fail('box-err', e);
  }
  btn.disabled = false;
  await loadBox();
});

// ---- start ----
async function start() {
  $('logout').hidden = false;
  $('who').textContent = `(${session.auth.username})`;
  if (session.auth.role !== 'admin') {
    $('admin').hidden = true;
    $('denied').hidden = false;
    return;
  }
  $('denied').hidden = true;
  $('admin').hidden = false;
  page.me = session.auth.username;
  session.schedule();
  api('api/v1/config').then((c) => { if (isObj(c)) $('depot').textContent = text(c.depot); }).catch(() => {});
  await Promise.all([loadUsers(), loadDevices(), loadBox()]);
}

setInterval(() => {
  if (!isAdmin() || $('admin').hidden) return;
  loadDevices();
  loadBox();
}, REFRESH_EVERY);
if (session.auth) start(); else showLogin();
