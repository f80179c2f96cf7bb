// Replay on the page: the bar under the map (play and pause, speed, the
// scrubber and its clock, close) and the replay's markers, drawn with
// requestAnimationFrame (docs/workspace.md, Replay). The logic (clock,
// positions, reading history ahead) is replay.js's.
//
// Per frame: the clock moves, each route's cursor moves forward (O(1) a
// route) and a marker moves when it moved half a pixel; the scrubber and
// the clock's text are written when they show something else. Paused and
// with nothing being read, no frame is asked for.
// Every value shown is text (el, textContent): codes come from the network.
import { $, el, hhmm, hhmmss } from './dom.js';
import { text } from './checks.js';
import { Clock, Track, Pager, SPEEDS } from './replay.js';
import { startOfDay } from './trail.js';
import * as mapview from './map.js';


export class ReplayView {
  // state: the page's (routes, for the codes). api(path): GET of the API.
  // serverNow: the depot's clock. onShown(open): the bar came or went
  // (the map resizes).
  constructor({ state, api, serverNow, onShown = () => {} }) {
    Object.assign(this, { state, api, serverNow, onShown });
    this.open = false;
    this.gen = 0; // the current replay's number: answers for an older one are dropped
    this.raf = 0;
    this.info = state.replay = { open: false, scope: '', playing: false, speed: 60, t: 0, from: 0, to: 0, drawnT: 0,
      markers: 0, frames: 0, stalls: 0, routes: 0, requests: 0, errors: 0, ready: false, first: null };
    // For tests: each shown route's position at drawnT.
    this.info.allInView = () => mapview.allInView();
    this.info.positions = () => {
      const out = {};
      for (const r of this.rows || []) if (r.tr.shown) out[r.tr.id] = { lat: r.tr.lat, lng: r.tr.lng };
      return out;
    };
    $('replay-speed').replaceChildren(...SPEEDS.map((s) => el('option', { value: String(s) }, `${s}×`)));
    $('replay-speed').value = '60';
    $('replay-play').onclick = () => this.toggle();
    $('replay-speed').onchange = () => { if (this.clock) this.clock.setSpeed(Number($('replay-speed').value)); this.info.speed = Number($('replay-speed').value); };
    $('replay-scrub').oninput = () => this.seek(Number($('replay-scrub').value));
    $('replay-close').onclick = () => this.close();
    // Space plays and pauses while the bar has the keyboard (a button or a
    // list takes its own space).
    $('replay').addEventListener('keydown', (e) => {
      if (e.key !== ' ' || e.target.tagName === 'BUTTON' || e.target.tagName === 'SELECT') return;
      e.preventDefault();
      this.toggle();
    });
    // Esc closes the replay before anything else (the drawer it was opened
    // from stays): a capturing listener on the window runs first.
    window.addEventListener('keydown', (e) => {
      if (e.key !== 'Escape' || !this.open || $('dlg').open) return;
      e.preventDefault();
      e.stopPropagation();
      this.close();
    }, true);
    this.frame = (ts) => this.onFrame(ts);
  }

  // openAll replays every route of the depot, today from its first fix to now.
  async openAll() {
    const mine = ++this.gen;
    const now = this.serverNow();
    let list = [];
    try {
      const ans = await this.api('api/v1/routes');
      list = Array.isArray(ans) ? ans : [];
    } catch (e) {
      $('replay-note').textContent = `Could not read the routes: ${e.message}`;
    }
    if (mine !== this.gen) return;
    const ids = [];
    for (const r of list) if (r && typeof r.routeId === 'string' && r.routeId && !ids.includes(r.routeId)) ids.push(r.routeId);
    if (ids.length === 0) for (const id of this.state.routes.keys()) ids.push(id);
    this.start('all', ids, startOfDay(now), now, 'All routes');
    // Every route in view (with the depot): the map may be zoomed on a
    // drawer's trail. After start, whose bar made the map shorter.
    mapview.fitRoutes(this.state.cfg && this.state.cfg.center);
  }

  // openRoute replays route id over range (the drawer's trail range:
  // {from, to, open}), from its first fix.
  openRoute(id, range) {
    ++this.gen;
    const now = this.serverNow();
    const from = range ? range.from : startOfDay(now);
    const to = range && !range.open ? Math.min(range.to, now) : now;
    this.start('route', [id], from, Math.max(to, from + 1000), `Route ${this.code(id)}`);
  }

  code(id) {
    const r = this.state.routes.get(id);
    return (r && (text(r.routeCode) || text(r.routeId))) || id;
  }

  start(scope, ids, from, to, what) {
    this.stop();
    if (!this.opener || !$('replay').contains(this.opener)) this.opener = document.activeElement;
    this.open = true;
    const mine = this.gen;
    this.clock = new Clock(from, to, Number($('replay-speed').value) || 60);
    this.moved = false; // the dispatcher seeked: the head is not moved to the first fix
    this.rows = ids.map((id) => ({ tr: new Track(id, from, to), h: mapview.replayMarker(id, this.code(id)) }));
    this.pager = new Pager(this.rows.map((r) => r.tr), (u) => this.api(u), {
      onLoad: () => { if (mine === this.gen) { this.pager.pump(this.clock.t); this.kick(); } },
    });
    Object.assign(this.info, { open: true, scope, playing: false, from, to, t: from, drawnT: from, markers: 0, frames: 0, stalls: 0,
      routes: ids.length, requests: 0, errors: 0, ready: false, first: null, speed: this.clock.speed });
    const s = $('replay-scrub');
    s.min = String(from); s.max = String(to); s.value = String(from);
    this.shownSec = NaN;
    $('replay-what').textContent = `${what} · ${hhmm(from)}–${hhmm(to)}`;
    $('replay-note').textContent = 'Reading history…';
    $('replay').hidden = false;
    mapview.dimLive(true);
    this.onShown(true);
    this.pager.pump(from);
    this.renderPlay();
    $('replay-play').focus();
    this.kick();
  }

  // stop ends the current replay's reads, frames and markers.
  stop() {
    if (this.pager) this.pager.close();
    if (this.raf) cancelAnimationFrame(this.raf);
    this.raf = 0;
    mapview.clearReplay();
    this.rows = [];
    this.pager = null;
    this.clock = null;
  }

  close() {
    if (!this.open) return;
    this.gen++;
    this.stop();
    this.open = false;
    Object.assign(this.info, { open: false, playing: false, markers: 0, scope: '' });
    $('replay').hidden = true;
    mapview.dimLive(false);
    this.onShown(false);
    const back = this.opener;
    this.opener = null;
    if (back && back.isConnected && back !== document.body) back.focus();
  }

  toggle() {
    if (!this.clock) return;
    this.clock.toggle();
    this.renderPlay();
    this.kick();
  }

  seek(t) {
    if (!this.clock) return;
    this.moved = true;
    this.clock.seek(t);
    this.clock.last = null; // the next frame starts from here
    this.pager.lookBack(); // each route's last fix before the head, however long ago
    this.pager.pump(this.clock.t);
    this.kick();
  }

  renderPlay() {
    const p = !!this.clock && this.clock.playing;
    this.info.playing = p;
    const b = $('replay-play');
    b.textContent = p ? '❚❚' : '▶';
    b.setAttribute('aria-label', p ? 'Pause' : 'Play');
  }

  // kick asks for a frame if none is asked for.
  kick() {
    if (this.open && !this.raf) this.raf = requestAnimationFrame(this.frame);
  }

  onFrame(ts) {
    this.raf = 0;
    if (!this.open) return;
    const c = this.clock;
    const pg = this.pager;
    const ready = pg.ready(c.t);
    const wasPlaying = c.playing;
    if (c.playing && !ready) this.info.stalls++; // a frame that waits for history
    c.advance(ts, ready);
    if (pg.seeking) {
      const f = pg.first();
      if (f !== null) {
        pg.seeking = false;
        this.info.first = f;
        // Today (or the trail's range) from its first fix: the head goes there.
        if (f !== Infinity && f > c.t && !this.moved) {
          c.from = f;
          c.seek(f);
          $('replay-scrub').min = String(f);
          $('replay-what').textContent = `${$('replay-what').textContent.split(' · ')[0]} · ${hhmm(f)}–${hhmm(c.to)}`;
        }
      }
    }
    pg.pump(c.t);
    this.draw();
    if (wasPlaying !== c.playing) this.renderPlay();
    const note = this.info.first === Infinity ? 'No fixes in this window.'
      : !pg.ready(c.t) || pg.seeking ? 'Reading history…'
        : pg.errors ? `Some history could not be read (${pg.errors} requests).` : '';
    if ($('replay-note').textContent !== note) $('replay-note').textContent = note;
    Object.assign(this.info, { requests: pg.requests, errors: pg.errors, ready: pg.ready(c.t) });
    if (c.playing || pg.inflight > 0 || pg.seeking) this.raf = requestAnimationFrame(this.frame);
  }

  // draw puts every route where it was at the head's time.
  draw() {
    const t = this.clock.t;
    let n = 0;
    for (const r of this.rows) {
      if (r.tr.at(t)) { mapview.moveReplayMarker(r.h, r.tr.lat, r.tr.lng); n++; } else mapview.hideReplayMarker(r.h);
    }
    this.info.frames++;
    this.info.markers = n;
    this.info.t = t;
    this.info.drawnT = t;
    const sec = Math.floor(t / 1000);
    if (sec !== this.shownSec) {
      this.shownSec = sec;
      const s = $('replay-scrub');
      if (document.activeElement !== s || this.clock.playing) s.value = String(t);
      const label = hhmmss(t);
      $('replay-clock').textContent = label;
      s.setAttribute('aria-valuetext', label);
    }
  }
}
