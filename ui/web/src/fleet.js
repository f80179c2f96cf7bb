// The fleet page of `depot hq` (docs/fleet.md): every depot at a glance,
// worst first, and any one depot's routes, rescues and offers live, read
// only (actions stay on each depot's own dashboard).
//
// State model: the page starts from GET /api/v1/fleet, consistent with a
// stream sequence, then takes every message of the stream after it: SSE
// first (EventSource resumes by itself with Last-Event-ID), polling
// /api/v1/fleet/events when SSE keeps failing, SSE probed again from
// there. fleetstate.js keeps the two orders (the stream's and each depot's)
// and depotstate.js applies each event as the depot's own dashboard does.
// Every value from the network is checked (checks.js) and becomes text,
// never markup (dom.js).
import './style.css';
import { isObj } from './eventlog.js';
import { SSETransports } from './transport.js';
import { $, el, SHAPES, WORDS, hhmmss } from './dom.js';
import { num, showNum, text } from './checks.js';
import { newDepotState } from './depotstate.js';
import { Fleet, health, worstFirst, totals } from './fleetstate.js';
import { initMap, placeMarker, fitOnce, fitNow, clearMarkers, resize, hasMap } from './map.js';
import { RouteTable, ago } from './table.js';
import { alertText, newestFirst } from './alarms.js';
import { renderOffers, updateCountdowns } from './offers.js';
import { Session, showLogin, bindLogin, backoff } from './login.js';

export const POLL_EVERY = 2000;
export const PAGE = 1000;         // events read at a time when polling
export const MAX_PAGES = 20;      // read at most this many pages a round
export const SILENT_MS = 45000;   // no message for this long on a "live" stream: reopen it

// The page's state, for tests and for curious operators in the console:
// depots (Map depot -> its state), lastId, events, dupes, gaps, mode, csp.
const fleet = new Fleet();
Object.assign(fleet, {
  mode: 'sse',      // 'sse' or 'polling'
  conn: 'connecting',
  csp: [],          // what the Content-Security-Policy refused here: should stay empty
  selected: null,   // the depot shown, or null for the overview
  cfg: null,
  clockOffset: 0,   // server clock - browser clock, ms
  renewals: 0,
});
window.__fleet = fleet;
document.addEventListener('securitypolicyviolation', (e) => {
  if (fleet.csp.length < 20) fleet.csp.push(`${e.effectiveDirective} ${String(e.blockedURI).slice(0, 100)}`);
});

function serverNow() { return Date.now() + fleet.clockOffset; }
function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

// ---- login (login.js), as on the depot's dashboard ----
const session = new Session({
  storage: sessionStorage,
  fetch: (...a) => fetch(...a),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (t) => clearTimeout(t),
  serverNow,
  onEnd(msg) {
    closeProbe();
    tp.stopFallback();
    setConn('offline');
    showLogin(msg);
  },
  // SSE reopens from lastId with the new token; polling reads it on every
  // request.
  onRenewed() {
    fleet.renewals = session.renewals;
    tp.restartSSE();
  },
});
fleet.renewNow = () => session.renew(0);
const api = (...a) => session.api(...a);
bindLogin(session, () => start());

async function loadConfig() {
  for (let attempt = 0; ; attempt++) {
    try {
      const t0 = Date.now();
      const cfg = await api('api/v1/config');
      const t1 = Date.now();
      if (!isObj(cfg)) throw new Error('config: unexpected answer');
      if (num(cfg.serverTime) !== null) fleet.clockOffset = cfg.serverTime - (t0 + t1) / 2;
      return cfg;
    } catch (e) {
      if (!session.auth) throw e;
      setConn('offline');
      await sleep(backoff(attempt));
    }
  }
}

// ---- the snapshot ----
// reload loads GET /api/v1/fleet (again after a reset), until it gets it
// or the user is signed out.
let loading = null;
function reload() {
  if (!loading) {
    loading = (async () => {
      for (let attempt = 0; ; attempt++) {
        try {
          fleet.load(await api('api/v1/fleet'));
          break;
        } catch (e) {
          if (!session.auth) throw e;
          setConn('reconnecting');
          await sleep(backoff(attempt));
        }
      }
      afterLoad();
    })().finally(() => { loading = null; });
  }
  return loading;
}

// afterLoad redraws everything: every depot's state is a new object.
function afterLoad() {
  if (fleet.selected !== null) {
    if (fleet.depots.has(fleet.selected)) showDepot(fleet.selected); else showOverview();
  }
  renderOverview();
  renderStatus();
}

// ---- the stream ----
let lastEventAt = Date.now(); // when a message last arrived (browser clock), for the watchdog

// take applies one message of the stream and redraws what it changed.
function take(id, msg) {
  lastEventAt = Date.now();
  const r = fleet.take(id, msg, serverNow());
  if (!r || !r.change || r.depot.depot !== fleet.selected) return;
  const ch = r.change;
  switch (ch.kind) {
    case 'route': table.mark(ch.id); break;
    case 'driver': table.markDriver(ch.id); break;
    case 'rescue': renderRescues(); break;
    case 'offer': renderOffers($('offers'), r.depot.offers, serverNow); break;
    default:
  }
}

function onStreamMessage(e) {
  let msg;
  try { msg = JSON.parse(e.data); } catch { fleet.dropped++; return; }
  take(Number(e.lastEventId), msg);
}

// The stream said its start is older than the stream keeps: the server
// ends it, and the picture is loaded again before it reopens.
async function onReset() {
  if (es) es.close(); // not reconnected to the same place by EventSource
  setConn('reconnecting');
  try { await reload(); } catch { return; }
  tp.restartSSE();
}

let es = null;      // the live EventSource
let probeES = null; // one being tried from polling
const streamURL = () => `api/v1/fleet/stream?after=${fleet.lastId}&access_token=${encodeURIComponent(session.auth.token)}`;

function openStream() {
  const src = new EventSource(streamURL());
  src.onopen = () => {
    if (src === probeES) { // from polling back to SSE
      probeES = null;
      if (es && es !== src) es.close();
      es = src;
      tp.probeUp();
    } else if (src === es) {
      tp.sseOpened();
    } else {
      return;
    }
    lastEventAt = Date.now();
    setConn('live');
  };
  src.onmessage = (e) => {
    if (src !== es) return;
    tp.sseMessage();
    onStreamMessage(e);
  };
  src.addEventListener('reset', () => { if (src === es) onReset(); });
  src.onerror = () => {
    if (src === probeES) { closeProbe(); tp.probeFailed(); return; }
    if (src !== es) return;
    if (tp.sseError(src.readyState === EventSource.CLOSED) === 'reconnecting') setConn('reconnecting');
  };
  return src;
}

function closeProbe() {
  if (probeES) { probeES.close(); probeES = null; }
}

// poll reads what followed lastId (the fallback), page by page.
let pollTimer = 0;
let polling = null;
async function poll() {
  if (polling || loading || !session.auth) return;
  polling = (async () => {
    for (let pages = 0; pages < MAX_PAGES; pages++) {
      const r = await api(`api/v1/fleet/events?after=${fleet.lastId}&limit=${PAGE}`);
      if (!isObj(r)) throw new Error('events: unexpected answer');
      if (r.reset === true) { await reload(); return; }
      const evs = Array.isArray(r.events) ? r.events : [];
      for (const m of evs) take(isObj(m) ? m.id : NaN, m);
      fleet.skipTo(r.last);
      if (evs.length < PAGE) return;
    }
  })();
  try {
    await polling;
    if (tp.mode === 'polling') setConn('live');
  } catch {
    if (tp.mode === 'polling') setConn('reconnecting');
  } finally {
    polling = null;
  }
}

const tp = new SSETransports({
  openSSE() { es = openStream(); },
  closeSSE() { if (es) { es.close(); es = null; } },
  startPolling() {
    clearInterval(pollTimer);
    pollTimer = setInterval(poll, POLL_EVERY);
    poll();
  },
  stopPolling() { clearInterval(pollTimer); pollTimer = 0; },
  probe() {
    closeProbe();
    if (session.auth) probeES = openStream();
  },
  active() { return !!session.auth; },
});

function setConn(s) {
  fleet.conn = s;
  fleet.mode = tp.mode;
  const c = $('conn');
  c.className = 'conn conn-' + s;
  c.querySelector('.label').textContent = s === 'live' ? `live · ${tp.mode}` : s;
  c.title = s === 'live' ? `Live over ${tp.mode === 'sse' ? 'Server-Sent Events' : 'polling (fallback)'}` : '';
  renderStatus();
}

// fill replaces what node holds with children, leaving out the nulls
// (replaceChildren would show one as "null").
function fill(node, ...children) { node.replaceChildren(...el('div', null, ...children).childNodes); }
function plural(n, what) { return `${n} ${what}${n === 1 ? '' : 's'}`; }

// ---- the overview: every depot, worst first ----
const overviewRows = new Map(); // depot -> {tr, key}

// duration says how long ms is, as ages do: 42s, 7m, 2h05.
function duration(ms) { return ago(0, ms); }

function uplink(h) {
  if (h.stale) {
    return el('span', { className: 'badge bad', title: 'Nothing heard from this depot for over a minute: its uplink may be down' },
      '○ STALE');
  }
  if (h.catchingUp) {
    return el('span', { className: 'badge warn', title: 'Its events arrive late: a backlog is draining after an outage' },
      `◆ catching up · ${duration(h.lag)} behind`);
  }
  return el('span', { className: 'badge ok' }, '● live');
}

function heardText(d, now) { return d.lastHeard > 0 ? ago(d.lastHeard, now) : '–'; }

function count(n, c) {
  return n > 0 ? el('span', { className: `status ${c}` }, el('span', { className: 'shape' }, SHAPES[c]), String(n))
    : el('span', { className: 'muted' }, '0');
}

function fillOverviewRow(tr, d, h, now) {
  const worst = h.counts.RED + h.rescues > 0 ? 'RED' : h.counts.YELLOW > 0 ? 'YELLOW' : 'GREEN';
  tr.className = `depot-row s-${worst}` + (h.stale ? ' is-stale' : '');
  tr.replaceChildren(
    el('td', null, el('button', { type: 'button', className: 'depot-link', title: `Open ${d.depot}` }, d.depot)),
    el('td', { className: 'num', dataset: { count: 'GREEN' } }, count(h.counts.GREEN, 'GREEN')),
    el('td', { className: 'num', dataset: { count: 'YELLOW' } }, count(h.counts.YELLOW, 'YELLOW')),
    el('td', { className: 'num', dataset: { count: 'RED' } }, count(h.counts.RED, 'RED')),
    el('td', { className: 'num', dataset: { count: 'routes' } }, String(h.routes)),
    el('td', { className: 'num' + (h.rescues ? ' hot' : ''), dataset: { count: 'rescues' } }, String(h.rescues)),
    el('td', { className: 'num', dataset: { count: 'offers' } }, String(h.offers)),
    el('td', { className: 'num age' + (h.stale ? ' dead' : '') }, heardText(d, now)),
    el('td', null, uplink(h)));
}

// renderOverview draws the overview's rows (rows: worstFirst's) and the
// fleet's totals in the header.
function renderOverview(rows = worstFirst(fleet.depots.values(), serverNow())) {
  const now = serverNow();
  renderTotals(totals(rows));
  if (fleet.selected !== null) return; // the rows are drawn when the overview shows again
  const tbody = document.querySelector('#fleet tbody');
  $('fleet-empty').hidden = rows.length > 0 || !fleet.synced;
  const seen = new Set();
  rows.forEach(([d, h], i) => {
    seen.add(d.depot);
    let row = overviewRows.get(d.depot);
    if (!row) {
      const id = d.depot;
      row = { tr: el('tr', { dataset: { depot: id }, onclick: () => openDepot(id) }), key: null };
      overviewRows.set(id, row);
    }
    const key = [h.counts.GREEN, h.counts.YELLOW, h.counts.RED, h.routes, h.rescues, h.offers, heardText(d, now),
      h.stale, h.catchingUp, h.catchingUp ? duration(h.lag) : ''].join(' ');
    if (key !== row.key) { row.key = key; fillOverviewRow(row.tr, d, h, now); }
    if (tbody.children[i] !== row.tr) tbody.insertBefore(row.tr, tbody.children[i] || null);
  });
  for (const [id, row] of overviewRows) if (!seen.has(id)) { row.tr.remove(); overviewRows.delete(id); }
}

let totalsKey = '';
function renderTotals(t) {
  const key = JSON.stringify(t);
  if (key === totalsKey) return;
  totalsKey = key;
  fill($('fleet-summary'), ...['RED', 'YELLOW', 'GREEN'].map((c) =>
    el('span', { className: `pill status ${c}`, dataset: { count: c } }, el('span', { className: 'shape' }, SHAPES[c]), `${t[c]} ${WORDS[c]}`)),
  el('span', { className: 'pill' }, plural(t.depots, 'depot')),
  t.rescues ? el('span', { className: 'pill status RED' }, plural(t.rescues, 'open rescue')) : null,
  t.stale ? el('span', { className: 'pill status YELLOW' }, `${t.stale} stale`) : null);
}

// ---- one depot ----
const table = new RouteTable({
  state: newDepotState(),
  serverNow,
  readOnly: true,
  onRoute: placeMarker,
  afterRender: () => fitOnce(null),
});

function depotFromHash() {
  try { return decodeURIComponent(location.hash.slice(1)); } catch { return ''; }
}

function openDepot(id) {
  if (depotFromHash() === id) showDepot(id); else location.hash = '#' + encodeURIComponent(id);
}

// route shows what the address says: a depot (#D1) or the overview.
function route() {
  const id = depotFromHash();
  if (id && fleet.depots.has(id)) showDepot(id); else showOverview();
}

function showDepot(id) {
  const d = fleet.depots.get(id);
  const switched = fleet.selected !== id || table.state !== d;
  const fromOverview = !$('overview').hidden;
  fleet.selected = id;
  $('overview').hidden = true;
  $('depot-view').hidden = false;
  $('depot-name').textContent = id;
  document.title = `${id} · Fleet · Depot Command Central`;
  if (!hasMap()) {
    const c = isObj(fleet.cfg) && isObj(fleet.cfg.center) ? fleet.cfg.center : {};
    const mapTiles = isObj(fleet.cfg) && typeof fleet.cfg.mapTiles === 'string' ? fleet.cfg.mapTiles : '';
    try { initMap({ center: { lat: num(c.lat) ?? 0, lng: num(c.lng) ?? 0 }, mapTiles }, { depotMarker: false }); } catch (e) { console.error('map', e); }
  } else {
    resize();
  }
  if (switched) {
    clearMarkers();
    table.show(d);
    fitNow(null);
  }
  renderRescues();
  renderOffers($('offers'), d.offers, serverNow);
  renderDepotHead();
  if (fromOverview) $('back').focus(); // the keyboard goes on from the way back, not from a hidden row
}

function showOverview() {
  const was = fleet.selected;
  fleet.selected = null;
  $('depot-view').hidden = true;
  $('overview').hidden = false;
  document.title = 'Fleet · Depot Command Central';
  renderOverview();
  const b = was !== null && overviewRows.get(was);
  if (b) b.tr.querySelector('.depot-link')?.focus(); // back where the keyboard was
}

function renderRescues() {
  const d = fleet.depots.get(fleet.selected);
  const ul = $('depot-rescues');
  const list = d ? newestFirst(d.rescues.values()) : [];
  if (!list.length) { ul.replaceChildren(el('li', { className: 'muted' }, 'No open rescues.')); return; }
  ul.replaceChildren(...list.map((r) => {
    const p = isObj(r.alert) ? r.alert : {};
    const sr = isObj(p.struggleRoute) ? p.struggleRoute : { routeCode: r.routeId };
    const rd = isObj(p.rescueDriver) ? p.rescueDriver : null;
    return el('li', { className: 'rescue-item' + (r.state === 'open' ? ' open' : ''), dataset: { rescue: r.rescueId } },
      el('span', null, el('b', { className: 'status RED' }, `▲ ${text(sr.routeCode) || text(r.routeId)}`), ' ',
        isObj(r.alert) ? alertText(p) : '', rd ? [' · rescuer ', el('b', null, text(rd.driverName))] : ''),
      el('span', { className: 'st' }, text(r.state)));
  }));
}

let headKey = '';
function renderDepotHead() {
  const d = fleet.depots.get(fleet.selected);
  if (!d) return;
  const now = serverNow();
  const h = health(d, now);
  const key = `${d.depot} ${heardText(d, now)} ${h.stale} ${h.catchingUp} ${duration(h.lag)}`;
  if (key === headKey) return;
  headKey = key;
  $('depot-uplink').replaceChildren(uplink(h), el('span', { className: 'muted' }, ` heard ${heardText(d, now)}${heardText(d, now) === 'now' ? '' : ' ago'}`));
}

// ---- the status bar ----
function delayText(ms) {
  if (ms == null) return '–';
  if (ms < 1) return '<1 ms';
  if (ms < 10000) return `${Math.round(ms)} ms`;
  return duration(ms);
}

function renderStatus(t = totals(worstFirst(fleet.depots.values(), serverNow()))) {
  const item = (...parts) => el('span', null, ...parts);
  fill($('status'),
    item(el('b', null, fleet.conn === 'live' ? `live · ${tp.mode}` : fleet.conn)),
    item(el('b', null, String(t.depots)), t.depots === 1 ? ' depot' : ' depots'),
    t.stale ? el('span', { className: 'warn' }, el('b', null, String(t.stale)), ' stale') : null,
    t.catchingUp ? el('span', { className: 'warn' }, el('b', null, String(t.catchingUp)), ' catching up') : null,
    el('span', { id: 'delay', title: 'Delay of the newest event: from its depot stamping it to this screen showing it' },
      'newest event ', el('b', null, delayText(fleet.lastDelay))),
    item('events ', el('b', null, String(fleet.events))),
    fleet.gaps || fleet.dupes ? el('span', { className: 'warn' }, 'gaps ', el('b', null, String(fleet.gaps)), ' · duplicates ', el('b', null, String(fleet.dupes))) : null,
    fleet.instance ? item('hq ', el('b', null, fleet.instance)) : null,
    isObj(fleet.cfg) && fleet.cfg.version ? item(`v${text(fleet.cfg.version)}`) : null);
}

function tick() {
  $('clock').textContent = hhmmss(serverNow());
  if (fleet.selected !== null) {
    table.tick();
    updateCountdowns(serverNow);
    renderDepotHead();
  }
  const rows = worstFirst(fleet.depots.values(), serverNow());
  renderOverview(rows);
  renderStatus(totals(rows));
  // Depots send a heartbeat every 5 s: a stream that says nothing for this
  // long is probably half-open (or every depot is down). Reopen it; it
  // resumes from lastId.
  if (session.auth && fleet.conn === 'live' && tp.mode === 'sse' && Date.now() - lastEventAt > SILENT_MS) {
    lastEventAt = Date.now();
    tp.restartSSE();
  }
}

// ---- start ----
function banner(msg) {
  const b = $('banner');
  b.textContent = msg;
  b.hidden = !msg;
}

async function start() {
  $('logout').hidden = false;
  $('who').textContent = `(${session.auth.username})`;
  session.schedule();
  let cfg;
  try { cfg = await loadConfig(); } catch { return; }
  fleet.cfg = cfg;
  session.schedule(); // again, now on the server's clock
  if (cfg.mode !== 'hq') {
    banner('This server is a depot, not depot hq: its own dashboard is at the site root.');
    setConn('offline');
    return;
  }
  banner('');
  try { await reload(); } catch { return; }
  route();
  tp.start();
}

$('back').addEventListener('click', () => { location.hash = ''; });
window.addEventListener('hashchange', () => { if (fleet.synced) route(); });
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && fleet.selected !== null && $('login').hidden) location.hash = '';
});
setInterval(tick, 1000);
tick();
window.addEventListener('resize', resize);
if (session.auth) start(); else showLogin();
