// The route drawer: one route's numbers, its driver's device, its day in
// events, its actions, and its trail on the map (docs/workspace.md).
//
// Keeping the live view fast: the page tells the drawer of every change
// (onChange, onEvent) and the drawer ignores all but its route's and its
// driver's, marks itself dirty and redraws with the clock's tick, like the
// table. A live fix of its route extends the line; the day is not redrawn.
// Every value shown is text (el, textContent): names and codes come from
// the network.
import { $, el, SHAPES, WORDS, PRESENCE, hhmm } from './dom.js';
import { has, num, showNum, text, statusOf } from './checks.js';
import { APPS } from './table.js';
import { routeFromHash, words, routeKey, deviceKey, lastFix } from './drawerview.js';
import { merge, Stops, timeRange, inRange, loadHistory, pointOfRoute, lateFixes, AHEAD, startOfDay } from './trail.js';
import { Journal, TYPES, firstSeqSince, readSince } from './timeline.js';
import { withParams } from './filter.js';
import * as mapview from './map.js';

// A datetime-local input's value is local time without a zone.
const fromLocal = (v) => (v ? new Date(v).getTime() : NaN);

export class Drawer {
  // state: the page's (routes, devices, presence, lastSeq). serverNow:
  // the depot's clock. api(path): GET of the API. onVTO(r), onReassign(r):
  // the table's row actions. onShown(id | ''): the selection changed (the
  // table marks its row, the map resizes).
  constructor({ state, serverNow, api, onVTO, onReassign, onShown }) {
    Object.assign(this, { state, serverNow, api, onVTO, onReassign, onShown });
    this.id = '';
    this.dirty = false;
    this.journal = new Journal();
    this.dayRead = null; // the read back of today's events: a promise, once a page
    this.timelineNote = '';
    this.pts = [];
    this.stops = new Stops({ minDwellMs: 120000, radiusM: 30 });
    this.drawn = 0; // points of pts on the map's line (0: draw anew)
    this.range = null;
    this.load = 0; // the current selection's number: answers for an older one are dropped
    this.follow = false;
    this.routeKey = null; // what the route's part shows (routeKey), drawn
    this.deviceKey = null; // what the device's part shows (deviceKey), drawn
    this.info = state.drawer = { open: false, routeId: '', line: 0, stops: 0, follow: false, loads: 0, loading: false, timeline: 0, late: 0, pans: 0 };
    // points: the trail's, as of now (line: those drawn, at the next tick).
    Object.defineProperty(this.info, 'points', { get: () => this.pts.length, enumerable: true });
    // For tests: is the trail's newest point on the map's view?
    this.info.lastInView = () => { const p = this.pts[this.pts.length - 1]; return !!p && mapview.inView(p); };
    $('drawer-close').onclick = () => this.close();
    $('drawer-vto').onclick = () => { const r = this.route(); if (r) this.onVTO(r); };
    $('drawer-reassign').onclick = () => { const r = this.route(); if (r) this.onReassign(r); };
    $('drawer-locate').onclick = () => this.locate();
    $('trail-range').onchange = () => {
      $('trail-custom').hidden = $('trail-range').value !== 'custom';
      if ($('trail-range').value !== 'custom') this.reloadTrail();
    };
    $('trail-apply').onclick = () => this.reloadTrail();
    $('trail-follow').onclick = () => this.setFollow(!this.follow);
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && this.id && !$('dlg').open) { e.preventDefault(); this.close(); }
    });
    window.addEventListener('hashchange', () => this.fromHash());
    this.pannedHooked = false;
  }

  route() { return this.id ? this.state.routes.get(this.id) : undefined; }

  // fromHash opens the route the address names (a reload keeps it), or
  // closes the drawer when it names none.
  fromHash() {
    const id = routeFromHash(location.hash);
    if (id && id !== this.id) this.open(id, { focus: false });
    else if (!id && this.id) this.close();
  }

  // open shows route id: its numbers at once, its trail and timeline as
  // they are read.
  open(id, { focus = true } = {}) {
    if (!this.pannedHooked) {
      mapview.onUserPan(() => { if (this.follow) this.setFollow(false); });
      // Zoomed in, the moves that were under a pixel show: the line takes them.
      mapview.onZoomEnd(() => {
        if (this.id && this.drawn > 0 && this.drawn < this.pts.length) { mapview.extendTrail(this.pts.slice(this.drawn)); this.drawn = this.pts.length; this.info.line = mapview.trailLength(); }
      });
      this.pannedHooked = true;
    }
    const again = id === this.id;
    this.id = id;
    const h = withParams(location.hash, { route: id }); // the filter's parts stay (filter.js)
    if (location.hash !== h) history.replaceState(null, '', h);
    $('drawer').hidden = false;
    this.info.open = true;
    this.info.routeId = id;
    this.onShown(id);
    this.routeKey = this.deviceKey = null;
    this.render();
    if (focus) {
      if (!this.opener) this.opener = document.activeElement; // where the keyboard goes back to
      $('drawer-close').focus();
    }
    if (!again) { $('drawer-locate-msg').textContent = ''; this.reloadTrail(true); }
    this.readDay();
  }

  // locate asks the driver's handhelds for a fix now (POST
  // /api/v1/drivers/:id/locate): the driver app always, OwnTracks where it
  // listens for commands. The fix comes back as any other.
  async locate() {
    const r = this.route();
    if (!r || !r.driverId) return;
    const msg = $('drawer-locate-msg');
    msg.textContent = 'Asking…';
    try {
      const res = await this.api(`api/v1/drivers/${encodeURIComponent(r.driverId)}/locate`, 'POST');
      const n = Array.isArray(res.sent) ? res.sent.length : 0;
      msg.textContent = n ? `Asked ${n === 1 ? 'its handheld' : `${n} kinds of handheld`} for a fix.` : 'No handheld could be asked.';
    } catch (e) {
      msg.textContent = 'Not asked: ' + text(e.message);
    }
  }

  close() {
    if (!this.id) return;
    this.id = '';
    this.load++;
    this.setFollow(false);
    $('drawer').hidden = true;
    Object.assign(this.info, { open: false, routeId: '', line: 0, stops: 0 });
    this.pts = [];
    this.drawn = 0;
    mapview.clearTrail();
    if (location.hash) history.replaceState(null, '', withParams(location.hash, { route: '' }) || location.pathname + location.search);
    this.onShown('');
    const back = this.opener;
    this.opener = null;
    if (back && back.isConnected && back !== document.body && $('drawer').contains(document.activeElement)) back.focus();
  }

  setFollow(on) {
    this.follow = on;
    this.info.follow = on;
    $('trail-follow').setAttribute('aria-pressed', String(on));
    if (on) {
      const last = this.pts[this.pts.length - 1] || pointOfRoute(this.route());
      if (last) mapview.keepInView(last);
    }
  }

  // ---- the trail ----
  pickedRange() {
    const kind = $('trail-range').value;
    return timeRange(kind, this.serverNow(), { from: fromLocal($('trail-from').value), to: fromLocal($('trail-to').value) });
  }

  // reloadTrail reads the selected range's history anew.
  async reloadTrail(fit = false) {
    const range = this.pickedRange();
    $('trail-error').textContent = range ? '' : 'Pick a start, and an end after it.';
    if (!range) return;
    const mine = ++this.load;
    this.range = range;
    this.cutAt = null; // read whole: nothing to re-read
    this.pts = [];
    this.drawn = 0;
    mapview.clearTrail();
    this.info.loading = true;
    this.renderTrailInfo();
    try {
      const pts = await loadHistory((u) => this.api(u), this.id, range.from, range.to);
      if (mine !== this.load) return;
      merge(this.pts, pts); // live points that came meanwhile stay, once
      this.drawn = 0;
      this.info.loads++;
      this.drawTrail();
      if (this.follow) this.setFollow(true);
      else if (fit) mapview.fitTrail(this.pts.length ? this.pts : [pointOfRoute(this.route())].filter(Boolean));
    } catch (e) {
      if (mine === this.load) $('trail-error').textContent = `Could not read the trail: ${e.message}`;
    } finally {
      if (mine === this.load) { this.info.loading = false; this.renderTrailInfo(); }
    }
  }

  // cut notes the trail's last point as the page loses its stream.
  cut() {
    if (this.cutAt == null) this.cutAt = this.pts.length ? this.pts[this.pts.length - 1].ts : null;
  }

  // reconnected re-reads history from the last point the trail had when
  // the page lost its stream: the catch-up by seq replays the moves the
  // page missed, but not fixes that moved no route (a handheld's late
  // fixes, sent after newer ones), nor any fix when the log was pruned
  // meanwhile and the page took a snapshot instead.
  async reconnected() {
    const at = this.cutAt;
    this.cutAt = null;
    if (!this.id || !this.range || !this.range.live || this.info.loading) return;
    const mine = this.load;
    const last = at != null ? at : this.pts.length ? this.pts[this.pts.length - 1].ts : this.range.from;
    const to = this.range.open ? this.serverNow() + AHEAD : this.range.to;
    try {
      const pts = await loadHistory((u) => this.api(u), this.id, last, to);
      if (mine !== this.load) return;
      const how = merge(this.pts, pts);
      if (how === 'insert') this.drawn = 0; // drawn anew, stops found anew
      if (how !== 'none') this.drawTrail();
      this.info.rereads = (this.info.rereads || 0) + 1;
    } catch { /* the next reconnect tries again */ }
  }

  // drawTrail brings the map's line up to pts: extended when only new
  // points came at the end, else drawn anew; stops found again.
  drawTrail() {
    if (this.drawn > 0 && this.drawn <= this.pts.length) {
      // A driver's move of a second is often less than a pixel: the line
      // waits for the move that shows (no redraw of the canvas for none).
      if (mapview.apart(this.pts[this.drawn - 1], this.pts[this.pts.length - 1])) {
        mapview.extendTrail(this.pts.slice(this.drawn));
        this.drawn = this.pts.length;
      }
    } else {
      mapview.setTrail(this.pts);
      this.stops.reset();
      this.drawn = this.pts.length;
    }
    const stops = this.stops.update(this.pts);
    const n = stops.length;
    if (n !== this.info.stops || this.stopKey !== stops.map((s) => `${s.from}-${s.to}`).join()) {
      this.stopKey = stops.map((s) => `${s.from}-${s.to}`).join();
      mapview.setStops(stops.map((s) => ({ lat: s.lat, lng: s.lng,
        title: `Stopped ${Math.max(1, Math.round((s.to - s.from) / 60000))} min, ${hhmm(s.from)}–${hhmm(s.to)}` })));
    }
    this.info.line = mapview.trailLength();
    this.info.stops = n;
    this.renderTrailInfo();
  }

  renderTrailInfo() {
    const t = this.info.loading ? 'Reading the trail…' : `${this.pts.length} fixes · ${this.info.stops} stops`;
    if ($('trail-info').textContent !== t) $('trail-info').textContent = t;
  }

  // ---- what the page tells ----
  // onChange is applyEvent's answer for each event applied.
  onChange(ch) {
    if (!this.id || !ch) return;
    const r = this.route();
    if (ch.kind === 'route' && ch.id === this.id) {
      this.dirty = true;
      const p = pointOfRoute(r);
      if (p && this.range && this.range.live && inRange(this.range, p)) {
        const how = merge(this.pts, [p]);
        if (how === 'insert') this.drawn = 0;
        if (how !== 'none') {
          this.trailDirty = true;
        }
      }
    } else if (ch.kind === 'driver' && r && ch.id === r.driverId) {
      this.dirty = true;
    }
  }

  // onLate takes a message of the route's late topic (the page subscribes
  // to the open route's): fixes older than its driver's newest, a backlog
  // after a dead zone or out of order, which no event carries. They go
  // into the trail by time, drawn at the tick; the marker stays where the
  // newest fix put it.
  onLate(msg) {
    if (!this.id || !this.range) return;
    const pts = lateFixes(msg, this.id).filter((p) => inRange(this.range, p));
    const how = merge(this.pts, pts);
    if (how === 'none') return;
    if (how === 'insert') this.drawn = 0;
    this.trailDirty = true;
    this.info.late += pts.length;
  }

  // onEvent keeps the events a timeline shows.
  onEvent(env) {
    if (this.journal.add(env) && this.id) this.timelineDirty = true;
  }

  // tick is the clock's: it draws what changed since the last one.
  tick() {
    if (!this.id) return;
    if (this.trailDirty) {
      this.trailDirty = false;
      this.drawTrail();
      // Follow mode pans only when the driver leaves the view's inner
      // part (map.js keepInView), not on every move: pans counts them.
      if (this.follow && this.pts.length && mapview.keepInView(this.pts[this.pts.length - 1])) this.info.pans++;
    }
    if (this.dirty) { this.dirty = false; this.render(); return; }
    if (this.timelineDirty) this.renderTimeline();
    this.tickAges(this.serverNow());
  }

  // ---- the panel ----
  // Each part is rebuilt only when what it shows changed (a key of it, as
  // the table's rows): a fix a second changes only the ages, which tick
  // brings up to the clock without touching anything else.
  render() {
    const r = this.route();
    const now = this.serverNow();
    const rk = r ? routeKey(r) : `none ${this.id}`;
    if (rk !== this.routeKey) {
      this.routeKey = rk;
      this.renderRoute(r, now);
      this.timelineDirty = true; // its driver may be another
    }
    const fix = r ? Date.parse(r.lastUpdated) : NaN;
    if (this.posAge) this.posAge.ms = fix;
    const dev = r ? this.state.devices.get(r.driverId) : undefined;
    const pr = r ? this.state.presence.get(r.driverId) : undefined;
    const dk = r ? deviceKey(r.driverId, dev, pr) : '';
    if (dk !== this.deviceKey) {
      this.deviceKey = dk;
      this.renderDevice(dev, pr, now);
    }
    if (this.fixAge && dev) this.fixAge.ms = lastFix(dev, r);
    if (this.timelineDirty) this.renderTimeline();
    this.tickAges(now);
  }

  // age is an element whose text follows the clock: fmt(ms, now).
  age(list, ms, now, fmt = words) {
    const a = { node: el('span', null, Number.isNaN(ms) ? '—' : fmt(ms, now)), ms, fmt };
    list.push(a);
    return a;
  }

  tickAges(now) {
    for (const list of [this.routeAges, this.deviceAges]) {
      for (const a of list || []) {
        const t = Number.isNaN(a.ms) ? '—' : a.fmt(a.ms, now);
        if (a.node.textContent !== t) a.node.textContent = t;
      }
    }
  }

  renderRoute(r, now) {
    this.routeAges = [];
    this.posAge = null;
    if (!r) {
      $('drawer-title').textContent = `Route ${this.id}`;
      $('drawer-route').replaceChildren(el('p', { className: 'muted' }, 'This route is not in the depot’s picture (yet).'));
      $('drawer-actions').hidden = true;
      return;
    }
    const c = statusOf(r.statusColor);
    $('drawer-title').textContent = `Route ${text(r.routeCode) || text(r.routeId)}`;
    $('drawer-actions').hidden = false;
    const row = (k, ...v) => [el('dt', null, k), el('dd', null, ...v)];
    this.posAge = this.age(this.routeAges, Date.parse(r.lastUpdated), now, (ms, n) => `fix ${words(ms, n)}`);
    $('drawer-route').replaceChildren(el('dl', { className: 'kv' },
      row('Status', el('span', { className: `status ${c}` }, el('span', { className: 'shape' }, SHAPES[c]), WORDS[c])),
      row('Driver', text(r.driverName) || text(r.driverId) || '—', r.driverId ? el('span', { className: 'muted' }, ` (${text(r.driverId)})`) : null,
        r.performanceTier ? el('span', { className: 'tier' }, text(r.performanceTier)) : null),
      row('Stops', `${showNum(r.completedStops)} / ${showNum(r.totalStops)}`),
      row('Packages', `${showNum(r.completedPackages)} / ${showNum(r.totalPackages)}`),
      row('Behind', `${showNum(r.behindSchedule)} stops`),
      row('Position', this.posAge.node)));
  }

  renderDevice(dev, pr, now) {
    this.deviceAges = [];
    this.fixAge = null;
    const row = (k, ...v) => [el('dt', null, k), el('dd', null, ...v)];
    const rows = [];
    const ps = pr && has(PRESENCE, pr.state) ? pr.state : null;
    if (pr) {
      const since = Date.parse(pr.since);
      rows.push(row('Connection', el('span', { className: `presence ${ps || 'unknown'}` }, `${ps ? PRESENCE[ps] : '?'} ${text(pr.state) || 'unknown'}`),
        Number.isNaN(since) ? null : el('span', { className: 'muted' }, ' ',
          this.age(this.deviceAges, since, now, (ms, n) => `since ${hhmm(ms)} (${words(ms, n)})`).node)));
    } else {
      rows.push(row('Connection', el('span', { className: 'muted' }, 'not heard from')));
    }
    if (dev && typeof dev === 'object') {
      const batt = num(dev.batt);
      const st = dev.battState === 'charging' ? ' (charging)' : dev.battState === 'full' ? ' (full)' : dev.battState === 'unplugged' ? ' (unplugged)' : '';
      rows.push(row('Battery', batt === null ? '—' : `${Math.round(batt)} %${st}`));
      if (batt !== null && batt < 20 && !/charging|full/.test(st)) rows[rows.length - 1][1].classList.add('warn');
      const acc = num(dev.acc);
      rows.push(row('Accuracy', acc === null ? '—' : `${Math.round(acc)} m`));
      rows.push(row('App', has(APPS, dev.app) ? APPS[dev.app] : 'handheld'));
      rows.push(row('Network', dev.conn === 'wifi' ? 'Wi-Fi' : dev.conn === 'mobile' || dev.conn === 'offline' ? dev.conn : '—'));
      this.fixAge = this.age(this.deviceAges, lastFix(dev, this.route()), now);
      rows.push(row('Last fix', this.fixAge.node));
    } else {
      rows.push(row('Device', el('span', { className: 'muted' }, 'no device health yet')));
    }
    $('drawer-device').replaceChildren(el('dl', { className: 'kv' }, ...rows));
  }

  // readDay reads today's events back once (the journal keeps the live
  // ones from then on), then shows the timeline.
  readDay() {
    if (this.dayRead) return this.dayRead;
    const getEvents = (after, limit) => this.api(`api/v1/events?after=${after}&limit=${limit}`);
    const types = [...TYPES].join(',');
    const getTyped = (after) => this.api(`api/v1/events?after=${after}&limit=1000&types=${types}`);
    const since = startOfDay(this.serverNow());
    const last = this.state.lastSeq;
    this.timelineNote = 'Reading today’s events…';
    this.dayRead = (async () => {
      try {
        const after = await firstSeqSince(getEvents, since, last);
        const to = await readSince(getTyped, this.journal, after, last);
        // A very long day: its first events were read, not its last.
        this.timelineNote = to < last ? `Only today’s events up to seq ${to} were read back.` : '';
      } catch (e) {
        this.timelineNote = `Could not read today’s events: ${e.message}`;
        this.dayRead = null; // the next opening tries again
      }
      this.timelineDirty = true;
    })();
    return this.dayRead;
  }

  renderTimeline() {
    this.timelineDirty = false;
    const r = this.route();
    const list = this.journal.entries(this.id, r ? text(r.driverId) : '', startOfDay(this.serverNow()));
    this.info.timeline = list.length;
    $('drawer-timeline-note').textContent = this.timelineNote;
    $('drawer-timeline').replaceChildren(...(list.length === 0
      ? [el('li', { className: 'muted' }, this.timelineNote ? '' : 'Nothing today yet.')]
      : list.reverse().map((e) => el('li', { className: `tl-${e.kind}`, dataset: { kind: e.kind } },
        el('time', null, e.ts ? hhmm(e.ts) : '–'), ' ', e.text))));
  }
}
