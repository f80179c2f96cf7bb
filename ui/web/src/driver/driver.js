// Depot Command Central: the driver's phone (docs/handhelds.md).
//
// Paired once by the QR code's link, /driver/#pair=<one-time code> (or
// #driver=<id>&token=<token>): the fragment leaves the address bar at once,
// and the credential the depot gives for it (pairing.js) goes to
// localStorage. What the phone shows is the depot's answer to GET
// /api/v1/driver/state (on start, on every (re)connect, every 30 s) with
// the driver's inbox merged in as it arrives over MQTT (state.js). Answers
// and positions go back over MQTT at QoS 1, so the phone knows from the
// PUBACK that the depot took an answer, or why it did not. With "Notify
// me when the app is closed" on, the depot wakes the phone by Web Push
// (push.js, sw.js); a notification's click opens the app at #msg=<ref> or
// #answer=<action>:<ref>, an answer then kept and sent like the card's.
//
// Values from the network never become markup: the page is built with
// el() (text nodes and checked attributes) under a CSP without inline
// script or style.
import { connect as mqttConnect, BAD_CREDENTIALS, NOT_AUTHORIZED } from '../mqttws.js';
import { $, el, SHAPES } from '../dom.js';
import { isObj } from '../eventlog.js';
import { showNum, statusOf } from '../checks.js';
import { Store, loadCred, saveCred, forgetCred, basicAuth, clientId, topic, countdown,
  answeredEnvelope, reached, final, isConflict, Pending, forgetPending, saveState, loadState, forgetState } from './state.js';
import { parseLink, redeem, decide, failureText } from './pairing.js';
import { backoff } from './backoff.js';
import { gpsPayload, Throttle } from './gps.js';
import { vapid, turnOn, turnOff, wanted, want, statusText, parseFragment, fromMessage, ANSWER_CACHE, answerKey } from './push.js';
import './driver.css';

const SHARE_KEY = 'depot.driver.share';
const REFRESH_EVERY = 30000;
// Positions wait in the MQTT client's queue (256) only up to here while
// the phone is offline: the rest is kept for the driver's answers.
const GPS_ROOM = 128;

const app = {
  cred: null,
  store: new Store(),
  client: null,
  conn: 'connecting',
  revoked: false,
  answers: new Map(), // ref -> {status: 'sending' | 'acked' | 'refused', action, reason, conflict}
  pending: null, // Pending: the answers not acknowledged yet, kept in localStorage
  sent: new Set(), // the refs of those handed to this page's MQTT client
  sharing: false,
  watch: null,
  lastPos: null,
  lastSent: 0, // when the depot last acknowledged a position (local ms)
  lastTs: null, // the ts of the last position published
  gpsNote: '',
  refreshes: 0,
  push: { key: null, state: 'off', busy: false, synced: false, tries: 0 }, // Web Push (push.js)
  highlight: '', // the ref of the card a notification was for
  scrollTo: '', // and the same, until its card is drawn and scrolled to
  csp: [], // what the Content-Security-Policy refused: should stay empty
};
// For tests and the curious; the token in it is the one localStorage holds.
window.__driver = app;
document.addEventListener('securitypolicyviolation', (e) => {
  if (app.csp.length < 20) app.csp.push(`${e.effectiveDirective} ${String(e.blockedURI).slice(0, 100)}`);
});

const serverNow = () => app.store.serverNow(Date.now());
const clock = (ms, seconds) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', ...(seconds ? { second: '2-digit' } : {}) });

// ---- screens and the connection indicator ----
function show(screen) {
  for (const id of ['pairing', 'switch', 'pair', 'revoked', 'app']) $(id).hidden = id !== screen;
  const connects = screen === 'app' || screen === 'revoked'; // an unpaired phone connects to nothing
  $('foot').hidden = !connects;
  $('conn').hidden = !connects;
}

const CONN_WORDS = { connecting: 'Connecting…', connected: 'Connected', reconnecting: 'Reconnecting…', offline: 'Offline' };
function setConn(s) {
  app.conn = s;
  $('conn').dataset.conn = s;
  $('conn').querySelector('.label').textContent = CONN_WORDS[s];
}

// ---- the state answer ----
// refresh asks the depot what to show; true when it answered. A 401 means
// the pairing was revoked: the phone stops there. Every request of the app
// omits the browser's credentials (credentials: 'omit'; its own
// Authorization header still goes): a 401 then never raises the browser's
// own sign-in dialog, whatever the depot answers with it.
async function refresh() {
  const cred = app.cred;
  if (!cred || app.revoked) return false;
  const sentAt = Date.now();
  let r;
  try {
    r = await fetch('../api/v1/driver/state', { cache: 'no-store', credentials: 'omit', headers: { Authorization: basicAuth(cred) } });
  } catch {
    return false; // unreachable: the connection indicator says so
  }
  if (cred !== app.cred || app.revoked) return false;
  if (r.status === 401) { revoked(); return false; }
  if (!r.ok) return false;
  try {
    const a = await r.json();
    const receivedAt = Date.now();
    if (!app.store.answer(a, sentAt, receivedAt)) return true;
    saveState(localStorage, cred.driver, { answer: a, sentAt, receivedAt });
  } catch {
    return false;
  }
  app.refreshes++;
  render();
  if (!app.client) connect();
  syncPush(); // what the start could not do without the depot
  return true;
}

// load asks until the depot first answers: the MQTT topics need its id.
async function load(attempt = 0) {
  if (await refresh() || app.revoked || !app.cred) return;
  setConn(navigator.onLine === false || attempt >= 3 ? 'offline' : 'reconnecting');
  setTimeout(() => load(attempt + 1), backoff(attempt));
}

function revoked() {
  if (app.revoked) return;
  app.revoked = true;
  const c = app.client;
  app.client = null;
  if (c) { c.removeAllListeners('close'); c.end(); }
  stopWatch();
  setConn('offline');
  forgetState(localStorage, app.cred.driver); // a revoked phone (lost, or passed on) keeps none of the driver's messages
  dropPush(app.cred, false); // nor is it woken for them (the depot cannot be told: the credential is no more)
  show('revoked');
}

// ---- MQTT ----
// connect opens the phone's one MQTT session. A clean start, always: what
// the phone shows comes from the state answer, so the broker keeps no
// session. The client does not reconnect by itself: 'close' does, with
// backoff and jitter.
function connect() {
  const { depot } = app.store.m;
  const me = app.cred.driver;
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  const c = mqttConnect(`${proto}://${location.host}/mqtt`, {
    keepalive: 30, connectTimeout: 10000, username: me, password: app.cred.token, clientId: clientId(me),
  });
  app.client = c;
  let attempt = 0;
  let timer = 0;
  c.on('connect', () => {
    setConn('connected');
    sendPending(); // what a reload or a killed tab left unacknowledged, or what was answered before this
    c.subscribe([topic(depot, me, 'inbox')], { qos: 1 }, (err) => {
      if (err) { c.stream.destroy(); return; } // refused or cut: 'close' tries again, later each time
      attempt = 0;
      refresh(); // what happened while the phone was away
    });
  });
  c.on('close', () => {
    if (app.client !== c) return;
    setConn(navigator.onLine === false || attempt >= 4 ? 'offline' : 'reconnecting');
    clearTimeout(timer);
    timer = setTimeout(() => c.reconnect(), backoff(attempt++));
  });
  // A refused credential: the state answer says whether it was revoked
  // (401 stops the phone) or the broker had another reason (retry).
  c.on('error', (err) => { if (err && (err.code === BAD_CREDENTIALS || err.code === NOT_AUTHORIZED)) refresh(); });
  c.on('message', (t, payload) => {
    let env;
    try { env = JSON.parse(new TextDecoder().decode(payload)); } catch { return; }
    onInbox(env);
  });
  // Back in coverage: no need to wait out the backoff.
  window.addEventListener('online', () => {
    if (app.client === c && !c.connected) { clearTimeout(timer); c.reconnect(); }
  });
}

function onInbox(env) {
  if (isObj(env) && env.type === 'driver:locate') { locate(); return; }
  const what = app.store.inbox(env, Date.now());
  if (what === 'reassign') refresh(); // the route card changes with it
  if (what) renderInbox();
}

// answer takes the driver's answer to an offer or a rescue. It is kept
// (app.pending, in localStorage) until the depot acknowledges or refuses
// it, and shows "Sending…" until then: while offline, until the phone is
// back, even across a reload.
function answer(ref, action) {
  if (app.store.m) queueAnswer(ref, action);
}

// queueAnswer keeps and sends an answer, also one given before the phone
// shows anything (from a notification's button): it goes once connected.
function queueAnswer(ref, action) {
  const a = app.answers.get(ref);
  if (a && a.status === 'sending') return;
  const p = { ref, action, at: Date.now() };
  app.pending.add(p);
  app.answers.set(ref, { status: 'sending', action });
  renderInbox();
  send(p);
}

// sendPending hands every kept answer to the MQTT client, once per page:
// the client keeps what it was given across its reconnects.
function sendPending() {
  for (const p of app.pending.all()) send(p);
}

// send publishes the answer p at QoS 1; the PUBACK says the depot took
// it, or why it did not, and the depot is asked again what to show.
function send(p) {
  const c = app.client;
  const m = app.store.m;
  if (!c || !m || app.sent.has(p.ref)) return; // without a client yet: sendPending, once connected
  app.sent.add(p.ref);
  c.publish(topic(m.depot, app.cred.driver, 'reply'), JSON.stringify({ ref: p.ref, action: p.action }), { qos: 1 }).then(() => {
    app.pending.remove(p.ref);
    app.answers.set(p.ref, { status: 'acked', action: p.action });
    app.store.inbox(answeredEnvelope(p.ref, p.action), Date.now());
  }, (err) => {
    app.sent.delete(p.ref);
    if (final(err)) app.pending.remove(p.ref); // the depot said no: saying it again changes nothing
    app.answers.set(p.ref, { status: 'refused', action: p.action, conflict: isConflict(err),
      reason: (err && (err.reason || err.message)) || 'refused' });
  }).then(() => {
    renderInbox();
    refresh();
  });
}

// ---- location ----
const throttle = new Throttle(5000, sendFix);

function sendFix(pos) {
  const fix = gpsPayload(pos);
  const c = app.client;
  const m = app.store.m;
  if (!fix || !c || !m || fix.ts === app.lastTs) return; // the same fix twice says nothing new
  app.lastTs = fix.ts;
  if (c.queued >= GPS_ROOM) { app.gpsNote = 'Offline: positions are not kept.'; renderGps(); return; }
  c.publish(topic(m.depot, app.cred.driver, 'gps'), JSON.stringify(fix), { qos: 1 }).then(() => {
    app.lastSent = Date.now();
    app.gpsNote = '';
    renderGps();
  }, (err) => {
    app.gpsNote = `Position not taken: ${(err && (err.reason || err.message)) || 'refused'}`;
    renderGps();
  });
}

function setSharing(on) {
  app.sharing = on;
  localStorage.setItem(SHARE_KEY, on ? '1' : '0');
  $('share').checked = on;
  if (on && app.watch == null) {
    if (!navigator.geolocation) {
      app.gpsNote = 'This browser cannot tell where it is.';
      app.sharing = false;
      $('share').checked = false;
    } else {
      app.watch = navigator.geolocation.watchPosition((pos) => { app.lastPos = pos; throttle.push(pos); }, geoError,
        { enableHighAccuracy: true, maximumAge: 0 });
      $('locate').hidden = true;
    }
  } else if (!on) {
    stopWatch();
  }
  renderGps();
}

function stopWatch() {
  if (app.watch != null) navigator.geolocation.clearWatch(app.watch);
  app.watch = null;
  throttle.stop();
}

function geoError(err) {
  if (err && err.code === 1) { // PERMISSION_DENIED
    app.gpsNote = 'Location is blocked: allow it for this site in the browser settings.';
    setSharing(false);
    return;
  }
  app.gpsNote = 'No position yet; still trying.';
  renderGps();
}

// getOnce asks for the position once; maxAge (ms) is how old a position
// the browser already has may be.
function getOnce(ok, fail, maxAge = 10000) {
  if (!navigator.geolocation) { fail({ code: 2 }); return; }
  navigator.geolocation.getCurrentPosition(ok, fail, { enableHighAccuracy: true, maximumAge: maxAge, timeout: 30000 });
}

// locate answers a dispatcher's "where are you": at once when sharing (a
// fresh position, else the last one), otherwise the driver is asked.
function locate() {
  if (app.sharing) {
    getOnce((pos) => { app.lastPos = pos; throttle.now(pos); }, () => { if (app.lastPos) throttle.now(app.lastPos); }, 0);
    return;
  }
  $('locate').hidden = false;
}

function shareNow() {
  const b = $('locate-now');
  b.disabled = true;
  b.textContent = 'Finding you…';
  getOnce((pos) => {
    throttle.now(pos);
    $('locate').hidden = true;
    b.disabled = false;
    b.textContent = 'Share now';
  }, (err) => {
    b.disabled = false;
    b.textContent = 'Share now';
    geoError(err);
  });
}

// ---- Web Push (push.js) ----
// The switch "Notify me when the app is closed": on, the browser's push
// subscription is registered with the depot, which then wakes the phone
// for what the app, closed, did not take. The service worker shows it;
// a click opens the app at the message (#msg=<ref>), or with the answer
// of the notification's button (#answer=<action>:<ref>), taken here.
const pushable = () => 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
const within = (ms, p) => Promise.race([p, new Promise((_, no) => { setTimeout(no, ms, new Error('timed out')); })]);

// pushManager is the service worker's, once it runs.
async function pushManager() {
  return (await within(10000, navigator.serviceWorker.ready)).pushManager;
}

function showPush(r) {
  app.push.state = r.state;
  $('push').checked = ['on', 'working', 'pending'].includes(r.state);
  $('push-status').textContent = statusText(r);
  $('push-status').dataset.state = r.state;
}

// pushKey is the depot's VAPID key, asked once; null when it has none
// (the switch is then hidden) or could not be asked (r.error).
async function pushKey() {
  if (app.push.key) return { key: app.push.key };
  const v = await vapid(fetch);
  if (v.key) app.push.key = v.key;
  if (v.off) {
    $('push-label').hidden = true;
    showPush({ state: 'disabled' });
  }
  return v;
}

// syncPush makes sure, on start, that a switch left on still holds: the
// subscription the browser has (or a new one, if the depot's key changed)
// is registered again (the depot takes the same one twice as once).
// Tried again after a state answer while it could not be done.
async function syncPush() {
  const cred = app.cred;
  if (!cred || app.push.synced || app.push.busy || !pushable() || app.push.tries >= 5) return;
  app.push.busy = true;
  app.push.tries++;
  try {
    const v = await pushKey();
    const on = wanted(localStorage, cred.driver);
    if (v.off || (v.key && !on)) { app.push.synced = true; return; }
    if (v.error) { if (on) showPush({ state: 'pending', why: v.error }); return; }
    let r;
    try {
      r = await turnOn({ permission: async () => Notification.permission, pm: await pushManager(), get: fetch, cred, key: v.key });
    } catch (err) {
      r = { state: 'error', why: `the app's service worker is not running (${err.message})` };
    }
    if (cred !== app.cred) return;
    if (r.state === 'error') r = { state: 'pending', why: r.why }; // still on: tried again later
    else app.push.synced = true;
    if (r.state === 'blocked' || r.state === 'dismissed') want(localStorage, cred.driver, false);
    showPush(r);
  } finally {
    app.push.busy = false;
  }
}

// switchPush is the driver's touch on the switch.
async function switchPush(on) {
  const cred = app.cred;
  if (app.push.busy || !cred) { $('push').checked = !on; return; }
  // Asked at once, in the touch: a browser asks only what a touch asked for.
  const asked = on ? Promise.resolve(Notification.requestPermission()) : null;
  if (asked) asked.catch(() => {}); // turnOn reads it; none if the worker is not running
  app.push.busy = true;
  $('push').disabled = true;
  showPush({ state: 'working' });
  let r;
  try {
    const pm = await pushManager();
    if (on) {
      const v = await pushKey();
      r = v.key ? await turnOn({ permission: () => asked, pm, get: fetch, cred, key: v.key })
        : v.off ? { state: 'disabled' } : { state: 'error', why: v.error };
    } else {
      r = await turnOff({ pm, get: fetch, cred });
    }
  } catch (err) {
    r = { state: on ? 'error' : 'off', why: `the app's service worker is not running (${err.message})` };
  } finally {
    app.push.busy = false;
    $('push').disabled = false;
  }
  if (cred !== app.cred) return;
  app.push.synced = true;
  want(localStorage, cred.driver, r.state === 'on');
  showPush(r);
}

// dropPush is the phone leaving cred's driver (signing out, switching,
// revoked): the subscription is dropped, the depot told (tell) as far as
// it can be within a few seconds, and the notifications shown closed.
async function dropPush(cred, tell = true) {
  if (!cred || !pushable()) return;
  want(localStorage, cred.driver, false);
  try {
    const reg = await navigator.serviceWorker.getRegistration();
    if (!reg) return;
    for (const n of await reg.getNotifications()) n.close();
    await within(3000, turnOff({ pm: reg.pushManager, get: fetch, cred: tell ? cred : null }));
  } catch { /* best effort: the depot forgets a subscription its push service says is gone */ }
}

function startPush() {
  $('push-card').hidden = false;
  if (!pushable()) {
    $('push').disabled = true;
    showPush({ state: 'unsupported' });
    return;
  }
  $('push').onchange = () => switchPush($('push').checked);
  showPush({ state: wanted(localStorage, app.cred.driver) ? 'pending' : 'off' });
  syncPush();
}

// takePush acts on what a notification's click brought (parseFragment's,
// or fromMessage's): an answer is kept and sent as if its button on the
// card had been pressed; the card it is about is shown.
function takePush(f) {
  if (!f || f.bad || !app.cred || app.revoked) return;
  if (f.driverId && f.driverId !== app.cred.driver) return; // for the driver this phone was before
  const ref = f.answer ? f.answer.ref : f.msg;
  if (f.answer) queueAnswer(ref, f.answer.action);
  app.highlight = ref;
  app.scrollTo = ref;
  renderInbox();
}

// takeFragment takes #answer=… or #msg=… from the address, and removes it.
// An answer is taken only with the service worker's proof that it came
// from a notification's button (ANSWER_CACHE), used once; without it the
// card is only shown, for the driver to answer there.
async function takeFragment() {
  const f = parseFragment(location.hash);
  if (!f) return;
  history.replaceState(null, '', location.pathname + location.search);
  if (f.answer) {
    let proof = false;
    try {
      const c = await caches.open(ANSWER_CACHE);
      proof = await c.delete(answerKey(new URL('./', location.href).href, f.answer.action, f.answer.ref));
    } catch { /* no Cache Storage: no proof */ }
    if (!proof) {
      takePush({ msg: f.answer.ref });
      return;
    }
  }
  takePush(f);
}

// ---- drawing ----
const MEANING = { GREEN: 'on time', YELLOW: 'behind', RED: 'far behind', UNKNOWN: 'status unknown' };

// when is a moment the driver can place: the time today, else the day too.
function when(ms) {
  const d = new Date(ms);
  if (d.toDateString() === new Date().toDateString()) return clock(ms);
  return d.toLocaleString([], { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });
}

function render() {
  const m = app.store.m;
  $('driver-name').textContent = m.driverName || m.driverId;
  document.title = `${m.driverName || m.driverId} · Depot`;
  const asOf = app.store.asOf;
  $('asof').hidden = asOf == null;
  $('asof').textContent = asOf == null ? '' : `Not up to date: as of ${when(asOf)}`;
  renderRoute(m.route);
  renderInbox();
  renderGps();
}

function renderRoute(r) {
  const card = $('route');
  card.dataset.status = r ? statusOf(r.statusColor) : 'NONE';
  $('route-code').textContent = r ? r.routeCode || r.routeId || '–' : 'No route assigned';
  const st = statusOf(r && r.statusColor);
  $('route-status').hidden = !r;
  $('route-status').textContent = r ? `${SHAPES[st]} ${st} · ${MEANING[st]}` : '';
  $('route-stops').textContent = r ? `${showNum(r.completedStops)} of ${showNum(r.totalStops)}` : '–';
  $('route-behind').textContent = r ? showNum(r.behindSchedule) : '–';
}

function renderGps() {
  const last = app.lastSent ? `last sent ${clock(app.lastSent, true)}` : '';
  let t = app.sharing ? `On · ${last || 'waiting for a position…'}` : `Off${last ? ` · ${last}` : ''}`;
  if (app.gpsNote) t += ` · ${app.gpsNote}`;
  $('gps-status').textContent = t;
  $('gps-status').dataset.lastSent = String(app.lastSent);
}

// shownState is an item's state as the driver sees it: an open offer
// whose time ran out is expired, whether or not the depot said so yet.
function shownState(x) {
  if (x.kind !== 'offer') return x.item.state || '';
  const left = countdown(x.item.expiresAt, serverNow()).left;
  return x.item.state === 'open' && left === 0 ? 'expired' : x.item.state;
}

// answerOf is what became of the driver's answer to ref: 'sending',
// 'acked', 'refused' or ''. A conflict over an item that is now where the
// answer leads, or beyond (an accepted offer since confirmed), is an answer
// sent again (after a reload, or a connection lost before its PUBACK) that
// the depot had already taken.
function answerOf(ref, state) {
  const a = app.answers.get(ref);
  if (!a) return '';
  if (a.status === 'refused' && a.conflict && reached(a.action, state)) return 'acked';
  return a.status;
}

let drawn = '';
function renderInbox() {
  const items = app.store.items();
  const sig = JSON.stringify([items.map((x) => [x.kind, x.id, shownState(x), answerOf(x.id, x.item.state)]),
    [...app.answers], Math.floor(serverNow() / 60000), app.highlight]);
  if (sig !== drawn) {
    drawn = sig;
    $('inbox-empty').textContent = app.store.m ? 'No messages.' : 'Loading…';
    $('inbox').replaceChildren(...items.map((x) => (x.kind === 'offer' ? offerCard(x) : x.kind === 'rescue' ? rescueCard(x) : reassignCard(x))));
    $('inbox-empty').hidden = items.length > 0;
  }
  const hl = app.scrollTo && $('inbox').querySelector('[data-highlight]');
  if (hl) {
    app.scrollTo = '';
    hl.scrollIntoView({ block: 'center' });
  }
}

function stateWord(state) {
  return el('p', { className: `state state-${/^[a-z]+$/.test(state) ? state : 'other'}` }, state);
}

function answerLine(ref, status) {
  const a = app.answers.get(ref);
  if (status === 'sending') return el('p', { className: 'answer' }, 'Sending…');
  if (status === 'refused') return el('p', { className: 'answer refused', role: 'alert' }, `Not taken: ${a.reason}`);
  return null;
}

function card(kind, id, state, status, ...children) {
  const dataset = { kind, id, state };
  if (status) dataset.answer = status;
  if (id === app.highlight) dataset.highlight = 'true';
  return el('li', { className: `msg ${kind}`, dataset }, ...children);
}

function button(label, action, ref, primary) {
  return el('button', { className: primary ? 'btn primary' : 'btn', type: 'button', dataset: { action },
    onclick: () => answer(ref, action) }, label);
}

function offerCard(x) {
  const o = x.item;
  const state = shownState(x);
  const status = answerOf(o.vtoId, o.state);
  const open = state === 'open' && status !== 'sending' && status !== 'acked';
  return card('offer', o.vtoId, state, status,
    el('h3', null, 'Time off offered', o.routeCode ? ` · ${o.routeCode}` : ''),
    o.reason ? el('p', { className: 'reason' }, o.reason) : null,
    state === 'open' ? el('p', null, 'Answer within ',
      el('span', { className: 'countdown', dataset: { expires: String(Date.parse(o.expiresAt)) } }, countdown(o.expiresAt, serverNow()).text)) : null,
    open ? el('div', { className: 'buttons' }, button('Accept', 'accept', o.vtoId, true), button('Decline', 'decline', o.vtoId)) : null,
    state !== 'open' ? stateWord(state) : null,
    answerLine(o.vtoId, status),
    x.at ? el('p', { className: 'when' }, `Offered ${clock(x.at)}`) : null);
}

function rescueCard(x) {
  const r = x.item;
  const a = r.alert;
  const t = a.transfer;
  const status = answerOf(r.rescueId, r.state);
  const coords = t.lat != null && t.lng != null;
  const where = t.address || (coords ? `${t.lat.toFixed(5)}, ${t.lng.toFixed(5)}` : 'not given');
  let map = null;
  if (coords) { // numbers, checked: nothing from the network is in this URL but them
    map = el('a', { className: 'link' }, 'Open in maps');
    map.href = `geo:${t.lat},${t.lng}?q=${t.lat},${t.lng}`;
  }
  const eta = Date.parse(a.eta);
  const mins = Math.max(0, Math.round((eta - serverNow()) / 60000));
  return card('rescue', r.rescueId, r.state, status,
    el('h3', null, 'Rescue: help ', a.routeCode || r.routeId),
    el('p', null, `${a.driverName || a.driverId || 'A driver'} is ${showNum(a.behind)} stops behind.`),
    el('p', null, 'Meet at: ', el('b', null, where)),
    map,
    Number.isNaN(eta) ? null : el('p', null, 'ETA ', el('b', null, clock(eta)), ` (in ${mins} min)`),
    r.state === 'open' && status !== 'sending' && status !== 'acked'
      ? el('div', { className: 'buttons' }, button('On my way', 'ack', r.rescueId, true)) : null,
    r.state !== 'open' ? stateWord(r.state) : null,
    answerLine(r.rescueId, status),
    x.at ? el('p', { className: 'when' }, `Sent ${clock(x.at)}`) : null);
}

function reassignCard(x) {
  const r = x.item;
  const toMe = r.toDriverId === app.cred.driver;
  const dataset = { kind: 'reassign', id: x.id, dir: toMe ? 'to' : 'from' };
  if (r.routeId === app.highlight) dataset.highlight = 'true'; // a push names the route
  return el('li', { className: 'msg reassign', dataset },
    el('h3', null, `Route ${r.routeCode || r.routeId} moved ${toMe ? 'to you' : 'from you'}`),
    !toMe && r.toDriverId ? el('p', null, `Now driven by ${r.toDriverId}.`) : null,
    x.at ? el('p', { className: 'when' }, clock(x.at)) : null);
}

// tick runs the countdowns on the depot's clock; one that reaches zero
// redraws its card as expired.
function tick() {
  if (!app.store.m) return;
  let over = false;
  for (const c of document.querySelectorAll('[data-expires]')) {
    const cd = countdown(Number(c.dataset.expires), serverNow());
    c.textContent = cd.text;
    if (cd.left === 0) over = true;
  }
  if (over) renderInbox();
}

// ---- start ----
// notice shows text (from the app, never from the network) until the
// driver dismisses it.
function notice(text) {
  $('notice-text').textContent = text;
  $('notice').hidden = !text;
}

// askSwitch asks, on the page, whether the phone paired as from should
// become to's; it resolves true for yes.
function askSwitch(from, to) {
  show('switch');
  $('switch-text').textContent = `This phone is paired as ${from}. The link is for ${to}. Switch this phone to ${to}?`;
  $('switch-yes').textContent = `Switch to ${to}`;
  $('switch-no').textContent = `Keep ${from}`;
  return new Promise((resolve) => {
    $('switch-yes').onclick = () => resolve(true);
    $('switch-no').onclick = () => resolve(false);
  });
}

// forgetDriver removes what the phone keeps for the pairing of cred.
function forgetDriver(cred) {
  forgetCred(localStorage);
  localStorage.removeItem(SHARE_KEY);
  if (cred) {
    want(localStorage, cred.driver, false);
    forgetPending(localStorage, cred.driver);
    forgetState(localStorage, cred.driver);
  }
}

// nameOf is how the phone names the driver of cred: the name the last
// state answer gave, else the id.
function nameOf(cred) {
  const s = loadState(localStorage, cred.driver);
  const name = s && typeof s.answer.driverName === 'string' ? s.answer.driverName.trim().slice(0, 80) : '';
  return name ? `${name} (${cred.driver})` : cred.driver;
}

// pair takes a pairing link's fragment, if the address has one: the
// fragment leaves the address bar (and the history) at once, the link is
// tried with the depot, and what the phone keeps changes only if the
// depot took it (and, for another driver, the driver said so). It returns
// the credential to start with and the check's state answer, if any.
async function pair() {
  const current = loadCred(localStorage);
  const link = parseLink(location.hash);
  if (!link) return { cred: current };
  history.replaceState(null, '', location.pathname + location.search);
  show('pairing');
  const result = await redeem(link);
  const d = decide(current, result);
  if (d.do === 'keep') {
    notice(failureText(d.why, current ? nameOf(current) : ''));
    return { cred: current };
  }
  if (d.do === 'ask' && !(await askSwitch(nameOf(current), d.cred.driver))) return { cred: current };
  if (current && current.driver !== d.cred.driver) { // another driver's phone now: sharing and notifications start off
    await dropPush(current);
    forgetDriver(current);
  }
  saveCred(localStorage, d.cred);
  return { cred: d.cred, checked: result.answer ? result : null };
}

async function boot() {
  // A pairing link opened in a tab that shows the app already changes only
  // the fragment: the page is not loaded again, so it starts afresh here.
  window.addEventListener('hashchange', () => { if (parseLink(location.hash)) location.reload(); else takeFragment(); });
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register('sw.js', { scope: './' }).catch(() => {});
    navigator.serviceWorker.addEventListener('message', (e) => takePush(fromMessage(e.data)));
    navigator.serviceWorker.startMessages(); // what a notification's click posted before this page was ready
  }
  $('notice-ok').onclick = () => notice('');
  $('signout').onclick = () => { $('signout').hidden = true; $('signout-ask').hidden = false; };
  $('signout-no').onclick = () => { $('signout').hidden = false; $('signout-ask').hidden = true; };
  $('signout-yes').onclick = async () => {
    $('signout-yes').disabled = true;
    await dropPush(app.cred);
    forgetDriver(app.cred);
    location.replace(location.pathname); // a fresh start, with no session, timer or watch left
  };

  const { cred, checked } = await pair();
  app.cred = cred;
  if (!cred) {
    if (parseFragment(location.hash)) history.replaceState(null, '', location.pathname + location.search);
    show('pair');
    return;
  }

  show('app');
  app.pending = new Pending(localStorage, cred.driver);
  for (const p of app.pending.all()) app.answers.set(p.ref, { status: 'sending', action: p.action });
  $('share').onchange = () => setSharing($('share').checked);
  $('locate-now').onclick = shareNow;
  if (localStorage.getItem(SHARE_KEY) === '1') setSharing(true);
  takeFragment(); // a notification's click that opened the app
  startPush();
  if (checked && app.store.answer(checked.answer, checked.sentAt, checked.receivedAt)) {
    // The link's check was a state answer: shown at once, no second request.
    saveState(localStorage, cred.driver, checked);
    app.refreshes++;
    render();
    connect();
  } else {
    // What the depot said last, until it answers this page.
    if (app.store.restore(loadState(localStorage, cred.driver))) render();
    load();
  }
  setInterval(refresh, REFRESH_EVERY);
  setInterval(tick, 1000);
  document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'visible') refresh(); });
}

boot();
