// Replay's logic: the playback clock, a route's position at any time of
// the window (linear between the fixes around it), and the reading of
// history in chunks ahead of the play head (docs/workspace.md, Replay).
//
// No DOM and no network here (the page passes its fetch in), so Node's own
// test runner drives it (replay.test.js). Points are trail.js's {ts, lat,
// lng}, read and merged by trail.js's own helpers.
import { merge, loadHistory } from './trail.js';

// CHUNK is how much history (ms) one request reads for one route.
export const CHUNK = 15 * 60 * 1000;
// SPEEDS are the playback speeds offered (× real time).
export const SPEEDS = [1, 5, 10, 30, 60];

// Chunk states.
const NONE = 0; const LOADING = 1; const LOADED = 2;

// Clock is the play head: t moves from `from` to `to` at speed × the
// time of the frames (advance), and waits while the history under it is
// still being read (ready false).
export class Clock {
  constructor(from, to, speed = 60) {
    this.from = from; this.to = to; this.t = from;
    this.speed = speed; this.playing = false; this.last = null;
  }

  play() {
    if (this.t >= this.to) this.t = this.from; // at the end: from the start again
    this.playing = true;
    this.last = null;
  }

  pause() { this.playing = false; this.last = null; }

  toggle() { if (this.playing) this.pause(); else this.play(); }

  // seek puts the head at t (clamped to the window).
  seek(t) { this.t = Math.min(this.to, Math.max(this.from, t)); }

  setSpeed(s) { if (Number.isFinite(s) && s > 0) this.speed = s; }

  // advance moves the head to the frame at now (ms, a requestAnimationFrame
  // time); says whether it moved. A frame more than a second after the
  // last (a hidden tab) counts as a second. At the end it stops.
  advance(now, ready = true) {
    if (!this.playing) return false;
    const last = this.last;
    this.last = now;
    if (last == null || !ready) return false;
    const dt = Math.min(1000, Math.max(0, now - last));
    if (dt === 0) return false;
    this.t = Math.min(this.to, this.t + dt * this.speed);
    if (this.t >= this.to) this.pause();
    return true;
  }
}

// upper is the index of the first point of pts after t (binary search).
export function upper(pts, t) {
  let lo = 0; let hi = pts.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (pts[mid].ts <= t) lo = mid + 1; else hi = mid;
  }
  return lo;
}

// Track is one route's history in the window: its points (merged as the
// chunks come, in any order), which chunks are read, and a cursor that
// follows the play head forward a point at a time (a seek backwards, or
// points put before it, find it again by binary search).
export class Track {
  constructor(id, from, to, chunk = CHUNK) {
    this.id = id;
    this.from = from;
    this.chunk = chunk;
    this.n = Math.max(1, Math.ceil((to - from) / chunk));
    this.state = new Uint8Array(this.n);
    this.contig = 0; // chunks 0…contig-1 are all read
    this.pts = [];
    this.i = -1; // the last point at or before lastT
    this.lastT = -Infinity;
    this.lost = true; // the cursor must be found again
    this.empty = 0; // answers without a point while it had none (a quiet morning)
    // The position at the last at(): shown says whether there is one.
    this.shown = false; this.lat = 0; this.lng = 0;
    // The look-back after a seek (Pager.lookBack): whether it runs, and
    // how many reads it started (its spans double with each).
    this.back = false; this.backReads = 0;
  }

  chunkOf(ts) { return Math.min(this.n - 1, Math.max(0, Math.floor((ts - this.from) / this.chunk))); }

  loaded(c) { return this.state[c] === LOADED; }

  // covered says whether chunks a…b are all read.
  covered(a, b) {
    if (b < this.contig) return true; // the usual case, at once
    for (let c = a; c <= b; c++) if (this.state[c] !== LOADED) return false;
    return true;
  }

  // add merges the points of chunks a…b, now read.
  add(a, b, pts) {
    // Points appended after the last leave the cursor where it is;
    // points put before it move it.
    const had = this.pts.length;
    if (merge(this.pts, pts) === 'insert') this.lost = true;
    if (had === 0 && this.pts.length === 0) this.empty++;
    for (let c = a; c <= b; c++) this.state[c] = LOADED;
    while (this.contig < this.n && this.state[this.contig] === LOADED) this.contig++;
  }

  // at puts the route's position at t into lat, lng and says whether it
  // is shown: not before its first fix, nor where the history around t is
  // not read yet; between two fixes, on the line between them; after its
  // last fix, there. O(1) a frame while t moves forward.
  at(t) {
    const pts = this.pts;
    if (this.lost || t < this.lastT) {
      this.i = upper(pts, t) - 1;
      this.lost = false;
    } else {
      while (this.i + 1 < pts.length && pts[this.i + 1].ts <= t) this.i++;
    }
    this.lastT = t;
    const i = this.i;
    const ct = this.chunkOf(t);
    if (i < 0 || !this.covered(this.chunkOf(pts[i].ts), ct)) { this.shown = false; return false; }
    const a = pts[i];
    const b = pts[i + 1];
    if (b && b.ts > a.ts && this.covered(ct, this.chunkOf(b.ts))) {
      const f = (t - a.ts) / (b.ts - a.ts);
      this.lat = a.lat + (b.lat - a.lat) * f;
      this.lng = a.lng + (b.lng - a.lng) * f;
    } else {
      this.lat = a.lat; this.lng = a.lng; // its last fix (or the next is not read yet)
    }
    this.shown = true;
    return true;
  }
}

// Pager reads the routes' history ahead of the play head: for each route
// the chunk under the head, the one before it (a seek lands between two
// fixes) and `ahead` after it, nearest first, at most `parallel` requests
// at once. While the window's first fix is sought, routes with no point
// yet are also read from the start of the window on, not only at the
// head; a route with no point yet is read in spans that double with each
// empty answer, up to `span` chunks (a quiet morning costs few requests,
// a busy route's first answer is one chunk). After a seek (lookBack), a
// route whose last fix before the head is not read yet is read back from
// the head in spans that double the same way, until that fix is found.
// getJSON(url) answers GET /api/v1/routes/:id/history.
export class Pager {
  constructor(tracks, getJSON, { ahead = 3, parallel = 4, span = 8, onLoad = () => {} } = {}) {
    Object.assign(this, { tracks, getJSON, ahead, parallel, span, onLoad });
    this.inflight = 0;
    this.requests = 0;
    this.errors = 0;
    this.seeking = true; // looking for the window's first fix
    this.closed = false;
  }

  // ready says whether every route's chunk at t is read (the clock waits
  // for it).
  ready(t) {
    for (const tr of this.tracks) if (!tr.loaded(tr.chunkOf(t))) return false;
    return true;
  }

  // first is the window's first fix's time once it is known (every route
  // read up to it), else null; Infinity when the window has none at all.
  first() {
    let best = Infinity;
    for (const tr of this.tracks) if (tr.pts.length && tr.pts[0].ts < best) best = tr.pts[0].ts;
    for (const tr of this.tracks) {
      if (tr.pts.length && tr.pts[0].ts === best) continue;
      const need = best === Infinity ? tr.n : tr.chunkOf(best) + 1;
      if (tr.contig < need) return null;
    }
    return best;
  }

  // pump starts the reads the head at t wants, up to the bound.
  pump(t) {
    if (this.closed) return;
    for (let d = 0; d <= this.ahead + 1 && this.inflight < this.parallel; d++) {
      const off = d === 0 ? 0 : d === 1 ? -1 : d - 1; // the head's, the one before, then ahead
      for (const tr of this.tracks) {
        if (this.inflight >= this.parallel) return;
        const c = tr.chunkOf(t) + off;
        if (c < 0 || c >= tr.n || tr.state[c] !== NONE) continue;
        this.start(tr, c, this.spanOf(tr));
      }
    }
    if (this.seeking) {
      for (const tr of this.tracks) {
        if (this.inflight >= this.parallel) return;
        if (tr.pts.length || tr.contig >= tr.n || tr.state[tr.contig] !== NONE) continue;
        this.start(tr, tr.contig, this.spanOf(tr));
      }
    }
    // After a seek: each route's last fix before the head, read back in
    // spans that double (1, 2, 4, then `span` chunks), as the first fix is
    // sought forward. Bounded by the route's first fix and the window's
    // start; the head's own reads come first, the clock never waits for it.
    for (const tr of this.tracks) {
      if (this.inflight >= this.parallel) return;
      if (!tr.back) continue;
      const c = this.behind(tr, t);
      if (c < 0) { tr.back = false; continue; }
      if (c >= tr.chunkOf(t) - 1) continue; // the head's reads above take it
      this.startBack(tr, c, Math.min(this.span, 2 ** tr.backReads));
    }
  }

  spanOf(tr) { return tr.pts.length ? 1 : Math.min(this.span, 2 ** tr.empty); }

  // lookBack starts, for every route, the search for its last fix before
  // the head (after a seek): a route quiet for longer than the chunk
  // before the head would otherwise show only from its next fix.
  lookBack() {
    for (const tr of this.tracks) { tr.back = true; tr.backReads = 0; }
  }

  // behind is the chunk to read next, going back from the head at t, for
  // route tr's last fix before t; -1 when there is nothing more to read:
  // that fix is known and every chunk from it to the head is read (or
  // being read), or no chunk down to the window's start is left unread.
  // The route's first fix bounds it, once the search for the window's
  // first fix has read up to it.
  behind(tr, t) {
    const ct = tr.chunkOf(t);
    const i = upper(tr.pts, t) - 1;
    const low = i >= 0 ? tr.chunkOf(tr.pts[i].ts) : 0;
    for (let c = ct; c >= low && c >= tr.contig; c--) if (tr.state[c] === NONE) return c;
    return -1;
  }

  start(tr, c, span) {
    let b = c;
    while (b + 1 < tr.n && b + 1 < c + span && tr.state[b + 1] === NONE) b++;
    this.read(tr, c, b);
  }

  // startBack reads back from chunk c, down to span chunks, as far as
  // they are unread.
  startBack(tr, c, span) {
    let a = c;
    while (a - 1 >= 0 && a - 1 > c - span && tr.state[a - 1] === NONE) a--;
    tr.backReads++;
    this.read(tr, a, c);
  }

  // read reads chunks c…b of route tr.
  read(tr, c, b) {
    for (let k = c; k <= b; k++) tr.state[k] = LOADING;
    this.inflight++;
    this.requests++;
    const from = tr.from + c * tr.chunk;
    const to = tr.from + (b + 1) * tr.chunk - 1;
    loadHistory(this.getJSON, tr.id, from, to).then((pts) => {
      if (this.closed) return;
      tr.add(c, b, pts);
    }, () => {
      if (this.closed) return;
      this.errors++;
      tr.add(c, b, []); // shown as read, empty: the page says some history could not be read
    }).finally(() => {
      this.inflight--;
      if (!this.closed) this.onLoad(tr);
    });
  }

  close() { this.closed = true; }
}
