// The trail's logic: node --test ui/web/src/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Stops, point, pointOfFix, pointOfRoute, distance, merge, lateTopic, lateFixes, detectStops, timeRange, startOfDay, inRange, loadHistory, AHEAD } from './trail.js';

const P = (ts, lat = 38.5, lng = -121.5) => ({ ts, lat, lng });
const MIN = 60000;
// A point dm metres north of 38.5, -121.5 (a degree of latitude is ~111.2 km).
const north = (ts, dm) => P(ts, 38.5 + dm / 111195, -121.5);

test('points are checked: finite numbers, in range, not 0,0', () => {
  assert.deepEqual(point(1, 2, 3), { ts: 1, lat: 2, lng: 3 });
  for (const bad of [[NaN, 1, 1], [1, '1', 1], [1, 91, 0], [1, 0, 181], [1, 0, 0], [Infinity, 1, 1]]) assert.equal(point(...bad), null);
  assert.deepEqual(pointOfFix({ ts: 5, lat: 1, lng: 2, acc: 3 }), { ts: 5, lat: 1, lng: 2 });
  assert.equal(pointOfFix(null), null);
  assert.equal(pointOfFix('x'), null);
  assert.deepEqual(pointOfRoute({ lastUpdated: '2026-12-03T08:00:00Z', currentLat: 1, currentLng: 2 }), { ts: Date.parse('2026-12-03T08:00:00Z'), lat: 1, lng: 2 });
  assert.equal(pointOfRoute({ lastUpdated: 'soon', currentLat: 1, currentLng: 2 }), null);
  assert.equal(pointOfRoute({ currentLat: 1, currentLng: 2 }), null);
});

test('distance is metres on the ground', () => {
  assert.ok(Math.abs(distance(north(0, 0), north(0, 30)) - 30) < 0.1);
  assert.equal(distance(P(0), P(1)), 0);
});

test('merge: appends live points, drops duplicates, keeps time order', () => {
  const pts = [];
  assert.equal(merge(pts, [P(3), P(1), P(2)]), 'append');
  assert.deepEqual(pts.map((p) => p.ts), [1, 2, 3]);
  assert.equal(merge(pts, [P(3)]), 'none', 'the same fix again (a route:update without a move)');
  assert.equal(merge(pts, [P(4), P(4), null]), 'append');
  assert.deepEqual(pts.map((p) => p.ts), [1, 2, 3, 4]);
  // A history page read after live points came in: overlapping, older and
  // newer at once.
  assert.equal(merge(pts, [P(0), P(2), P(3.5), P(4), P(5)]), 'insert');
  assert.deepEqual(pts.map((p) => p.ts), [0, 1, 2, 3, 3.5, 4, 5]);
  assert.equal(merge(pts, [P(2), P(0)]), 'none');
  assert.equal(merge(pts, []), 'none');
});

test('merge keeps the first of two points of the same time', () => {
  const pts = [P(1, 10, 10)];
  merge(pts, [P(1, 20, 20), P(0, 5, 5)]);
  assert.deepEqual(pts, [P(0, 5, 5), P(1, 10, 10)]);
});

test('detectStops: a dwell of 2 minutes within 30 m is a stop', () => {
  const pts = [north(0, 0), north(1 * MIN, 500), // driving
    north(2 * MIN, 1000), north(3 * MIN, 1010), north(4 * MIN, 995), north(4.5 * MIN, 1020), // 2.5 min within ~20 m
    north(5 * MIN, 2000), north(6 * MIN, 3000)];
  const s = detectStops(pts, { minDwellMs: 120000, radiusM: 30 });
  assert.equal(s.length, 1);
  assert.equal(s[0].from, 2 * MIN);
  assert.equal(s[0].to, 4.5 * MIN);
  assert.equal(s[0].n, 4);
  assert.ok(distance(s[0], north(0, 1006)) < 2, 'the stop is at the centre of its points');
});

test('detectStops: too short, or drifting beyond the radius, is no stop', () => {
  const short = [north(0, 0), north(30000, 5), north(119999, 10), north(200000, 900)];
  assert.equal(detectStops(short).length, 0, 'under 2 minutes');
  const crawl = []; // 10 m every 30 s for 10 minutes: moving slowly, never stopped
  for (let i = 0; i <= 20; i++) crawl.push(north(i * 30000, i * 10));
  assert.equal(detectStops(crawl, { minDwellMs: 120000, radiusM: 30 }).length, 0);
  assert.equal(detectStops([]).length, 0);
  assert.equal(detectStops([north(0, 0)]).length, 0);
});

test('detectStops: two stops in a row, and the defaults', () => {
  const pts = [north(0, 0), north(MIN, 10), north(2 * MIN, 5), // stop 1
    north(3 * MIN, 100), north(4 * MIN, 110), north(6 * MIN, 90), north(7 * MIN, 400)]; // stop 2
  const s = detectStops(pts);
  assert.deepEqual(s.map((x) => [x.from, x.to, x.n]), [[0, 2 * MIN, 3], [3 * MIN, 6 * MIN, 3]]);
});

test('timeRange: last hour, today, custom', () => {
  const now = new Date(2026, 11, 3, 9, 30).getTime(); // local time
  assert.deepEqual(timeRange('hour', now), { from: now - 3600000, to: now + AHEAD, live: true, open: true });
  const today = timeRange('today', now);
  assert.equal(today.from, new Date(2026, 11, 3).getTime());
  assert.equal(today.from, startOfDay(now));
  assert.ok(today.live);
  const c = timeRange('custom', now, { from: now - 7200000, to: now - 3600000 });
  assert.deepEqual(c, { from: now - 7200000, to: now - 3600000, live: false, open: false }, 'a range in the past takes no live fixes');
  assert.equal(timeRange('custom', now, { from: now - 1000, to: NaN }).live, true, 'no end: open, live');
  assert.equal(timeRange('custom', now, { from: now, to: now - 1 }), null, 'end before start');
  assert.equal(timeRange('custom', now, { from: NaN }), null);
  assert.equal(timeRange('week', now), null);
  assert.ok(inRange(c, P(now - 5000000)));
  assert.ok(!inRange(c, P(now)));
  assert.ok(!inRange(null, P(now)));
  assert.ok(inRange(today, P(now + 2 * AHEAD)), 'an open range takes fixes long after it was picked');
  assert.ok(!inRange(today, P(today.from - 1)));
});

test('loadHistory reads page after page, without the shared fix twice', async () => {
  const all = [];
  for (let i = 0; i < 7; i++) all.push({ ts: 1000 + i, lat: 38.5, lng: -121.5, acc: 5 });
  const urls = [];
  const getJSON = async (url) => {
    urls.push(url);
    const q = new URL(url, 'http://x/').searchParams;
    const from = Number(q.get('from')); const to = Number(q.get('to'));
    return { fixes: all.filter((f) => f.ts >= from && f.ts <= to).slice(0, 3) }; // pages of 3, as the server's cap
  };
  const pts = await loadHistory(getJSON, 'R 1', 1000, 2000, { maxPage: 3 });
  assert.deepEqual(pts.map((p) => p.ts), [1000, 1001, 1002, 1003, 1004, 1005, 1006]);
  assert.equal(urls[0], 'api/v1/routes/R%201/history?from=1000&to=2000', 'the id is encoded');
  assert.equal(urls.length, 4);
  const none = await loadHistory(async () => ({ fixes: [] }), 'R1', 0, 1);
  assert.deepEqual(none, []);
  const junk = await loadHistory(async () => ({ fixes: 'x' }), 'R1', 0, 1);
  assert.deepEqual(junk, []);
});

test('Stops over a growing trail finds what detectStops finds over the whole', () => {
  // A day of fixes every 20 s: driving, with a dwell now and then (some
  // under 2 minutes, some over), fed a few points at a time.
  const pts = [];
  let d = 0;
  for (let k = 0; k < 400; k++) {
    const dwell = Math.floor(k / 20) % 3 === 1; // 20 points of 3 in 60 stay put
    if (!dwell) d += 150;
    else d += (k % 2 ? 8 : -8);
    pts.push(north(k * 20000 + (k % 7) * 1000, d));
  }
  const s = new Stops({ minDwellMs: 120000, radiusM: 30 });
  const grown = [];
  let got = [];
  for (let k = 0; k < pts.length; k += 1 + (k % 5)) {
    merge(grown, pts.slice(k, k + 1 + (k % 5)));
    got = s.update(grown);
    assert.deepEqual(got, detectStops(grown), `after ${grown.length} points`);
  }
  assert.equal(grown.length, pts.length);
  assert.ok(got.length >= 6, `${got.length} stops`);
  s.reset();
  assert.deepEqual(s.update(grown), got, 'after a reset, the whole scanned again');
});

test('late fixes: the topic of a valid route id only; points of that route, checked; merged by time', () => {
  assert.equal(lateTopic('DEMO1', 'R12'), 'depot/DEMO1/routes/R12/late');
  for (const bad of ['', '+', '#', 'R1/late', 'R 1', 'x'.repeat(65), null, 7]) assert.equal(lateTopic('DEMO1', bad), '', String(bad));
  assert.equal(lateTopic('D/#', 'R1'), '');
  const msg = { routeId: 'R1', fixes: [{ ts: 5, lat: 1, lng: 2 }, { ts: 'x', lat: 1, lng: 2 }, { ts: 3, lat: 0, lng: 0 }, null, '<img src=x>', { ts: 2, lat: 91, lng: 0 }, { ts: 4, lat: 1.5, lng: 2.5 }] };
  assert.deepEqual(lateFixes(msg, 'R1'), [{ ts: 5, lat: 1, lng: 2 }, { ts: 4, lat: 1.5, lng: 2.5 }]);
  assert.deepEqual(lateFixes(msg, 'R2'), [], 'another route\'s');
  for (const bad of [null, 'x', [], { routeId: 'R1' }, { routeId: 'R1', fixes: 'x' }, { fixes: [{ ts: 1, lat: 1, lng: 1 }] }]) assert.deepEqual(lateFixes(bad, 'R1'), []);
  assert.deepEqual(lateFixes({ fixes: [{ ts: 1, lat: 1, lng: 1 }] }, undefined), []);
  // Into a live trail: between its points (the line is drawn anew), once.
  const pts = [P(1), P(10), P(20)];
  assert.equal(merge(pts, lateFixes({ routeId: 'R1', fixes: [{ ts: 15, lat: 38.6, lng: -121.4 }, { ts: 10, lat: 1, lng: 1 }] }, 'R1')), 'insert');
  assert.deepEqual(pts.map((p) => p.ts), [1, 10, 15, 20]);
  assert.equal(pts[1].lat, 38.5, 'the point kept for a time is the first');
  assert.equal(merge(pts, lateFixes({ routeId: 'R1', fixes: [{ ts: 15, lat: 38.6, lng: -121.4 }] }, 'R1')), 'none', 'the same late fix twice');
});
