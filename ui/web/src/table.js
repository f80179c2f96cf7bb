// The route table and the summary above it.
//
// Rendering runs once a second, with the clock's tick (so in the frame
// the clock draws anyway, not one of its own), and touches only what
// changed: most events are a driver moving, which the
// table shows only as the age of the last fix, so a move rewrites one cell
// and one marker, not a row and every marker (the page used to keep half a
// core busy with 30 routes; BenchmarkPageCPU measures it).
import { $, el, SHAPES, WORDS, RANK, PRESENCE } from './dom.js';
import { STATUS, has, num, showNum, text, statusOf } from './checks.js';
import { countText } from './filter.js';

// Thirty drivers moving once a second each would otherwise repaint the map
// and the table 30 times a second, which no one reads that fast. Every
// frame costs the page a few ms whatever it holds, so one a second it is.
export const RENDER_EVERY = 1000;

// sortRoutes orders routes as the depot does: RED, YELLOW, GREEN, unknown;
// then most stops behind; then least progress; then by code.
export function sortRoutes(list) {
  return [...list].sort((a, b) =>
    RANK[statusOf(a.statusColor)] - RANK[statusOf(b.statusColor)] ||
    (num(b.behindSchedule) ?? 0) - (num(a.behindSchedule) ?? 0) ||
    progress(a.completedStops, a.totalStops) - progress(b.completedStops, b.totalStops) ||
    text(a.routeCode).localeCompare(text(b.routeCode)));
}

// progress is done/total in [0, 1]; 0 when there is no total.
export function progress(done, total) {
  const d = num(done) ?? 0; const t = num(total) ?? 0;
  return t > 0 ? Math.min(1, Math.max(0, d / t)) : 0;
}

// ago says how long before now ms was: now, 42s, 7m, 2h05. Under 10 s it
// is "now": a driver who reports every second would otherwise rewrite
// every age cell every second, for a difference no one acts on.
export function ago(ms, now) {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 10) return 'now';
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm';
  return Math.floor(s / 3600) + 'h' + String(Math.floor((s % 3600) / 60)).padStart(2, '0');
}

// APPS names the handheld apps device health reports (docs/handhelds.md).
export const APPS = { owntracks: 'OwnTracks', traccar: 'Traccar Client', driverapp: 'driver app', other: 'other app' };

// deviceLabel is the row's battery/app indicator for a driver's device
// health: its text, its tooltip and whether the battery is low (under
// 20 % and not charging). null when nothing is known.
export function deviceLabel(dev) {
  if (!dev || typeof dev !== 'object') return null;
  const batt = num(dev.batt);
  const parts = [has(APPS, dev.app) ? APPS[dev.app] : 'handheld'];
  if (batt !== null) parts.push(`battery ${Math.round(batt)} %` + (dev.battState === 'charging' ? ' (charging)' : dev.battState === 'full' ? ' (full)' : ''));
  const acc = num(dev.acc);
  if (acc !== null) parts.push(`accurate to ${Math.round(acc)} m`);
  if (dev.conn === 'wifi' || dev.conn === 'mobile' || dev.conn === 'offline') parts.push(`on ${dev.conn === 'wifi' ? 'Wi-Fi' : dev.conn}`);
  const charging = dev.battState === 'charging' || dev.battState === 'full';
  return {
    text: batt !== null ? `${Math.round(batt)}%` : (has(APPS, dev.app) ? APPS[dev.app] : ''),
    title: parts.join(' · '),
    low: batt !== null && batt < 20 && !charging,
    charging,
  };
}

// rowKey is everything a row shows but the age of its last fix: a row is
// rebuilt when it changes, and only its age cell is touched otherwise.
export function rowKey(r, pr, dev) {
  const d = deviceLabel(dev);
  return [d ? `${d.text} ${d.title} ${d.low}` : '', statusOf(r.statusColor), text(r.routeCode), text(r.routeId), text(r.driverName), text(r.driverId),
    text(r.performanceTier), pr ? `${text(pr.state)} ${text(pr.since)}` : '', showNum(r.behindSchedule),
    showNum(r.completedStops), showNum(r.totalStops), showNum(r.completedPackages), showNum(r.totalPackages)].join('\u0001');
}

// flashKey is what a dispatcher acts on: a change of it flashes the row.
// Positions move every second and stops are completed every few minutes
// on every route; a row flashing for those would always be flashing (and
// repainting), and would hide the flashes that matter.
export function flashKey(r) {
  return `${r.statusColor}|${r.behindSchedule}|${r.driverId}`;
}

export class RouteTable {
  // state: the page's state (routes, presence). serverNow: the depot's
  // clock. onVTO, onReassign: a row's buttons. onRoute(r): a route changed
  // (the map moves its marker). afterRender(): every render. readOnly: no
  // buttons (the fleet page, which only watches). onOpen(routeId): a click
  // on a row or its code (the route drawer); none, no such click.
  constructor({ state, serverNow, onVTO, onReassign, onRoute, afterRender, readOnly = false, onOpen = null }) {
    Object.assign(this, { state, serverNow, onVTO, onReassign, onRoute, afterRender, readOnly, onOpen });
    this.selected = '';
    this.rows = new Map(); // routeId -> {tr, key, sig, age: its age cell, ts: the time it shows}
    this.dirty = new Set();
    this.timer = 0; // the fallback render, for when ticks are late
    this.summaryKey = '';
    this.keep = null; // the filter: which routes show (setFilter)
    this.shown = 0; // how many rows show, as of the last render
  }

  // setFilter shows only the routes keep(route) is true of (null: all),
  // from the next render on; onShow(routeId, shown), if set, hears of each
  // route that goes in or out (the map dims its marker). A route whose
  // status changes is dirty anyway: the render after it puts it in or out.
  setFilter(keep, onShow = this.onShow) {
    this.keep = keep;
    this.onShow = onShow;
  }

  // mark says route id changed; it is drawn with the next render.
  mark(id) {
    this.dirty.add(id);
    this.schedule();
  }

  // markAll redraws every row (after a snapshot: presence or anything else
  // may have changed) and drops the rows of routes that are gone.
  markAll() {
    for (const id of this.state.routes.keys()) this.dirty.add(id);
    for (const [id, row] of this.rows) {
      if (!this.state.routes.has(id)) { row.tr.remove(); this.rows.delete(id); } else row.key = null;
    }
    this.render(); // a new picture: at once
  }

  // show puts the routes of another state in the table (the fleet page
  // switching depots): every row goes, the new ones are drawn at once.
  show(state) {
    this.state = state;
    for (const row of this.rows.values()) row.tr.remove();
    this.rows.clear();
    this.dirty.clear();
    this.summaryKey = '';
    this.countText = '';
    this.markAll();
  }

  // select marks route id's row as the one the drawer shows ('' none).
  select(id) {
    const old = this.rows.get(this.selected);
    if (old) old.tr.classList.remove('sel');
    this.selected = id;
    const row = this.rows.get(id);
    if (row) row.tr.classList.add('sel');
  }

  // markDriver redraws the route(s) driver drives.
  markDriver(driver) {
    for (const r of this.state.routes.values()) if (r.driverId === driver) this.mark(r.routeId);
  }

  schedule() {
    if (this.timer) return;
    this.timer = setTimeout(() => { this.timer = 0; this.render(); }, RENDER_EVERY * 1.5);
  }

  // tick is the clock's: it draws what changed since the last one, and
  // brings the ages up to the clock.
  tick() {
    if (this.dirty.size) this.render();
    this.tickAges();
  }

  render() {
    clearTimeout(this.timer);
    this.timer = 0;
    const tbody = document.querySelector('#routes tbody');
    const list = sortRoutes(this.state.routes.values());
    $('empty').hidden = list.length > 0;
    let shown = 0;
    list.forEach((r, i) => {
      let row = this.rows.get(r.routeId);
      if (!row) {
        const id = r.routeId;
        row = { tr: el('tr', { dataset: { route: id } }), key: null, sig: null, age: null, ts: 0, on: true };
        if (this.onOpen) row.tr.onclick = (e) => { if (!e.target.closest('button')) this.onOpen(id); };
        this.rows.set(r.routeId, row);
      }
      if (this.dirty.has(r.routeId)) {
        const key = rowKey(r, this.state.presence.get(r.driverId), this.state.devices?.get(r.driverId));
        const ts = Date.parse(r.lastUpdated) || 0;
        if (key !== row.key) {
          row.key = key;
          row.age = this.fillRow(row.tr, r);
          row.ts = ts;
          this.updateAge(row);
        } else if (row.ts !== ts) {
          // The time is kept here, not in the DOM: a move whose age still
          // reads the same touches no element at all.
          row.ts = ts;
          this.updateAge(row);
        }
        // An animation, not a class toggled around a forced layout.
        const sig = flashKey(r);
        if (row.sig !== null && row.sig !== sig && row.tr.animate) {
          row.tr.animate([{ background: 'rgba(56, 189, 248, .35)' }, { background: 'transparent' }], { duration: 1200, easing: 'ease-out' });
        }
        row.sig = sig;
        this.onRoute(r);
      }
      if (tbody.children[i] !== row.tr) tbody.insertBefore(row.tr, tbody.children[i] || null);
      const on = !this.keep || this.keep(r);
      if (on) shown++;
      if (row.on !== on) {
        row.on = on;
        row.tr.hidden = !on;
        if (this.onShow) this.onShow(r.routeId, on);
      }
    });
    this.dirty.clear();
    this.shown = shown;
    // "12 of 30 routes" (filter.js), and whether none matches: written
    // when they change, not read back from the page every second.
    const ct = countText(shown, list.length, !!this.keep);
    if (ct !== this.countText) {
      this.countText = ct;
      const fc = $('filter-count'); const nm = $('nomatch');
      if (fc) fc.textContent = ct;
      if (nm) nm.hidden = !(list.length > 0 && shown === 0);
    }
    this.renderSummary(list);
    this.afterRender();
  }

  // fillRow builds a row's cells and returns its age cell.
  fillRow(tr, r) {
    const c = statusOf(r.statusColor);
    const pr = this.state.presence.get(r.driverId);
    const ps = pr && has(PRESENCE, pr.state) ? pr.state : 'unknown';
    const dev = deviceLabel(this.state.devices?.get(r.driverId));
    tr.className = 's-' + c + (this.selected === r.routeId ? ' sel' : '');
    const age = el('td', { className: 'num age' });
    // Through el's filter: replaceChildren would show a null as "null".
    tr.replaceChildren(...el('tr', null,
      el('td', null, el('span', { className: `status ${c}` }, el('span', { className: 'shape' }, SHAPES[c]), WORDS[c])),
      el('td', null, this.onOpen
        ? el('button', { type: 'button', className: 'code codebtn', title: 'Open the route drawer',
          onclick: () => this.onOpen(r.routeId) }, text(r.routeCode) || text(r.routeId))
        : el('span', { className: 'code' }, text(r.routeCode) || text(r.routeId))),
      el('td', null, text(r.driverName) || text(r.driverId),
        r.performanceTier ? el('span', { className: 'tier' }, text(r.performanceTier)) : null,
        pr ? el('span', { className: `presence ${ps}`, title: `${text(pr.state)} since ${text(pr.since)}` },
          `${PRESENCE[ps] || '?'} `, el('span', { className: 'word' }, text(pr.state))) : null,
        dev ? el('span', { className: 'device' + (dev.low ? ' low' : '') + (dev.charging ? ' charging' : ''), title: dev.title,
          'aria-label': dev.title }, dev.text) : null),
      el('td', { className: 'num behind' }, showNum(r.behindSchedule)),
      el('td', null, bar(r.completedStops, r.totalStops)),
      el('td', null, bar(r.completedPackages, r.totalPackages)),
      age,
      this.readOnly ? null : el('td', { className: 'num' },
        el('button', { className: 'rowbtn', dataset: { act: 'vto' }, title: 'Offer voluntary time off',
          onclick: () => this.onVTO(this.state.routes.get(r.routeId)) }, 'VTO'),
        el('button', { className: 'rowbtn', dataset: { act: 'reassign' }, title: 'Move this route to another driver',
          onclick: () => this.onReassign(this.state.routes.get(r.routeId)) }, 'Reassign'))).childNodes);
    return age;
  }

  // updateAge writes a row's age cell, only where what it shows changed.
  updateAge({ age: td, ts }) {
    const now = this.serverNow();
    const t = ts ? ago(ts, now) : '–';
    if (td.textContent !== t) td.textContent = t;
    const s = ts ? (now - ts) / 1000 : 0;
    if (td.classList.contains('stale') !== (s >= 120 && s < 600)) td.classList.toggle('stale');
    if (td.classList.contains('dead') !== (s >= 600)) td.classList.toggle('dead');
  }

  // tickAges brings every age cell up to the clock (once a second).
  tickAges() {
    for (const row of this.rows.values()) if (row.age) this.updateAge(row);
  }

  renderSummary(list) {
    const n = { RED: 0, YELLOW: 0, GREEN: 0 };
    for (const r of list) if (STATUS.has(r.statusColor)) n[r.statusColor]++;
    const key = `${n.RED} ${n.YELLOW} ${n.GREEN} ${list.length}`;
    if (key === this.summaryKey) return;
    this.summaryKey = key;
    $('summary').replaceChildren(...['RED', 'YELLOW', 'GREEN'].map((c) =>
      el('span', { className: `pill status ${c}`, dataset: { count: c } }, el('span', { className: 'shape' }, SHAPES[c]), `${n[c]} ${WORDS[c]}`)),
    el('span', { className: 'pill' }, `${list.length} routes`));
  }
}

function bar(done, total) {
  const fill = el('div', { className: 'fill' });
  fill.style.width = `${Math.round(progress(done, total) * 100)}%`; // CSSOM, which a CSP without 'unsafe-inline' allows
  return el('div', { className: 'prog' }, el('div', { className: 'track' }, fill),
    el('span', { className: 'txt' }, `${showNum(done)}/${showNum(total)}`));
}
