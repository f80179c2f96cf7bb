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
import L from 'leaflet';
import 'leaflet/dist/leaflet.css';
import './style.css';

const $ = (id) => document.getElementById(id);
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
  map: null,
};
window.__depot = state; // for tests and for curious operators in the console

const SHAPES = { RED: '▲', YELLOW: '◆', GREEN: '●' };
const WORDS = { RED: 'RESCUE', YELLOW: 'BEHIND', GREEN: 'ON TIME' };
const RANK = { RED: 0, YELLOW: 1, GREEN: 2 };
const COLORS = { RED: '#ff4d5e', YELLOW: '#ffc233', GREEN: '#2fd39a' };
const PRESENCE = { online: ['●', 'online'], offline: ['○', 'offline'], silent: ['◌', 'silent'] };

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
let expiryTimer = 0;

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
  clearTimeout(expiryTimer);
  if (mqttClient) { mqttClient.removeAllListeners('close'); mqttClient.end(true); mqttClient = null; }
  stopFallback();
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

// ---- the event stream, in seq order ----
let pending = [];     // live events waiting for a catch-up to finish
let catchingUp = null;

// loadState replaces everything with the server's snapshot.
async function loadState() {
  const s = await api('api/v1/state');
  state.routes = new Map(s.routes.map((r) => [r.routeId, r]));
  state.rescues = new Map(s.rescues.map((r) => [r.rescueId, r]));
  state.offers = new Map(s.offers.map((o) => [o.vtoId, o]));
  state.presence = new Map(Object.entries(s.presence || {}));
  state.lastSeq = s.seq;
  state.synced = true;
  if (s.feed) onFeed(s.feed);
  markAll();
}

// catchUp reads what followed lastSeq until nothing is missing, then
// applies the live events that queued meanwhile. A dashboard that was away
// for very long reloads the snapshot instead of replaying.
function catchUp() {
  if (catchingUp) return catchingUp;
  catchingUp = (async () => {
    try {
      if (!state.synced) {
        await loadState();
      } else {
        for (let pages = 0; ; pages++) {
          if (pages >= 20) { await loadState(); break; }
          let evs;
          try {
            evs = await api(`api/v1/events?after=${state.lastSeq}&limit=1000`);
          } catch (e) {
            if (e.status !== 410) throw e;
            await loadState(); // away longer than the log keeps: start again
            break;
          }
          evs.forEach(applyInOrder);
          if (evs.length < 1000) break;
        }
      }
      const q = pending.sort((a, b) => a.seq - b.seq);
      pending = [];
      q.forEach(applyInOrder);
    } finally {
      catchingUp = null;
    }
    if (pending.length) catchUp(); // a gap opened while we caught up
  })();
  return catchingUp;
}

function onLive(env) {
  lastEventAt = Date.now();
  if (!env || typeof env.seq !== 'number' || env.seq <= state.lastSeq) return; // seen already
  if (catchingUp || !state.synced || env.seq !== state.lastSeq + 1) {
    pending.push(env);
    catchUp().catch(() => {});
    return;
  }
  applyInOrder(env);
  const ts = Date.parse(env.timestamp);
  if (!Number.isNaN(ts)) state.lastDelay = Math.max(0, serverNow() - ts);
}

function applyInOrder(env) {
  if (env.seq <= state.lastSeq) return;
  if (env.seq !== state.lastSeq + 1) state.gaps++;
  state.lastSeq = env.seq;
  state.events++;
  apply(env);
}

function apply(env) {
  const p = env.payload || {};
  switch (env.type) {
    case 'route:update': {
      const cur = state.routes.get(p.routeId) || { routeId: p.routeId };
      state.routes.set(p.routeId, Object.assign(cur, p));
      mark(p.routeId);
      break;
    }
    case 'rescue:alert':
      state.rescues.set(p.rescueId, { rescueId: p.rescueId, routeId: p.struggleRoute.routeId, state: 'open',
        seq: env.seq, alert: p, createdAt: env.timestamp });
      alarm(p);
      renderRescues();
      break;
    case 'rescue:updated': {
      const r = state.rescues.get(p.rescueId);
      if (r && p.state === 'resolved') state.rescues.delete(p.rescueId);
      else if (r) r.state = p.state;
      renderRescues();
      break;
    }
    case 'vto:offer':
      state.offers.set(p.vtoId, p);
      renderOffers();
      break;
    case 'vto:accepted': case 'vto:declined': case 'vto:expired': case 'vto:confirmed': {
      const o = state.offers.get(p.vtoId);
      if (o) { o.state = p.state; renderOffers(); }
      break;
    }
    case 'driver:presence':
      state.presence.set(p.driverId, { state: p.state, since: p.since });
      for (const r of state.routes.values()) if (r.driverId === p.driverId) mark(r.routeId);
      break;
    case 'system:status':
      onHeartbeat(p);
      break;
    default:
  }
}

// ---- transports ----
// MQTT over WebSocket first. When the WebSocket cannot be opened (a proxy
// strips the upgrade), the page falls back to Server-Sent Events, and if
// those are cut too, to polling the event log. It keeps trying the
// WebSocket every 30 s and returns to it. Every transport feeds onLive, so
// order and gap-filling are the same whichever is live.
let transport = 'ws';
let es = null;
let pollTimer = 0;
let probeTimer = 0;
let lastEventAt = Date.now();

function stopFallback() {
  if (es) { es.close(); es = null; }
  clearInterval(pollTimer); pollTimer = 0;
  clearTimeout(probeTimer); probeTimer = 0;
}

function fallBack(cfg) {
  if (es || pollTimer) return;
  startSSE();
  clearTimeout(probeTimer);
  probeTimer = setTimeout(() => probeWS(cfg), 30000);
}

function probeWS(cfg) {
  probeTimer = 0;
  if (!auth || transport === 'ws') return;
  connect(cfg, true);
}

function startSSE() {
  clearInterval(pollTimer); pollTimer = 0;
  const url = `api/v1/stream?access_token=${encodeURIComponent(auth.token)}&after=${state.lastSeq}`;
  let errors = 0;
  es = new EventSource(url);
  es.onopen = () => { errors = 0; transport = 'sse'; setConn('live'); };
  es.onmessage = (e) => {
    errors = 0;
    try { onLive(JSON.parse(e.data)); } catch { /* not an envelope */ }
  };
  es.addEventListener('reset', () => { state.synced = false; catchUp().catch(() => {}); });
  // EventSource reconnects by itself, sending Last-Event-ID; after a few
  // failures in a row, SSE is taken to be cut as well.
  es.onerror = () => {
    if (++errors < 3 && es.readyState !== EventSource.CLOSED) { setConn('reconnecting'); return; }
    es.close(); es = null;
    startPolling();
  };
}

function startPolling() {
  transport = 'polling';
  clearInterval(pollTimer);
  pollTimer = setInterval(() => {
    catchUp().then(() => { lastEventAt = Date.now(); setConn('live'); }, () => setConn('reconnecting'));
  }, 2000);
}

// ---- MQTT ----
function connect(cfg, probe = false) {
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  const events = `depot/${cfg.depot}/events`;
  let attempt = 0;
  let retrying = false;
  let failures = 0; // attempts in a row that never connected
  const client = mqtt.connect(`${proto}://${location.host}/mqtt`, {
    protocolVersion: 5,
    clean: true, // catch-up is by seq over the API: no broker session to keep
    keepalive: 20,
    reconnectPeriod: 0, // we reconnect ourselves, with backoff and jitter
    connectTimeout: 10000,
    username: auth.username,
    password: auth.token,
    clientId: `dash-${auth.username}-${Math.random().toString(16).slice(2, 10)}`,
  });
  const retry = () => {
    if (retrying) return; // one retry at a time; each failed attempt closes again
    retrying = true;
    const wait = backoff(attempt++);
    setConn(navigator.onLine === false || attempt > 6 ? 'offline' : 'reconnecting');
    setTimeout(() => {
      retrying = false;
      if (auth && (client === mqttClient || !mqttClient) && !client.connected) client.reconnect();
    }, wait);
  };
  let up = false;
  client.on('connect', () => {
    up = true;
    attempt = 0; failures = 0;
    if (mqttClient && mqttClient !== client) { mqttClient.removeAllListeners('close'); mqttClient.end(true); }
    mqttClient = client;
    stopFallback();
    transport = 'ws';
    lastEventAt = Date.now();
    setConn('live');
    client.subscribe([events], { qos: 0 }, () => catchUp().catch(() => {}));
  });
  client.on('close', () => {
    if (!up) failures++;
    up = false;
    if (probe && mqttClient !== client) { // a probe that failed: stay on the fallback
      client.removeAllListeners('close'); client.end(true);
      if (auth) probeTimer = setTimeout(() => probeWS(cfg), 30000);
      return;
    }
    if (failures >= 2) { // the WebSocket cannot be opened here
      client.removeAllListeners('close'); client.end(true);
      if (mqttClient === client) mqttClient = null;
      fallBack(cfg);
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
  state.transport = transport;
  const el = $('conn');
  el.className = 'conn conn-' + s;
  el.querySelector('.label').textContent = s === 'live' ? `live · ${transport}` : s;
  el.title = s === 'live' ? `Live over ${transport === 'ws' ? 'MQTT over WebSocket' : transport === 'sse' ? 'Server-Sent Events (fallback)' : 'polling (fallback)'}` : '';
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
  const txt = `${p.struggleRoute.routeCode} (${p.struggleRoute.driverName}) is ${p.struggleRoute.behindSchedule} stops behind`;
  if ('Notification' in window && Notification.permission === 'granted') {
    try { new Notification('Rescue needed', { body: txt, tag: p.rescueId, requireInteraction: true }); } catch { /* ignore */ }
  }
}

// Acknowledging is per screen (sessionStorage): it silences the banner
// here; resolving closes the rescue for everyone.
const ACK_KEY = 'depot.acked';
const acked = new Set(JSON.parse(sessionStorage.getItem(ACK_KEY) || '[]'));
function ack(id) {
  acked.add(id);
  sessionStorage.setItem(ACK_KEY, JSON.stringify([...acked]));
  renderRescues();
}

function renderRescues() {
  const box = $('rescues');
  const list = [...state.rescues.values()].sort((a, b) => b.seq - a.seq);
  box.innerHTML = '';
  let loud = false;
  for (const r of list) {
    const p = r.alert || {};
    const sr = p.struggleRoute || { routeCode: r.routeId };
    const rd = p.rescueDriver;
    const eta = p.estimatedArrival ? new Date(p.estimatedArrival).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : '';
    const isAcked = acked.has(r.rescueId);
    loud = loud || !isAcked;
    const div = document.createElement('div');
    div.className = 'rescue' + (isAcked ? ' acked' : '');
    div.dataset.rescue = r.rescueId;
    div.innerHTML =
      `<span class="big">▲ RESCUE ${esc(sr.routeCode)}</span>` +
      `<span class="grow">${esc(sr.driverName || '')} is <b>${sr.behindSchedule ?? '?'}</b> stops behind. ` +
      (rd ? `Send <b>${esc(rd.driverName)}</b> (${esc(rd.performanceTier)}, ${rd.distanceKm} km${eta ? ', ETA ' + eta : ''})` : '<b>No rescuer available.</b>') +
      (p.transferLocation && p.transferLocation.address ? ` to ${esc(p.transferLocation.address)}` : '') +
      ` · ${esc(r.state)}</span>` +
      (isAcked ? '' : '<button class="primary" data-act="ack">Acknowledge</button>') +
      '<button data-act="resolve">Resolve</button>';
    div.querySelector('[data-act="resolve"]').onclick = () => api(`api/v1/rescues/${r.rescueId}/resolve`, 'POST').catch((e) => alert(e.message));
    const a = div.querySelector('[data-act="ack"]');
    if (a) a.onclick = () => ack(r.rescueId);
    box.appendChild(div);
  }
  clearInterval(beepTimer);
  if (loud) { beep(); beepTimer = setInterval(beep, 10000); }
}

// ---- VTO ----
function renderOffers() {
  const ul = $('offers');
  const list = [...state.offers.values()].sort((a, b) => Date.parse(b.offeredAt) - Date.parse(a.offeredAt));
  if (!list.length) { ul.innerHTML = '<li class="muted">No offers.</li>'; return; }
  ul.innerHTML = list.map((o) =>
    `<li data-vto="${esc(o.vtoId)}"><span><b>${esc(o.routeCode)}</b> ${esc(o.driverName)}` +
    `${o.reason ? ` <span class="muted">· ${esc(o.reason)}</span>` : ''}</span>` +
    (o.state === 'open' ? `<span class="countdown" data-expires="${Date.parse(o.expiresAt)}"></span>` :
      `<span class="st st-${esc(o.state)}">${esc(o.state)}</span>`) + '</li>').join('');
  updateCountdowns();
}

// Countdowns run on the server's clock (corrected by the offset measured
// at start), not the browser's.
function updateCountdowns() {
  document.querySelectorAll('.countdown').forEach((el) => {
    const left = Math.max(0, Math.round((Number(el.dataset.expires) - serverNow()) / 1000));
    el.textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}`;
  });
}

// ---- dialogs for row actions ----
function ask({ title, text, label, value = '', ok }) {
  const d = $('dlg');
  $('dlg-title').textContent = title;
  $('dlg-text').textContent = text || '';
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
    ok: (to) => api(`api/v1/routes/${r.routeId}/reassign`, 'POST', { toDriverId: to }) });
}

// ---- rendering ----
const dirty = new Set();
let frame = 0;
function mark(id) {
  dirty.add(id);
  if (!frame) frame = requestAnimationFrame(render);
}
function markAll() {
  for (const id of state.routes.keys()) dirty.add(id);
  for (const [id, tr] of rows) if (!state.routes.has(id)) { tr.remove(); rows.delete(id); }
  if (!frame) frame = requestAnimationFrame(render);
  renderRescues();
  renderOffers();
}

function sorted() {
  return [...state.routes.values()].sort((a, b) =>
    (RANK[a.statusColor] ?? 3) - (RANK[b.statusColor] ?? 3) ||
    (b.behindSchedule || 0) - (a.behindSchedule || 0) ||
    prog(a.completedStops, a.totalStops) - prog(b.completedStops, b.totalStops) ||
    String(a.routeCode).localeCompare(String(b.routeCode)));
}
function prog(done, total) { return total > 0 ? done / total : 0; }

const rows = new Map(); // routeId -> <tr>
function render() {
  frame = 0;
  const tbody = document.querySelector('#routes tbody');
  const list = sorted();
  $('empty').hidden = list.length > 0;
  list.forEach((r, i) => {
    let tr = rows.get(r.routeId);
    if (!tr) {
      tr = document.createElement('tr');
      tr.dataset.route = r.routeId;
      rows.set(r.routeId, tr);
    }
    if (dirty.has(r.routeId) || !tr.firstChild) {
      // Flash only what a dispatcher acts on; positions move every second.
      const sig = `${r.statusColor}|${r.behindSchedule}|${r.completedStops}|${r.driverId}`;
      const changed = tr.dataset.sig !== undefined && tr.dataset.sig !== sig;
      tr.dataset.sig = sig;
      fillRow(tr, r);
      if (changed) { tr.classList.remove('flash'); void tr.offsetWidth; tr.classList.add('flash'); }
    }
    if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);
    placeMarker(r);
  });
  dirty.clear();
  renderSummary(list);
  if (!fitted && markers.size > 0) {
    fitted = true;
    setTimeout(fitAll, 800); // let every route arrive first
  }
}

function esc(s) { return String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`); }

function bar(done, total) {
  const pct = Math.round(prog(done, total) * 100);
  return `<div class="prog"><div class="track"><div class="fill" style="width:${pct}%"></div></div>` +
    `<span class="txt">${done ?? 0}/${total ?? 0}</span></div>`;
}

function fillRow(tr, r) {
  const c = r.statusColor || 'GREEN';
  const pr = state.presence.get(r.driverId);
  tr.className = 's-' + c;
  tr.innerHTML =
    `<td><span class="status ${c}"><span class="shape">${SHAPES[c] || '?'}</span>${WORDS[c] || c}</span></td>` +
    `<td><span class="code">${esc(r.routeCode || r.routeId)}</span></td>` +
    `<td>${esc(r.driverName || r.driverId)}${r.performanceTier ? `<span class="tier">${esc(r.performanceTier)}</span>` : ''}` +
    (pr ? `<span class="presence ${esc(pr.state)}" title="${esc(pr.state)} since ${esc(pr.since)}">` +
      `${(PRESENCE[pr.state] || ['?'])[0]} <span class="word">${esc(pr.state)}</span></span>` : '') + '</td>' +
    `<td class="num behind">${r.behindSchedule ?? 0}</td>` +
    `<td>${bar(r.completedStops, r.totalStops)}</td>` +
    `<td>${bar(r.completedPackages, r.totalPackages)}</td>` +
    `<td class="num age" data-ts="${Date.parse(r.lastUpdated) || ''}"></td>` +
    '<td class="num"><button class="rowbtn" data-act="vto" title="Offer voluntary time off">VTO</button>' +
    '<button class="rowbtn" data-act="reassign" title="Move this route to another driver">Reassign</button></td>';
  tr.querySelector('[data-act="vto"]').onclick = () => offerVTO(state.routes.get(r.routeId));
  tr.querySelector('[data-act="reassign"]').onclick = () => reassign(state.routes.get(r.routeId));
  updateAge(tr.querySelector('.age'));
}

function ago(ms) {
  const s = Math.max(0, Math.round((serverNow() - ms) / 1000));
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm';
  return Math.floor(s / 3600) + 'h' + String(Math.floor((s % 3600) / 60)).padStart(2, '0');
}

function updateAge(td) {
  const ts = Number(td.dataset.ts);
  if (!ts) { td.textContent = '–'; return; }
  const s = (serverNow() - ts) / 1000;
  td.textContent = ago(ts);
  td.classList.toggle('stale', s >= 120 && s < 600);
  td.classList.toggle('dead', s >= 600);
}

function renderSummary(list) {
  const n = { RED: 0, YELLOW: 0, GREEN: 0 };
  for (const r of list) n[r.statusColor] = (n[r.statusColor] || 0) + 1;
  $('summary').innerHTML = ['RED', 'YELLOW', 'GREEN'].map((c) =>
    `<span class="pill status ${c}" data-count="${c}"><span class="shape">${SHAPES[c]}</span>${n[c]} ${WORDS[c]}</span>`).join('') +
    `<span class="pill">${list.length} routes</span>`;
}

function onFeed(feed) {
  state.feed = feed;
  const b = $('feed-banner');
  if (feed && !feed.ok && feed.error) {
    const since = feed.lastSuccess ? ' Last good data ' + ago(Date.parse(feed.lastSuccess)) + ' ago.' : '';
    b.textContent = `⚠ Route feed unavailable — showing the last good state.${since} (${feed.error})`;
    b.hidden = false;
  } else {
    b.hidden = true;
  }
}

function onHeartbeat(h) {
  state.heartbeat = h;
  onFeed(h.feed);
  const c = h.connections || {};
  const lat = h.latencyMs || {};
  $('status').innerHTML =
    `<span>handhelds <b>${c.handhelds ?? '–'}</b></span><span>dashboards <b>${c.dashboards ?? '–'}</b></span>` +
    `<span><b>${h.fixesPerS ?? 0}</b> fixes/s</span><span><b>${h.eventsPerS ?? 0}</b> events/s</span>` +
    `<span>fix→publish p50 <b>${lat.p50 ?? 0}</b> ms · p99 <b>${lat.p99 ?? 0}</b> ms</span>` +
    `<span>refused <b>${h.fixesRefused ?? 0}</b></span>` +
    `<span>feed <b>${h.feed && h.feed.ok ? 'ok' : 'DOWN'}</b></span>` +
    `<span>up <b>${Math.floor((h.uptimeS || 0) / 3600)}h${String(Math.floor(((h.uptimeS || 0) % 3600) / 60)).padStart(2, '0')}</b></span>` +
    `<span>v${esc(h.version || '')}</span>`;
}

function tick() {
  $('clock').textContent = new Date(serverNow()).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  const d = state.lastDelay;
  $('delay').textContent = d == null ? 'delay –' : d < 1 ? 'delay <1 ms' : `delay ${Math.round(d)} ms`;
  document.querySelectorAll('td.age').forEach(updateAge);
  updateCountdowns();
  // The server publishes system:status every 5 s: 20 s of silence on a
  // "live" stream means a half-open connection. Drop it and reconnect.
  if (auth && state.conn === 'live' && Date.now() - lastEventAt > 20000) {
    lastEventAt = Date.now();
    if (transport === 'ws' && mqttClient) mqttClient.stream.destroy();
    else if (transport === 'sse' && es) { es.close(); es = null; startSSE(); }
  }
}

// ---- map ----
let map, layer;
let fitted = false;
const markers = new Map();
function initMap(cfg) {
  map = L.map('map', { zoomControl: true, zoomSnap: 0.25, attributionControl: !!cfg.mapTiles, preferCanvas: true })
    .setView([cfg.center.lat, cfg.center.lng], 11);
  if (cfg.mapTiles) {
    L.tileLayer(cfg.mapTiles, { maxZoom: 19 }).addTo(map);
  } else {
    gridLayer().addTo(map);
  }
  L.marker([cfg.center.lat, cfg.center.lng], {
    icon: L.divIcon({ className: 'depot-icon', iconSize: [18, 18] }), title: 'Depot', keyboard: false,
  }).addTo(map).bindTooltip('DEPOT', { permanent: true, direction: 'right', className: 'lbl' });
  layer = L.layerGroup().addTo(map);
  state.map = map;
}

// A faint graticule stands in for tiles, so positions read as places even
// with no internet access.
function gridLayer() {
  const G = L.GridLayer.extend({
    createTile() {
      const c = document.createElement('canvas');
      const size = this.getTileSize();
      c.width = size.x; c.height = size.y;
      const g = c.getContext('2d');
      g.strokeStyle = '#1a2640'; g.lineWidth = 1;
      g.strokeRect(0.5, 0.5, size.x, size.y);
      return c;
    },
  });
  return new G();
}

function fitAll() {
  const pts = [...markers.values()].map((m) => m.getLatLng());
  if (state.cfg) pts.push(L.latLng(state.cfg.center.lat, state.cfg.center.lng));
  if (pts.length > 1) map.fitBounds(L.latLngBounds(pts), { padding: [40, 40], maxZoom: 15 });
}

function placeMarker(r) {
  if (!map || typeof r.currentLat !== 'number' || (r.currentLat === 0 && r.currentLng === 0)) return;
  const color = COLORS[r.statusColor] || '#93a3bf';
  let m = markers.get(r.routeId);
  if (!m) {
    m = L.circleMarker([r.currentLat, r.currentLng], { radius: 8, weight: 2, color: '#0b1220', fillOpacity: 1 })
      .bindTooltip('', { permanent: true, direction: 'right', className: 'lbl', offset: [6, 0] });
    m.addTo(layer);
    markers.set(r.routeId, m);
  }
  m.setLatLng([r.currentLat, r.currentLng]);
  m.setStyle({ fillColor: color, radius: r.statusColor === 'RED' ? 11 : 8 });
  m.setTooltipContent(`<span style="color:${color}">${r.statusColor === 'GREEN' ? '' : SHAPES[r.statusColor] || ''}</span>${esc(r.routeCode || r.routeId)}`);
}

// ---- start ----
async function start() {
  $('logout').hidden = false;
  $('who').textContent = `(${auth.username})`;
  clearTimeout(expiryTimer);
  expiryTimer = setTimeout(() => logout('Your shift token expired. Please sign in again.'),
    Math.max(0, Date.parse(auth.expiresAt) - Date.now()));
  let cfg;
  try { cfg = await loadConfig(); } catch { return; }
  state.cfg = cfg;
  $('depot').textContent = cfg.depot;
  document.title = `${cfg.depot} · Depot Command Central`;
  if (!map) {
    try { initMap(cfg); } catch (e) { console.error('map', e); }
  }
  try { await catchUp(); } catch { /* retried on connect */ }
  mqttClient = connect(cfg);
}

setInterval(tick, 1000);
tick();
window.addEventListener('resize', () => map && map.invalidateSize());
if (auth) start(); else showLogin();
