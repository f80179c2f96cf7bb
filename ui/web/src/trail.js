// The selected route's trail: its fixes of a time range, as one ordered
// list without duplicates, where it stopped, and which range is shown.
//
// No DOM and no network here (the page passes its fetch in), so Node's
// own test runner drives it (trail.test.js). Every point comes from the
// network and is checked: a point is {ts, lat, lng} of finite numbers.

// MAX_PAGE is the most fixes GET /api/v1/routes/:id/history answers at
// once (storage.MaxHistory): a full page means there may be more after
// its last fix.
export const MAX_PAGE = 200000;

const fin = (v) => typeof v === 'number' && Number.isFinite(v);

// point is a fix (of history, or a route's position) as {ts, lat, lng},
// or null when it is not one: no finite numbers, or the 0,0 of no fix.
export function point(ts, lat, lng) {
  if (!fin(ts) || !fin(lat) || !fin(lng) || Math.abs(lat) > 90 || Math.abs(lng) > 180) return null;
  if (lat === 0 && lng === 0) return null;
  return { ts, lat, lng };
}

// pointOfFix reads one fix of a history answer.
export function pointOfFix(f) {
  return f && typeof f === 'object' ? point(f.ts, f.lat, f.lng) : null;
}

// pointOfRoute reads a route's last position (after a route:update):
// its time is lastUpdated, the time of the fix it came from.
export function pointOfRoute(r) {
  if (!r || typeof r.lastUpdated !== 'string') return null;
  return point(Date.parse(r.lastUpdated), r.currentLat, r.currentLng);
}

// lateTopic is the MQTT topic of route id's late fixes (docs/design.md
// §3), or '' when id cannot be a route id (ValidID on the server: 1–64 of
// letters, digits, '.', '-', '_'): an id from the address must not make
// a wildcard or another topic.
export function lateTopic(depot, id) {
  return typeof depot === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(depot) && typeof id === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(id)
    ? `depot/${depot}/routes/${id}/late` : '';
}

// lateFixes reads a message of a route's late topic,
// {"routeId":"R12","fixes":[{"ts","lat","lng"},…]}: fixes older than the
// driver's newest (a backlog after a dead zone, or out of order), which
// no event carries. It gives the points of route id, each checked as a
// history fix is; none for a message of another route or not one.
export function lateFixes(msg, id) {
  if (!msg || typeof msg !== 'object' || msg.routeId !== id || !id || !Array.isArray(msg.fixes)) return [];
  const out = [];
  for (const f of msg.fixes) { const p = pointOfFix(f); if (p) out.push(p); }
  return out;
}

// distance is the great-circle distance between two points, in metres.
export function distance(a, b) {
  const R = 6371008.8;
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad; const dLng = (b.lng - a.lng) * rad;
  const s = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLng / 2) ** 2;
  return 2 * R * Math.asin(Math.min(1, Math.sqrt(s)));
}

// merge adds the points of add to the ordered, duplicate-free list pts
// (in place) and says how: 'none' (nothing new), 'append' (every new
// point is after the last: a line can be extended) or 'insert' (a point
// went somewhere before the end: a line must be redrawn). Two points of
// the same time are one fix (a history page overlapping a live point, or
// a route:update that changed no position): the first kept wins.
export function merge(pts, add) {
  const fresh = [];
  for (const p of add) if (p) fresh.push(p);
  if (fresh.length === 0) return 'none';
  fresh.sort((a, b) => a.ts - b.ts);
  const last = pts.length ? pts[pts.length - 1].ts : -Infinity;
  if (fresh[0].ts > last) {
    let n = 0;
    for (const p of fresh) if (pts.length === 0 || p.ts > pts[pts.length - 1].ts) { pts.push(p); n++; }
    return n ? 'append' : 'none';
  }
  const have = new Set(pts.map((p) => p.ts));
  const extra = [];
  for (const p of fresh) if (!have.has(p.ts)) { have.add(p.ts); extra.push(p); }
  if (extra.length === 0) return 'none';
  const all = pts.concat(extra).sort((a, b) => a.ts - b.ts);
  pts.splice(0, pts.length, ...all);
  return 'insert';
}

// detectStops finds where the driver stayed: runs of consecutive points
// all within radiusM of the run's first point, lasting at least
// minDwellMs from first to last. Each stop is {lat, lng} (the run's
// centre), from and to (ms), n (points) and i (its first point's index);
// in time order, never overlapping.
export function detectStops(points, opts) { return scanStops(points, opts).stops; }

// scanStops is detectStops from index start on (where an earlier scan of
// fewer points left off), and says where a scan after more points must
// start again: open, the first index whose run reached the last point (a
// new point may extend it, or turn it into a stop). Stops before open are
// final. A live trail scans only its tail this way, not the day again.
export function scanStops(points, { minDwellMs = 120000, radiusM = 30 } = {}, start = 0) {
  const stops = [];
  let open = points.length;
  let i = start;
  while (i < points.length) {
    const a = points[i];
    let j = i + 1;
    while (j < points.length && distance(a, points[j]) <= radiusM) j++;
    if (j === points.length && open === points.length) open = i;
    const last = points[j - 1];
    if (last.ts - a.ts >= minDwellMs) {
      let lat = 0; let lng = 0;
      for (let k = i; k < j; k++) { lat += points[k].lat; lng += points[k].lng; }
      stops.push({ lat: lat / (j - i), lng: lng / (j - i), from: a.ts, to: last.ts, n: j - i, i });
      i = j;
    } else {
      i++;
    }
  }
  return { stops, open };
}

// Stops keeps a growing trail's stops: update after points were appended
// rescans from where the last scan left off; reset after points went
// anywhere else.
export class Stops {
  constructor(opts) { this.opts = opts; this.reset(); }
  reset() { this.final = []; this.resume = 0; this.all = []; }
  update(points) {
    const { stops, open } = scanStops(points, this.opts, this.resume);
    this.all = this.final.concat(stops);
    this.final = this.final.concat(stops.filter((s) => s.i < open));
    this.resume = open;
    return this.all;
  }
}

// startOfDay is local midnight of the day of ms (the browser's time zone).
export function startOfDay(ms) {
  const d = new Date(ms);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

// AHEAD is how far past now an open range reads: a handheld's clock a
// little fast still lands in it.
export const AHEAD = 10 * 60 * 1000;

// timeRange is the span (ms) a range picker's choice means at now:
// kind 'hour' (the last hour), 'today' (since local midnight) or
// 'custom' (from and to as given: ms, or '' / NaN for none). live says
// whether new fixes belong in it (its end is not in the past); open, that
// it has no end (to is only where a read of history stops at now). null
// for a custom range that is not one (no start, or an end before it).
export function timeRange(kind, now, { from, to } = {}) {
  if (kind === 'hour') return { from: now - 3600 * 1000, to: now + AHEAD, live: true, open: true };
  if (kind === 'today') return { from: startOfDay(now), to: now + AHEAD, live: true, open: true };
  if (kind !== 'custom' || !fin(from)) return null;
  const open = !fin(to);
  const end = open ? now + AHEAD : to;
  if (end < from) return null;
  return { from, to: end, live: open || to >= now, open };
}

// inRange says whether p belongs in range r (an open range has no end).
export function inRange(r, p) { return !!r && !!p && p.ts >= r.from && (r.open || p.ts <= r.to); }

// loadHistory reads every fix of route id between from and to (ms),
// page by page: getJSON(url) answers GET /api/v1/routes/:id/history. A
// full page (MAX_PAGE fixes) is followed by another from its last fix's
// time; merge drops the fix the two share. Returns the ordered points.
export async function loadHistory(getJSON, id, from, to, { maxPage = MAX_PAGE, maxPages = 20 } = {}) {
  const pts = [];
  let start = from;
  for (let page = 0; page < maxPages; page++) {
    const ans = await getJSON(`api/v1/routes/${encodeURIComponent(id)}/history?from=${Math.floor(start)}&to=${Math.ceil(to)}`);
    const fixes = ans && Array.isArray(ans.fixes) ? ans.fixes : [];
    merge(pts, fixes.map(pointOfFix));
    if (fixes.length < maxPage || pts.length === 0) break;
    const next = pts[pts.length - 1].ts;
    if (next <= start) break; // a page of one instant: no way on
    start = next;
  }
  return pts;
}
