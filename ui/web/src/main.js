// Depot Command Central dashboard.
//
// State model: the page starts from GET /api/v1/state (every route, open
// rescue and offer, presence) which is consistent with a seq, then applies
// the events on depot/{d}/events strictly in seq order. Any gap (a
// reconnect, a dropped message) is filled from GET /api/v1/events?after=
// before newer events are applied, so nothing is shown twice or skipped.
// MQTT over WebSocket to the depot's own broker; the login token is the
// MQTT password. Works without internet access: map tiles are optional.
import mqtt from 'mqtt';
import './style.css';
import { EventLog, isObj } from './eventlog.js';
import { Transports } from './transport.js';
import { $, el, SHAPES, WORDS, RANK, PRESENCE } from './dom.js';
import { STATUS, OFFER_STATES, has, isID, num, showNum, text, statusOf, cleanRoute, cleanOffer } from './checks.js';
import { initMap, placeMarker, fitOnce, resize, hasMap } from './map.js';

const state = {
  cfg: null,
  routes: new Map(),   // routeId -> route status
  rescues: new Map(),  // rescueId -> rescue (open or acknowledged)
  offers: new Map(),   // vtoId -> offer
  presence: new Map(), // driverId -> {state, since}
  lastSeq: 0,
  synced: false,       // lastSeq is meaningful
  clockOffset: 0,      // server clock - browser clock, ms
  conn: 'connecting',
  lastDelay: null,
  feed: null,
  heartbeat: null,
  events: 0,
  gaps: 0,             // events applied out of seq order: must stay 0
  dropped: 0,          // live envelopes refused: malformed, or a seq the log does not have
};
window.__depot = state; // for tests and for curious operators in the console
state.csp = []; // what the Content-Security-Policy refused here: should stay empty
document.addEventListener('securitypolicyviolation', (e) => {
  if (state.csp.length < 20) state.csp.push(`${e.effectiveDirective} ${String(e.blockedURI).slice(0, 100)}`);
});

function serverNow() { return Date.now() + state.clockOffset; }
function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

// Capped exponential backoff with full jitter: a depot's dashboards that all
// lost the box at once do not come back in lockstep.
function backoff(attempt) {
  return 250 + Math.random() * Math.min(30000, 500 * 2 ** attempt);
}

// ---- login ----
// The token lives in sessionStorage: it survives a reload of the wall screen
// but not closing the tab, and never goes to a cookie.
const AUTH_KEY = 'depot.auth';
function loadAuth() {
  try {
    const a = JSON.parse(sessionStorage.getItem(AUTH_KEY));
    if (a && a.token && Date.parse(a.expiresAt) > Date.now()) return a;
  } catch { /* fall through */ }
  return null;
}
let auth = loadAuth();
let mqttClient = null;
let renewTimer = 0;

function showLogin(msg) {
  $('login').hidden = false;
  $('logout').hidden = true;
  $('login-msg').textContent = msg || '';
  $('login-pass').value = '';
  $('login-user').focus();
}

// logout ends everything that runs on the token and shows the login page
// with msg: a dashboard whose token expired or was refused does not keep
// reconnecting forever.
function logout(msg) {
  auth = null;
  sessionStorage.removeItem(AUTH_KEY);
  clearTimeout(renewTimer);
  if (mqttClient) { mqttClient.removeAllListeners('close'); mqttClient.end(true); mqttClient = null; }
  tp.stopFallback();
  setConn('offline');
  showLogin(msg);
}

$('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const btn = $('login-submit');
  btn.disabled = true;
  try {
    const r = await fetch('api/v1/auth/login', {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username: $('login-user').value.trim(), password: $('login-pass').value }),
    });
    const body = await r.json().catch(() => ({}));
    if (r.status === 429) {
      $('login-msg').textContent = `Too many attempts. Try again in ${r.headers.get('Retry-After') || 'a few'} seconds.`;
    } else if (!r.ok) {
      $('login-msg').textContent = body.error || `Sign-in failed (HTTP ${r.status}).`;
    } else {
      auth = body;
      sessionStorage.setItem(AUTH_KEY, JSON.stringify(auth));
      $('login').hidden = true;
      askNotify();
      start();
    }
  } catch {
    $('login-msg').textContent = 'The depot cannot be reached. Check the network and try again.';
  } finally {
    btn.disabled = false;
  }
});
$('logout').addEventListener('click', () => logout('Signed out.'));

// ---- token renewal ----
// A login token lasts a shift, and the broker ends an MQTT session whose
// token expires. So the page trades its token for a fresh one well before
// that (at 80 % of what is left, or 10 minutes before expiry if that is
// sooner, never sooner than half-way), then reconnects with it. Only the
// depot saying 401 (revoked, expired, user gone) signs the screen out; an
// unreachable depot is asked again.
function scheduleRenew() {
  clearTimeout(renewTimer);
  if (!auth) return;
  const left = Date.parse(auth.expiresAt) - serverNow();
  const wait = Math.max(left / 2, Math.min(left * 0.8, left - 10 * 60000));
  renewTimer = setTimeout(() => renew(0), Math.max(1000, Math.min(wait, 2 ** 31 - 1)));
}

state.renewNow = () => renew(0); // for tests, and for an operator who wants a fresh token now

async function renew(attempt) {
  if (!auth) return;
  let r = null;
  try {
    r = await fetch('api/v1/auth/renew', { method: 'POST', cache: 'no-store', headers: { Authorization: 'Bearer ' + auth.token } });
  } catch { /* the depot cannot be reached */ }
  if (!auth) return;
  if (r && r.status === 401) {
    logout('Your session has ended. Please sign in again.');
    return;
  }
  const body = r && r.ok ? await r.json().catch(() => null) : null;
  if (!isObj(body) || typeof body.token !== 'string' || Number.isNaN(Date.parse(body.expiresAt))) {
    renewTimer = setTimeout(() => renew(attempt + 1), backoff(attempt));
    return;
  }
  auth = { token: body.token, expiresAt: body.expiresAt, role: body.role, username: auth.username };
  sessionStorage.setItem(AUTH_KEY, JSON.stringify(auth));
  state.renewals = (state.renewals || 0) + 1;
  scheduleRenew();
  // The transports pick the new token up: MQTT by a second session that
  // replaces the first once it is up (catch-up by seq covers the switch),
  // SSE by reopening from lastSeq; polling reads auth on every request.
  if (tp.mode === 'ws' && mqttClient && state.cfg) {
    mqttClient.options.password = auth.token;
    if (mqttClient.connected) connect(state.cfg, 'handover');
  } else {
    tp.restartSSE();
  }
}

// api calls the REST API with the token; a 401 means it expired or was revoked.
async function api(path, method = 'GET', body) {
  const r = await fetch(path, {
    method, cache: 'no-store',
    headers: { Authorization: 'Bearer ' + auth.token, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (r.status === 401) {
    logout('Your session has ended. Please sign in again.');
    throw new Error('unauthorized');
  }
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw Object.assign(new Error(data.error || 'HTTP ' + r.status), { status: r.status });
  return data;
}

async function loadConfig() {
  for (let attempt = 0; ; attempt++) {
    try {
      const t0 = Date.now();
      const cfg = await api('api/v1/config');
      const t1 = Date.now();
      state.clockOffset = cfg.serverTime - (t0 + t1) / 2;
      return cfg;
    } catch (e) {
      if (!auth) throw e;
      setConn('offline');
      await sleep(backoff(attempt));
    }
  }
}

// ---- the event stream, in seq order (eventlog.js) ----
// loadState replaces everything with the server's snapshot.
async function loadState() {
  const s = await api('api/v1/state');
  if (!isObj(s) || !Number.isSafeInteger(s.seq)) throw new Error('state: unexpected answer');
  const list = (v) => (Array.isArray(v) ? v.filter(isObj) : []);
  state.routes = new Map(list(s.routes).filter((r) => isID(r.routeId)).map((r) => [r.routeId, cleanRoute(r)]));
  state.rescues = new Map(list(s.rescues).filter((r) => isID(r.rescueId)).map((r) => [r.rescueId, r]));
  state.offers = new Map(list(s.offers).filter((o) => isID(o.vtoId)).map((o) => [o.vtoId, cleanOffer(o)]));
  state.presence = new Map(Object.entries(isObj(s.presence) ? s.presence : {}).filter(([, v]) => isObj(v)));
  state.lastSeq = s.seq;
  state.synced = true;
  if (isObj(s.feed)) onFeed(s.feed);
  markAll();
}

const log = new EventLog(state, {
  loadState,
  fetchEvents: (after, limit) => api(`api/v1/events?after=${after}&limit=${limit}`),
  apply: (env) => apply(env),
  onApplied: () => { lastEventAt = Date.now(); },
});
const catchUp = () => log.catchUp();

function onLive(env) {
  if (!log.onLive(env)) return;
  const ts = Date.parse(env.timestamp);
  if (!Number.isNaN(ts)) state.lastDelay = Math.max(0, serverNow() - ts);
}

function apply(env) {
  const p = env.payload;
  switch (env.type) {
    case 'route:update': {
      if (!isID(p.routeId)) return;
      state.routes.set(p.routeId, cleanRoute(p, state.routes.get(p.routeId) || { routeId: p.routeId }));
      mark(p.routeId);
      break;
    }
    case 'rescue:alert': {
      if (!isID(p.rescueId)) return;
      const sr = isObj(p.struggleRoute) ? p.struggleRoute : {};
      state.rescues.set(p.rescueId, { rescueId: p.rescueId, routeId: text(sr.routeId), state: 'open',
        seq: env.seq, alert: p, createdAt: text(env.timestamp) });
      alarm(p);
      renderRescues();
      break;
    }
    case 'rescue:updated': {
      const r = state.rescues.get(p.rescueId);
      if (r && p.state === 'resolved') state.rescues.delete(p.rescueId);
      else if (r) r.state = text(p.state);
      renderRescues();
      break;
    }
    case 'vto:offer':
      if (!isID(p.vtoId)) return;
      state.offers.set(p.vtoId, cleanOffer(p));
      renderOffers();
      break;
    case 'vto:accepted': case 'vto:declined': case 'vto:expired': case 'vto:confirmed': {
      const o = state.offers.get(p.vtoId);
      if (o) { o.state = text(p.state); renderOffers(); }
      break;
    }
    case 'driver:presence':
      if (!isID(p.driverId)) return;
      state.presence.set(p.driverId, { state: text(p.state), since: text(p.since) });
      for (const r of state.routes.values()) if (r.driverId === p.driverId) mark(r.routeId);
      break;
    case 'system:status':
      onHeartbeat(p);
      break;
    default:
  }
}

// ---- transports (transport.js) ----
let es = null;
let pollTimer = 0;
let lastEventAt = Date.now();
const tp = new Transports({
  openSSE() {
    const url = `api/v1/stream?access_token=${encodeURIComponent(auth.token)}&after=${state.lastSeq}`;
    const src = new EventSource(url);
    es = src;
    src.onopen = () => { tp.sseOpened(); setConn('live'); };
    src.onmessage = (e) => {
      tp.sseMessage();
      try { onLive(JSON.parse(e.data)); } catch { /* not an envelope */ }
    };
    src.addEventListener('reset', () => { log.reset().catch(() => {}); });
    src.onerror = () => {
      if (tp.sseError(src.readyState === EventSource.CLOSED) === 'reconnecting') setConn('reconnecting');
    };
  },
  closeSSE() { if (es) { es.close(); es = null; } },
  startPolling() {
    clearInterval(pollTimer);
    pollTimer = setInterval(() => {
      catchUp().then(() => { lastEventAt = Date.now(); setConn('live'); }, () => setConn('reconnecting'));
    }, 2000);
  },
  stopPolling() { clearInterval(pollTimer); pollTimer = 0; },
  probe() { if (state.cfg) connect(state.cfg, 'probe'); },
  active() { return !!auth; },
});

// ---- MQTT ----
// connect opens an MQTT session. mode 'main' is the page's session; a
// 'probe' tries the WebSocket again from a fallback, a 'handover' opens a
// session with a renewed token. Either replaces the main session once
// connected, and goes away quietly if it cannot connect.
function connect(cfg, mode = 'main') {
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  const events = `depot/${cfg.depot}/events`;
  let attempt = 0;
  let retrying = false;
  const client = mqtt.connect(`${proto}://${location.host}/mqtt`, {
    protocolVersion: 5,
    clean: true, // catch-up is by seq over the API: no broker session to keep
    keepalive: 20,
    reconnectPeriod: 0, // we reconnect ourselves, with backoff and jitter
    connectTimeout: 10000,
    username: auth.username,
    password: auth.token,
    // "dash-<username>:<random>": the broker binds "dash-<username>" and
    // what follows a ':' to this user (a username may contain '-').
    clientId: `dash-${auth.username}:${Math.random().toString(16).slice(2, 10)}`,
  });
  const retry = () => {
    if (retrying) return; // one retry at a time; each failed attempt closes again
    retrying = true;
    const wait = backoff(attempt++);
    setConn(navigator.onLine === false || attempt > 6 ? 'offline' : 'reconnecting');
    setTimeout(() => {
      retrying = false;
      if (auth && (client === mqttClient || !mqttClient) && !client.connected) {
        client.options.password = auth.token; // renewed meanwhile, perhaps
        client.reconnect();
      }
    }, wait);
  };
  let up = false;
  client.on('connect', () => {
    up = true;
    attempt = 0;
    if (mqttClient && mqttClient !== client) { mqttClient.removeAllListeners('close'); mqttClient.end(true); }
    mqttClient = client;
    state.clientId = client.options.clientId;
    tp.wsUp();
    lastEventAt = Date.now();
    setConn('live');
    client.subscribe([events], { qos: 0 }, () => catchUp().catch(() => {}));
  });
  client.on('close', () => {
    const wasUp = up;
    up = false;
    if (mode !== 'main' && mqttClient !== client) { // a probe or handover that failed: keep what runs
      client.removeAllListeners('close'); client.end(true);
      if (mode === 'probe') tp.probeFailed();
      return;
    }
    if (tp.wsClosed(wasUp) === 'fallback') { // the WebSocket cannot be opened here
      client.removeAllListeners('close'); client.end(true);
      if (mqttClient === client) mqttClient = null;
      return;
    }
    retry();
  });
  client.on('error', (err) => {
    // CONNACK 0x86/0x87: the token expired or was revoked. Retrying is useless.
    if (err && (err.code === 134 || err.code === 135)) logout('Your session has ended. Please sign in again.');
  });
  client.on('message', (topic, payload) => {
    let msg;
    try { msg = JSON.parse(new TextDecoder().decode(payload)); } catch { return; }
    for (const env of Array.isArray(msg) ? msg : [msg]) onLive(env);
  });
  return client;
}

function setConn(s) {
  state.conn = s;
  state.transport = tp.mode;
  const el = $('conn');
  el.className = 'conn conn-' + s;
  el.querySelector('.label').textContent = s === 'live' ? `live · ${tp.mode}` : s;
  el.title = s === 'live' ? `Live over ${tp.mode === 'ws' ? 'MQTT over WebSocket' : tp.mode === 'sse' ? 'Server-Sent Events (fallback)' : 'polling (fallback)'}` : '';
}

// ---- alarms ----
function askNotify() {
  if ('Notification' in window && Notification.permission === 'default') Notification.requestPermission().catch(() => {});
}

let beepTimer = 0;
function beep() {
  try {
    const ctx = new (window.AudioContext || window.webkitAudioContext)();
    const o = ctx.createOscillator(); const g = ctx.createGain();
    o.type = 'square'; o.frequency.value = 880; g.gain.value = 0.08;
    o.connect(g).connect(ctx.destination); o.start();
    o.stop(ctx.currentTime + 0.35);
    setTimeout(() => ctx.close(), 600);
  } catch { /* no audio on this screen */ }
}

function alarm(p) {
  const sr = isObj(p.struggleRoute) ? p.struggleRoute : {};
  const txt = `${text(sr.routeCode)} (${text(sr.driverName)}) is ${showNum(sr.behindSchedule)} stops behind`;
  if ('Notification' in window && Notification.permission === 'granted') {
    try { new Notification('Rescue needed', { body: txt, tag: p.rescueId, requireInteraction: true }); } catch { /* ignore */ }
  }
}

// Acknowledging is per screen (sessionStorage): it silences the banner
// here; resolving closes the rescue for everyone.
const ACK_KEY = 'depot.acked';
const acked = new Set((() => { try { const a = JSON.parse(sessionStorage.getItem(ACK_KEY)); return Array.isArray(a) ? a : []; } catch { return []; } })());
function ack(id) {
  acked.add(id);
  sessionStorage.setItem(ACK_KEY, JSON.stringify([...acked]));
  renderRescues();
}

// Ids go into API paths encoded: an id from the network must not turn a
// click on Resolve into a request for another path.
const enc = encodeURIComponent;

function renderRescues() {
  const box = $('rescues');
  const list = [...state.rescues.values()].sort((a, b) => (num(b.seq) ?? 0) - (num(a.seq) ?? 0));
  let loud = false;
  box.replaceChildren(...list.map((r) => {
    const p = isObj(r.alert) ? r.alert : {};
    const sr = isObj(p.struggleRoute) ? p.struggleRoute : { routeCode: r.routeId };
    const rd = isObj(p.rescueDriver) ? p.rescueDriver : null;
    const at = Date.parse(p.estimatedArrival);
    const eta = Number.isNaN(at) ? '' : new Date(at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    const tl = isObj(p.transferLocation) ? text(p.transferLocation.address) : '';
    const isAcked = acked.has(r.rescueId);
    loud = loud || !isAcked;
    return el('div', { className: 'rescue' + (isAcked ? ' acked' : ''), dataset: { rescue: r.rescueId } },
      el('span', { className: 'big' }, `▲ RESCUE ${text(sr.routeCode)}`),
      el('span', { className: 'grow' },
        `${text(sr.driverName)} is `, el('b', null, showNum(sr.behindSchedule)), ' stops behind. ',
        rd ? ['Send ', el('b', null, text(rd.driverName)),
          ` (${text(rd.performanceTier)}, ${showNum(rd.distanceKm)} km${eta ? ', ETA ' + eta : ''})`] : el('b', null, 'No rescuer available.'),
        tl ? ` to ${tl}` : '', ` · ${text(r.state)}`),
      isAcked ? null : el('button', { className: 'primary', dataset: { act: 'ack' }, onclick: () => ack(r.rescueId) }, 'Acknowledge'),
      el('button', { dataset: { act: 'resolve' },
        onclick: () => api(`api/v1/rescues/${enc(r.rescueId)}/resolve`, 'POST').catch((e) => alert(e.message)) }, 'Resolve'));
  }));
  clearInterval(beepTimer);
  if (loud) { beep(); beepTimer = setInterval(beep, 10000); }
}

// ---- VTO ----
function renderOffers() {
  const ul = $('offers');
  const list = [...state.offers.values()].sort((a, b) => (Date.parse(b.offeredAt) || 0) - (Date.parse(a.offeredAt) || 0));
  if (!list.length) { ul.replaceChildren(el('li', { className: 'muted' }, 'No offers.')); return; }
  ul.replaceChildren(...list.map((o) => el('li', { dataset: { vto: o.vtoId } },
    el('span', null, el('b', null, o.routeCode), ' ', o.driverName, o.reason ? [' ', el('span', { className: 'muted' }, `· ${o.reason}`)] : null),
    o.state === 'open'
      ? el('span', { className: 'countdown', dataset: { expires: String(Date.parse(o.expiresAt)) } })
      : el('span', { className: 'st' + (OFFER_STATES.has(o.state) ? ' st-' + o.state : '') }, o.state))));
  updateCountdowns();
}

// Countdowns run on the server's clock (corrected by the offset measured
// at start), not the browser's.
function updateCountdowns() {
  document.querySelectorAll('.countdown').forEach((c) => {
    const exp = Number(c.dataset.expires);
    if (!Number.isFinite(exp)) { c.textContent = '—'; return; }
    const left = Math.max(0, Math.round((exp - serverNow()) / 1000));
    c.textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}`;
  });
}

// ---- dialogs for row actions ----
function ask({ title, text: body, label, value = '', ok }) {
  const d = $('dlg');
  $('dlg-title').textContent = title;
  $('dlg-text').textContent = body || '';
  $('dlg-label').hidden = !label;
  $('dlg-label-text').textContent = label || '';
  $('dlg-input').value = value;
  $('dlg-error').textContent = '';
  d.onclose = null;
  $('dlg-form').onsubmit = async (ev) => {
    if (ev.submitter && ev.submitter.value === 'cancel') return;
    ev.preventDefault();
    try {
      await ok($('dlg-input').value.trim());
      d.close();
    } catch (e) {
      $('dlg-error').textContent = e.message;
    }
  };
  d.showModal();
}

function offerVTO(r) {
  ask({ title: `Offer VTO to ${r.driverName || r.driverId}`, text: `Route ${r.routeCode}. The driver has 30 minutes to answer.`,
    label: 'Reason (optional)', ok: (reason) => api('api/v1/vto', 'POST', { driverId: r.driverId, routeId: r.routeId, reason }) });
}

function reassign(r) {
  ask({ title: `Reassign ${r.routeCode}`, text: `Now driven by ${r.driverName || r.driverId}.`, label: 'New driver id',
    ok: (to) => api(`api/v1/routes/${enc(r.routeId)}/reassign`, 'POST', { toDriverId: to }) });
}

// ---- rendering ----

const dirty = new Set();
// Renders come at most every RENDER_EVERY ms, in an animation frame: 30
// drivers moving once a second each would otherwise repaint the map and the
// table 30 times a second, which no one reads that fast.
const RENDER_EVERY = 500;
let frame = 0; // a render is scheduled
let lastRender = -RENDER_EVERY;
function schedule() {
  if (frame) return;
  const wait = lastRender + RENDER_EVERY - performance.now();
  frame = wait > 0 ? setTimeout(() => requestAnimationFrame(render), wait) : requestAnimationFrame(render);
}
function mark(id) {
  dirty.add(id);
  schedule();
}
function markAll() {
  for (const id of state.routes.keys()) dirty.add(id);
  for (const [id, row] of rows) {
    if (!state.routes.has(id)) { row.tr.remove(); rows.delete(id); }
    else row.key = null; // presence or anything else may have changed: rebuild
  }
  schedule();
  renderRescues();
  renderOffers();
}

function sorted() {
  return [...state.routes.values()].sort((a, b) =>
    RANK[statusOf(a.statusColor)] - RANK[statusOf(b.statusColor)] ||
    (num(b.behindSchedule) ?? 0) - (num(a.behindSchedule) ?? 0) ||
    prog(a.completedStops, a.totalStops) - prog(b.completedStops, b.totalStops) ||
    text(a.routeCode).localeCompare(text(b.routeCode)));
}
function prog(done, total) {
  const d = num(done) ?? 0; const t = num(total) ?? 0;
  return t > 0 ? Math.min(1, Math.max(0, d / t)) : 0;
}

// Rendering runs at most once per animation frame, and touches only what
// changed: most events are a driver moving, which the table shows only as
// the age of the last fix, so a move rewrites one cell and one marker, not
// a row and every marker (the page used to keep half a core busy with 30
// routes; BenchmarkPageCPU measures it).
const rows = new Map(); // routeId -> {tr, key, sig, age}
function render() {
  frame = 0;
  lastRender = performance.now();
  const tbody = document.querySelector('#routes tbody');
  const list = sorted();
  $('empty').hidden = list.length > 0;
  list.forEach((r, i) => {
    let row = rows.get(r.routeId);
    if (!row) {
      row = { tr: el('tr', { dataset: { route: r.routeId } }), key: null, sig: null, age: null };
      rows.set(r.routeId, row);
    }
    if (dirty.has(r.routeId)) {
      const key = rowKey(r);
      if (key !== row.key) {
        row.key = key;
        row.age = fillRow(row.tr, r);
      } else {
        const ts = String(Date.parse(r.lastUpdated) || '');
        if (row.age.dataset.ts !== ts) { row.age.dataset.ts = ts; updateAge(row.age); }
      }
      // Flash only what a dispatcher acts on; positions move every second.
      // An animation, not a class toggled around a forced layout.
      const sig = `${r.statusColor}|${r.behindSchedule}|${r.completedStops}|${r.driverId}`;
      if (row.sig !== null && row.sig !== sig && row.tr.animate) {
        row.tr.animate([{ background: 'rgba(56, 189, 248, .35)' }, { background: 'transparent' }], { duration: 1200, easing: 'ease-out' });
      }
      row.sig = sig;
      placeMarker(r);
    }
    if (tbody.children[i] !== row.tr) tbody.insertBefore(row.tr, tbody.children[i] || null);
  });
  dirty.clear();
  renderSummary(list);
  fitOnce(state.cfg && state.cfg.center);
}

function bar(done, total) {
  const fill = el('div', { className: 'fill' });
  fill.style.width = `${Math.round(prog(done, total) * 100)}%`; // CSSOM, which a CSP without 'unsafe-inline' allows
  return el('div', { className: 'prog' }, el('div', { className: 'track' }, fill),
    el('span', { className: 'txt' }, `${showNum(done)}/${showNum(total)}`));
}

// rowKey is everything a row shows but the age of its last fix.
function rowKey(r) {
  const pr = state.presence.get(r.driverId);
  return [statusOf(r.statusColor), text(r.routeCode), text(r.routeId), text(r.driverName), text(r.driverId),
    text(r.performanceTier), pr ? `${text(pr.state)} ${text(pr.since)}` : '', showNum(r.behindSchedule),
    showNum(r.completedStops), showNum(r.totalStops), showNum(r.completedPackages), showNum(r.totalPackages)].join('\u0001');
}

// fillRow builds a row's cells and returns its age cell.
function fillRow(tr, r) {
  const c = statusOf(r.statusColor);
  const pr = state.presence.get(r.driverId);
  const ps = pr && has(PRESENCE, pr.state) ? pr.state : 'unknown';
  tr.className = 's-' + c;
  const age = el('td', { className: 'num age', dataset: { ts: String(Date.parse(r.lastUpdated) || '') } });
  tr.replaceChildren(
    el('td', null, el('span', { className: `status ${c}` }, el('span', { className: 'shape' }, SHAPES[c]), WORDS[c])),
    el('td', null, el('span', { className: 'code' }, text(r.routeCode) || text(r.routeId))),
    el('td', null, text(r.driverName) || text(r.driverId),
      r.performanceTier ? el('span', { className: 'tier' }, text(r.performanceTier)) : null,
      pr ? el('span', { className: `presence ${ps}`, title: `${text(pr.state)} since ${text(pr.since)}` },
        `${PRESENCE[ps] || '?'} `, el('span', { className: 'word' }, text(pr.state))) : null),
    el('td', { className: 'num behind' }, showNum(r.behindSchedule)),
    el('td', null, bar(r.completedStops, r.totalStops)),
    el('td', null, bar(r.completedPackages, r.totalPackages)),
    age,
    el('td', { className: 'num' },
      el('button', { className: 'rowbtn', dataset: { act: 'vto' }, title: 'Offer voluntary time off',
        onclick: () => offerVTO(state.routes.get(r.routeId)) }, 'VTO'),
      el('button', { className: 'rowbtn', dataset: { act: 'reassign' }, title: 'Move this route to another driver',
        onclick: () => reassign(state.routes.get(r.routeId)) }, 'Reassign')));
  updateAge(age);
  return age;
}

function ago(ms) {
  const s = Math.max(0, Math.round((serverNow() - ms) / 1000));
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm';
  return Math.floor(s / 3600) + 'h' + String(Math.floor((s % 3600) / 60)).padStart(2, '0');
}

function updateAge(td) {
  const ts = Number(td.dataset.ts);
  const t = ts ? ago(ts) : '–';
  if (td.textContent !== t) td.textContent = t;
  const s = ts ? (serverNow() - ts) / 1000 : 0;
  if (td.classList.contains('stale') !== (s >= 120 && s < 600)) td.classList.toggle('stale');
  if (td.classList.contains('dead') !== (s >= 600)) td.classList.toggle('dead');
}

let summaryKey = '';
function renderSummary(list) {
  const n = { RED: 0, YELLOW: 0, GREEN: 0 };
  for (const r of list) if (STATUS.has(r.statusColor)) n[r.statusColor]++;
  const key = `${n.RED} ${n.YELLOW} ${n.GREEN} ${list.length}`;
  if (key === summaryKey) return;
  summaryKey = key;
  $('summary').replaceChildren(...['RED', 'YELLOW', 'GREEN'].map((c) =>
    el('span', { className: `pill status ${c}`, dataset: { count: c } }, el('span', { className: 'shape' }, SHAPES[c]), `${n[c]} ${WORDS[c]}`)),
  el('span', { className: 'pill' }, `${list.length} routes`));
}

function onFeed(feed) {
  state.feed = feed;
  const b = $('feed-banner');
  if (isObj(feed) && feed.ok !== true && feed.error) {
    const last = Date.parse(feed.lastSuccess);
    const since = Number.isNaN(last) ? '' : ' Last good data ' + ago(last) + ' ago.';
    b.textContent = `⚠ Route feed unavailable — showing the last good state.${since} (${text(feed.error)})`;
    b.hidden = false;
  } else {
    b.hidden = true;
  }
}

function onHeartbeat(h) {
  state.heartbeat = h;
  onFeed(h.feed);
  const c = isObj(h.connections) ? h.connections : {};
  const lat = isObj(h.latencyMs) ? h.latencyMs : {};
  const up = num(h.uptimeS) ?? 0;
  const item = (...parts) => el('span', null, ...parts);
  $('status').replaceChildren(
    item('handhelds ', el('b', null, showNum(c.handhelds))), item('dashboards ', el('b', null, showNum(c.dashboards))),
    item(el('b', null, showNum(h.fixesPerS)), ' fixes/s'), item(el('b', null, showNum(h.eventsPerS)), ' events/s'),
    item('fix→publish p50 ', el('b', null, showNum(lat.p50)), ' ms · p99 ', el('b', null, showNum(lat.p99)), ' ms'),
    item('refused ', el('b', null, showNum(h.fixesRefused))),
    item('feed ', el('b', null, isObj(h.feed) && h.feed.ok === true ? 'ok' : 'DOWN')),
    item('up ', el('b', null, `${Math.floor(up / 3600)}h${String(Math.floor((up % 3600) / 60)).padStart(2, '0')}`)),
    item(`v${text(h.version)}`));
}

function tick() {
  $('clock').textContent = new Date(serverNow()).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  const d = state.lastDelay;
  $('delay').textContent = d == null ? 'delay –' : d < 1 ? 'delay <1 ms' : `delay ${Math.round(d)} ms`;
  document.querySelectorAll('td.age').forEach(updateAge);
  updateCountdowns();
  // The server publishes system:status every 5 s: 20 s without an event
  // applied on a "live" stream means a half-open connection (or a stream
  // of envelopes that are not the depot's). Drop it and reconnect.
  if (auth && state.conn === 'live' && Date.now() - lastEventAt > 20000) {
    lastEventAt = Date.now();
    if (tp.mode === 'ws' && mqttClient) mqttClient.stream.destroy();
    else tp.restartSSE();
  }
}

// ---- start ----
async function start() {
  $('logout').hidden = false;
  $('who').textContent = `(${auth.username})`;
  scheduleRenew();
  let cfg;
  try { cfg = await loadConfig(); } catch { return; }
  state.cfg = cfg;
  scheduleRenew(); // again, now on the server's clock
  $('depot').textContent = text(cfg.depot);
  document.title = `${text(cfg.depot)} · Depot Command Central`;
  if (!hasMap()) {
    try { initMap(cfg); } catch (e) { console.error('map', e); }
  }
  try { await catchUp(); } catch { /* retried on connect */ }
  mqttClient = connect(cfg);
}

setInterval(tick, 1000);
tick();
window.addEventListener('resize', resize);
if (auth) start(); else showLogin();
