// Depot Command Central dashboard.
//
// State model: the page starts from GET /api/v1/state (every route, open
// rescue and offer, presence) which is consistent with a seq, then applies
// the events on depot/{d}/events strictly in seq order. Any gap (a
// reconnect, a dropped message) is filled from GET /api/v1/events?after=
// before newer events are applied, so nothing is shown twice or skipped.
// MQTT over WebSocket to the depot's own broker; the login token is the
// MQTT password. Works without internet access: map tiles are optional.
import { connect as mqttConnect, BAD_CREDENTIALS, NOT_AUTHORIZED } from './mqttws.js';
import './style.css';
import { EventLog, isObj } from './eventlog.js';
import { Transports } from './transport.js';
import { $, el, hhmmss } from './dom.js';
import { num, showNum, text, pushSummary, upstreamSummary } from './checks.js';
import { renderOffers as renderOfferList, updateCountdowns as updateOfferCountdowns } from './offers.js';
import { applyEvent, loadSnapshot } from './depotstate.js';
import { initMap, placeMarker, fitOnce, resize, hasMap, setOnPick, selectMarker, dimMarker } from './map.js';
import { Drawer } from './drawer.js';
import { lateTopic } from './trail.js';
import { ReplayView } from './replayview.js';
import { RouteTable, ago } from './table.js';
import { Alarms } from './alarms.js';
import { Session, showLogin, bindLogin, backoff, SESSION_ENDED } from './login.js';
import { Finder } from './finder.js';
import { initExports } from './exports.js';

const state = {
  cfg: null,
  routes: new Map(),   // routeId -> route status
  rescues: new Map(),  // rescueId -> rescue (open or acknowledged)
  offers: new Map(),   // vtoId -> offer
  presence: new Map(), // driverId -> {state, since}
  devices: new Map(),  // driverId -> device health {app, batt, battState, acc, conn, lastFix}
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

// ---- login (login.js) ----
let mqttClient = null;
const session = new Session({
  storage: sessionStorage,
  fetch: (...a) => fetch(...a),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (t) => clearTimeout(t),
  serverNow,
  // Everything that runs on the token stops, and the login page shows
  // why: a dashboard whose token expired or was refused does not keep
  // reconnecting forever.
  onEnd(msg) {
    if (mqttClient) { mqttClient.removeAllListeners('close'); mqttClient.end(true); mqttClient = null; }
    tp.stopFallback();
    setConn('offline');
    showLogin(msg);
  },
  // The transports pick the new token up: MQTT by a second session that
  // replaces the first once it is up (catch-up by seq covers the switch),
  // SSE by reopening from lastSeq; polling reads it on every request.
  onRenewed() {
    state.renewals = session.renewals;
    if (tp.mode === 'ws' && mqttClient && state.cfg) {
      mqttClient.options.password = session.auth.token;
      if (mqttClient.connected) connect(state.cfg, 'handover');
    } else {
      tp.restartSSE();
    }
  },
});
state.renewNow = () => session.renew(0); // for tests, and for an operator who wants a fresh token now
const api = (...a) => session.api(...a);
bindLogin(session, () => { alarms.askPermission(); start(); });

async function loadConfig() {
  for (let attempt = 0; ; attempt++) {
    try {
      const t0 = Date.now();
      const cfg = await api('api/v1/config');
      const t1 = Date.now();
      state.clockOffset = cfg.serverTime - (t0 + t1) / 2;
      return cfg;
    } catch (e) {
      if (!session.auth) throw e;
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
  loadSnapshot(state, s);
  state.lastSeq = s.seq;
  state.synced = true;
  if (isObj(s.feed)) onFeed(s.feed);
  table.markAll();
  alarms.render();
  renderOffers();
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

// apply shows one event (depotstate.js changes the picture).
function apply(env) {
  const ch = applyEvent(state, env);
  drawer.onEvent(env);
  if (!ch) return;
  drawer.onChange(ch);
  switch (ch.kind) {
    case 'route': table.mark(ch.id); break;
    case 'rescue':
      if (ch.raised) alarms.raised(ch.raised);
      alarms.render();
      break;
    case 'offer': renderOffers(); break;
    case 'driver': table.markDriver(ch.id); break;
    case 'status': onHeartbeat(ch.status); break;
    default:
  }
}

// ---- transports (transport.js) ----
let es = null;
let pollTimer = 0;
let lastEventAt = Date.now();
const tp = new Transports({
  openSSE() {
    const url = `api/v1/stream?access_token=${encodeURIComponent(session.auth.token)}&after=${state.lastSeq}`;
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
  active() { return !!session.auth; },
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
  // A clean start, always: catch-up is by seq over the API, so there is no
  // broker session to keep. The client never reconnects by itself: retry
  // below does, with backoff and jitter.
  const client = mqttConnect(`${proto}://${location.host}/mqtt`, {
    keepalive: 20,
    connectTimeout: 10000,
    username: session.auth.username,
    password: session.auth.token,
    // "dash-<username>:<random>": the broker binds "dash-<username>" and
    // what follows a ':' to this user (a username may contain '-').
    clientId: `dash-${session.auth.username}:${Math.random().toString(16).slice(2, 10)}`,
  });
  const retry = () => {
    if (retrying) return; // one retry at a time; each failed attempt closes again
    retrying = true;
    const wait = backoff(attempt++);
    setConn(navigator.onLine === false || attempt > 6 ? 'offline' : 'reconnecting');
    setTimeout(() => {
      retrying = false;
      if (session.auth && (client === mqttClient || !mqttClient) && !client.connected) {
        client.options.password = session.auth.token; // renewed meanwhile, perhaps
        client.reconnect();
      }
    }, wait);
  };
  let up = false;
  client.on('connect', () => {
    if (!session.auth) { client.removeAllListeners('close'); client.end(true); return; } // signed out meanwhile
    up = true;
    attempt = 0;
    if (mqttClient && mqttClient !== client) { mqttClient.removeAllListeners('close'); mqttClient.end(true); }
    mqttClient = client;
    state.clientId = client.options.clientId;
    tp.wsUp();
    lastEventAt = Date.now();
    setConn('live');
    client.subscribe([events], { qos: 0 }, () => catchUp().catch(() => {}));
    late = { client: null, topic: '' }; // a new session has no subscription
    watchLate();
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
    if (err && (err.code === BAD_CREDENTIALS || err.code === NOT_AUTHORIZED)) session.end(SESSION_ENDED);
  });
  client.on('message', (topic, payload) => {
    let msg;
    try { msg = JSON.parse(new TextDecoder().decode(payload)); } catch { return; }
    if (topic !== events) {
      if (topic === late.topic) drawer.onLate(msg);
      return;
    }
    for (const env of Array.isArray(msg) ? msg : [msg]) onLive(env);
  });
  return client;
}

// ---- late fixes of the drawer's route (drawer.js onLate) ----
// A fix older than its driver's newest moves no route, so no event carries
// it: the server publishes it on its route's late topic. The page
// subscribes to the open drawer's route only (none while it is closed), so
// a depot's backlogs cost it nothing it does not show. Over the SSE or
// polling fallback there is no such topic: the trail's re-read after a
// reconnect, or a reload, brings them.
let late = { client: null, topic: '' }; // the subscription held, and on which session
function watchLate() {
  const c = mqttClient;
  if (!c || !c.connected || !state.cfg) return; // the next connect subscribes
  const want = lateTopic(state.cfg.depot, drawer.id);
  if (late.client === c && late.topic === want) return;
  if (late.client === c && late.topic) c.unsubscribe([late.topic]);
  late = { client: c, topic: want };
  state.lateSub = ''; // the topic once the broker has the subscription (for tests)
  if (want) c.subscribe([want], { qos: 0 }, (err) => { if (!err && late.client === c && late.topic === want) state.lateSub = want; });
}

function setConn(s) {
  // Back to live after a cut: the trail re-reads history from where it
  // was cut (drawer.js, reconnected).
  if (s !== 'live' && state.conn === 'live') drawer.cut();
  if (s === 'live' && state.conn !== 'live' && state.conn !== 'connecting') drawer.reconnected();
  state.conn = s;
  state.transport = tp.mode;
  const el = $('conn');
  el.className = 'conn conn-' + s;
  el.querySelector('.label').textContent = s === 'live' ? `live · ${tp.mode}` : s;
  el.title = s === 'live' ? `Live over ${tp.mode === 'ws' ? 'MQTT over WebSocket' : tp.mode === 'sse' ? 'Server-Sent Events (fallback)' : 'polling (fallback)'}` : '';
}

// ---- alarms (alarms.js) ----
// Ids go into API paths encoded: an id from the network must not turn a
// click on Resolve into a request for another path.
const enc = encodeURIComponent;
const alarms = new Alarms({
  state, storage: sessionStorage,
  resolve: (id) => api(`api/v1/rescues/${enc(id)}/resolve`, 'POST').catch((e) => alert(e.message)),
});

// ---- VTO (offers.js) ----
function renderOffers() { renderOfferList($('offers'), state.offers, serverNow); }
function updateCountdowns() { updateOfferCountdowns(serverNow); }

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

// ---- the route table (table.js) and the map (map.js) ----
const table = new RouteTable({
  state, serverNow,
  onVTO: offerVTO,
  onReassign: reassign,
  onRoute: placeMarker,
  afterRender: () => fitOnce(state.cfg && state.cfg.center),
  onOpen: (id) => drawer.open(id),
});

// ---- the route drawer and its trail (drawer.js, trail.js) ----
const drawer = new Drawer({
  state, serverNow, api,
  onVTO: offerVTO,
  onReassign: reassign,
  onShown(id) {
    watchLate();
    document.querySelector('main').classList.toggle('with-drawer', !!id);
    table.select(id);
    selectMarker(id);
    resize();
  },
});
setOnPick((id) => drawer.open(id));

// ---- the find box and status filter (finder.js), downloads (exports.js) ----
const finder = new Finder({ state, table, open: (id) => drawer.open(id), onShow: (id, on) => dimMarker(id, !on) });
initExports({ state, session, drawer, serverNow });

// ---- replay (replayview.js, replay.js): all routes, or the drawer's ----
const replay = new ReplayView({ state, api, serverNow, onShown: () => resize() });
$('replay-all').onclick = () => replay.openAll();
$('trail-replay').onclick = () => { if (drawer.id) replay.openRoute(drawer.id, drawer.range); };

function onFeed(feed) {
  state.feed = feed;
  const b = $('feed-banner');
  if (isObj(feed) && feed.ok !== true && feed.error) {
    const last = Date.parse(feed.lastSuccess);
    const a = Number.isNaN(last) ? '' : ago(last, serverNow());
    const since = !a ? '' : a === 'now' ? ' Last good data just now.' : ` Last good data ${a} ago.`;
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
    // '' where there is nothing to say: replaceChildren shows a null as "null".
    ((ps) => (ps ? el('span', { title: ps.title, className: ps.bad ? 'warn' : '' }, 'push ', el('b', null, ps.text)) : ''))(pushSummary(h.push)),
    ((us) => (us ? el('span', { title: us.title, className: us.bad ? 'warn' : '' }, 'fleet ', el('b', null, us.text)) : ''))(upstreamSummary(h.upstream)),
    item('up ', el('b', null, `${Math.floor(up / 3600)}h${String(Math.floor((up % 3600) / 60)).padStart(2, '0')}`)),
    item(`v${text(h.version)}`));
}

function tick() {
  $('clock').textContent = hhmmss(serverNow());
  const d = state.lastDelay;
  $('delay').textContent = d == null ? 'delay –' : d < 1 ? 'delay <1 ms' : `delay ${Math.round(d)} ms`;
  table.tick();
  drawer.tick();
  updateCountdowns();
  // The server publishes system:status every 5 s: 20 s without an event
  // applied on a "live" stream means a half-open connection (or a stream
  // of envelopes that are not the depot's). Drop it and reconnect.
  if (session.auth && state.conn === 'live' && Date.now() - lastEventAt > 20000) {
    lastEventAt = Date.now();
    if (tp.mode === 'ws' && mqttClient) mqttClient.stream.destroy();
    else tp.restartSSE();
  }
}

// ---- start ----
async function start() {
  $('logout').hidden = false;
  $('who').textContent = `(${session.auth.username})`;
  $('admin-link').hidden = session.auth.role !== 'admin'; // the admin page (admin.html)
  $('export-events').hidden = false;
  session.schedule();
  let cfg;
  try { cfg = await loadConfig(); } catch { return; }
  state.cfg = cfg;
  session.schedule(); // again, now on the server's clock
  $('depot').textContent = text(cfg.depot);
  document.title = `${text(cfg.depot)} · Depot Command Central`;
  if (!hasMap()) {
    try { initMap(cfg); } catch (e) { console.error('map', e); }
  }
  try { await catchUp(); } catch { /* retried on connect */ }
  finder.fromHash(); // and the filter (#route=ID&status=…&q=…)
  drawer.fromHash(); // a reload keeps the selected route (#route=ID)
  mqttClient = connect(cfg);
}

setInterval(tick, 1000);
tick();
window.addEventListener('resize', resize);
if (session.auth) start(); else showLogin();
