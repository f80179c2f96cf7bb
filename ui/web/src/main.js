// Depot Command Central dashboard: MQTT over WebSocket to the depot's own
// broker. Initial state comes from the retained route topics, then
// route:update deltas from the event topic. Works without internet access:
// map tiles are optional (--map-tiles); without them the map is a plain grid.
import mqtt from 'mqtt';
import L from 'leaflet';
import 'leaflet/dist/leaflet.css';
import './style.css';

const $ = (id) => document.getElementById(id);
const state = {
  cfg: null,
  routes: new Map(),   // routeId -> route status
  lastSeq: 0,
  clockOffset: 0,      // server clock - browser clock, ms
  conn: 'connecting',
  lastDelay: null,
  feed: null,
  events: 0,
};
window.__depot = state; // for tests and for curious operators in the console

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
      start();
    }
  } catch {
    $('login-msg').textContent = 'The depot cannot be reached. Check the network and try again.';
  } finally {
    btn.disabled = false;
  }
});
$('logout').addEventListener('click', () => logout('Signed out.'));

// api fetches with the token; a 401 means it expired or was revoked.
async function api(path) {
  const r = await fetch(path, { cache: 'no-store', headers: { Authorization: 'Bearer ' + auth.token } });
  if (r.status === 401) {
    logout('Your session has ended. Please sign in again.');
    throw new Error('unauthorized');
  }
  if (!r.ok) throw new Error('HTTP ' + r.status);
  return r.json();
}

const SHAPES = { RED: '▲', YELLOW: '◆', GREEN: '●' };
const WORDS = { RED: 'RESCUE', YELLOW: 'BEHIND', GREEN: 'ON TIME' };
const RANK = { RED: 0, YELLOW: 1, GREEN: 2 };
const COLORS = { RED: '#ff4d5e', YELLOW: '#ffc233', GREEN: '#2fd39a' };

function serverNow() { return Date.now() + state.clockOffset; }

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

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

// Capped exponential backoff with full jitter: a depot's dashboards that all
// lost the box at once do not come back in lockstep.
function backoff(attempt) {
  const cap = Math.min(30000, 500 * 2 ** attempt);
  return 250 + Math.random() * cap;
}

// ---- MQTT ----
function connect(cfg) {
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  const url = `${proto}://${location.host}/mqtt`;
  const t = { routes: `depot/${cfg.depot}/routes/+/state`, events: `depot/${cfg.depot}/events`,
    heartbeat: `depot/${cfg.depot}/system/heartbeat` };
  let attempt = 0;
  let pending = false;
  const client = mqtt.connect(url, {
    protocolVersion: 5,
    clean: true,
    keepalive: 20,
    reconnectPeriod: 0, // we reconnect ourselves, with backoff and jitter
    connectTimeout: 10000,
    username: auth.username,
    password: auth.token,
    clientId: `dash-${auth.username}-${Math.random().toString(16).slice(2, 10)}`,
  });
  const retry = () => {
    if (pending) return; // one retry at a time; each failed attempt closes again
    pending = true;
    const wait = backoff(attempt++);
    setConn(navigator.onLine === false || attempt > 6 ? 'offline' : 'reconnecting');
    setTimeout(() => {
      pending = false;
      if (auth && client === mqttClient && !client.connected) client.reconnect();
    }, wait);
  };
  client.on('connect', () => {
    attempt = 0;
    setConn('live');
    client.subscribe([t.routes, t.events, t.heartbeat], { qos: 0 });
  });
  client.on('close', retry);
  client.on('error', (err) => {
    // CONNACK 0x86/0x87: the token expired or was revoked. Retrying is useless.
    if (err && (err.code === 134 || err.code === 135)) logout('Your session has ended. Please sign in again.');
  });
  client.on('message', (topic, payload) => {
    let msg;
    try { msg = JSON.parse(new TextDecoder().decode(payload)); } catch { return; }
    if (topic === t.events) {
      for (const env of Array.isArray(msg) ? msg : [msg]) onEvent(env);
    } else if (topic === t.heartbeat) {
      onHeartbeat(msg);
    } else if (topic.endsWith('/state') && msg && msg.routeId) {
      state.routes.set(msg.routeId, msg);
      schedule(msg.routeId);
    }
  });
  return client;
}

function onEvent(env) {
  if (!env || typeof env.seq !== 'number') return;
  if (env.seq <= state.lastSeq) return; // seen already
  state.lastSeq = env.seq;
  state.events++;
  const ts = Date.parse(env.timestamp);
  if (!Number.isNaN(ts)) state.lastDelay = Math.max(0, serverNow() - ts);
  if (env.type === 'route:update' && env.payload && env.payload.routeId) {
    const cur = state.routes.get(env.payload.routeId) || { routeId: env.payload.routeId };
    state.routes.set(env.payload.routeId, Object.assign(cur, env.payload));
    schedule(env.payload.routeId);
  }
}

function onHeartbeat(h) {
  state.feed = h.feed || null;
  const b = $('feed-banner');
  if (state.feed && !state.feed.ok && state.feed.error) {
    const since = state.feed.lastSuccess ? ' Last good data ' + ago(Date.parse(state.feed.lastSuccess)) + ' ago.' : '';
    b.textContent = `⚠ Route feed unavailable — showing the last good state.${since} (${state.feed.error})`;
    b.hidden = false;
  } else {
    b.hidden = true;
  }
}

function setConn(s) {
  state.conn = s;
  const el = $('conn');
  el.className = 'conn conn-' + s;
  el.querySelector('.label').textContent = s;
}

// ---- rendering ----
const dirty = new Set();
let frame = 0;
function schedule(id) {
  dirty.add(id);
  if (!frame) frame = requestAnimationFrame(render);
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
    setTimeout(fitAll, 800); // let the retained states of every route arrive first
  }
}

let fitted = false;
function fitAll() {
  const pts = [...markers.values()].map((m) => m.getLatLng());
  if (state.cfg) pts.push(L.latLng(state.cfg.center.lat, state.cfg.center.lng));
  if (pts.length > 1) map.fitBounds(L.latLngBounds(pts), { padding: [40, 40], maxZoom: 15 });
}

function esc(s) { return String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`); }

function bar(done, total) {
  const pct = Math.round(prog(done, total) * 100);
  return `<div class="prog"><div class="track"><div class="fill" style="width:${pct}%"></div></div>` +
    `<span class="txt">${done ?? 0}/${total ?? 0}</span></div>`;
}

function fillRow(tr, r) {
  const c = r.statusColor || 'GREEN';
  tr.className = 's-' + c;
  tr.innerHTML =
    `<td><span class="status ${c}"><span class="shape">${SHAPES[c] || '?'}</span>${WORDS[c] || c}</span></td>` +
    `<td><span class="code">${esc(r.routeCode || r.routeId)}</span></td>` +
    `<td>${esc(r.driverName || r.driverId)}${r.performanceTier ? `<span class="tier">${esc(r.performanceTier)}</span>` : ''}</td>` +
    `<td class="num behind">${r.behindSchedule ?? 0}</td>` +
    `<td>${bar(r.completedStops, r.totalStops)}</td>` +
    `<td>${bar(r.completedPackages, r.totalPackages)}</td>` +
    `<td class="num age" data-ts="${Date.parse(r.lastUpdated) || ''}"></td>`;
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

function tick() {
  $('clock').textContent = new Date(serverNow()).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  const d = state.lastDelay;
  $('delay').textContent = d == null ? 'delay –' : d < 1 ? 'delay <1 ms' : `delay ${Math.round(d)} ms`;
  document.querySelectorAll('td.age').forEach(updateAge);
}

// ---- map ----
let map, layer;
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
    createTile(coords) {
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
  if (cfg.feed) onHeartbeat({ feed: cfg.feed });
  if (!map) {
    try { initMap(cfg); } catch (e) { console.error('map', e); }
  }
  mqttClient = connect(cfg);
}

setInterval(tick, 1000);
tick();
window.addEventListener('resize', () => map && map.invalidateSize());
if (auth) start(); else showLogin();
