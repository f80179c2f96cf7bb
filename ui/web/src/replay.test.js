// Replay's logic: node --test ui/web/src/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Clock, Track, Pager, upper, CHUNK, SPEEDS } from './replay.js';

const P = (ts, lat, lng = -121.5) => ({ ts, lat, lng });
const MIN = 60000;
const T0 = Date.parse('2026-12-03T08:00:00Z');

test('the clock: play, speed, the end, seek, a hidden tab, waiting for history', () => {
  const c = new Clock(0, 100000, 10);
  assert.equal(c.advance(0), false, 'paused: no move');
  c.play();
  assert.equal(c.advance(1000), false, 'the first frame only sets the time');
  assert.equal(c.advance(1100), true);
  assert.equal(c.t, 1000, '100 ms at 10×');
  c.setSpeed(60);
  c.advance(1200);
  assert.equal(c.t, 7000);
  c.setSpeed(0); c.setSpeed(NaN);
  assert.equal(c.speed, 60, 'no speed of 0 or NaN');
  assert.equal(c.advance(1300, false), false, 'history not read: the head waits');
  assert.equal(c.t, 7000);
  c.advance(1400);
  assert.equal(c.t, 13000, 'and goes on from the frame after, not with the time waited');
  c.advance(60000);
  assert.equal(c.t, 73000, 'a frame after a long pause counts as a second');
  c.advance(61000);
  assert.equal(c.t, 100000);
  assert.equal(c.playing, false, 'stopped at the end');
  c.play();
  assert.equal(c.t, 0, 'play at the end starts again');
  c.seek(-5); assert.equal(c.t, 0);
  c.seek(5e9); assert.equal(c.t, 100000);
  c.seek(500); c.toggle(); assert.equal(c.playing, false);
  c.toggle(); assert.equal(c.playing, true);
  assert.deepEqual(SPEEDS, [1, 5, 10, 30, 60]);
});

test('upper: binary search', () => {
  const pts = [P(1, 0), P(3, 0), P(3, 0), P(7, 0)];
  assert.equal(upper(pts, 0), 0);
  assert.equal(upper(pts, 1), 1);
  assert.equal(upper(pts, 3), 3);
  assert.equal(upper(pts, 6), 3);
  assert.equal(upper(pts, 9), 4);
  assert.equal(upper([], 9), 0);
});

// A track of one hour, fixes a minute apart from T0 + 10 min to T0 + 20
// min, latitude 38 + minutes/100.
function track() {
  const tr = new Track('R1', T0, T0 + 3600000);
  const pts = [];
  for (let m = 10; m <= 20; m++) pts.push(P(T0 + m * MIN, 38 + m / 100));
  return { tr, pts };
}

test('a track: nothing before the first fix, linear between fixes, the last fix held', () => {
  const { tr, pts } = track();
  assert.equal(tr.n, 4);
  tr.add(0, 3, pts);
  assert.equal(tr.contig, 4);
  assert.equal(tr.at(T0), false, 'before the first fix: not shown');
  assert.equal(tr.at(T0 + 10 * MIN), true);
  assert.equal(tr.lat, 38.1);
  assert.equal(tr.at(T0 + 10.5 * MIN), true);
  assert.ok(Math.abs(tr.lat - 38.105) < 1e-12, `half way: ${tr.lat}`);
  tr.at(T0 + 15.25 * MIN);
  assert.ok(Math.abs(tr.lat - 38.1525) < 1e-12);
  assert.equal(tr.i, 5);
  tr.at(T0 + 50 * MIN);
  assert.equal(tr.shown, true);
  assert.equal(tr.lat, 38.2, 'after the last fix: held there');
  // Backwards (a seek): found by binary search.
  tr.at(T0 + 12 * MIN);
  assert.equal(tr.lat, 38.12);
  assert.equal(tr.i, 2);
  tr.at(T0 + 5 * MIN);
  assert.equal(tr.shown, false);
});

test('a track: the cursor moves forward a point at a time', () => {
  const tr = new Track('R1', T0, T0 + 3600000);
  const pts = [];
  for (let s = 0; s < 3600; s++) pts.push(P(T0 + s * 1000, 38 + s / 1e5));
  tr.add(0, 3, pts);
  let steps = 0;
  const orig = tr.pts;
  tr.at(T0);
  for (let t = T0; t <= T0 + 3599000; t += 16.7 * 60) {
    const before = tr.i;
    tr.at(t);
    steps += tr.i - before;
    assert.ok(tr.i >= before);
    assert.ok(Math.abs(tr.lat - (38 + (t - T0) / 1e8)) < 1e-9);
  }
  assert.ok(steps < 3600);
  assert.equal(tr.pts, orig, 'no copy of the points');
});

test('a track: only what is read is shown; chunks in any order', () => {
  const { tr, pts } = track();
  // Chunk 1 (15–30 min) first, as after a seek there.
  tr.add(1, 1, pts.filter((p) => p.ts >= T0 + 15 * MIN));
  assert.equal(tr.contig, 0);
  assert.equal(tr.at(T0 + 16.5 * MIN), true);
  assert.ok(Math.abs(tr.lat - 38.165) < 1e-12);
  assert.equal(tr.at(T0 + 15 * MIN), true, 'the fix at the chunk start');
  assert.equal(tr.at(T0 + 15 * MIN - 1), false, 'before it, chunk 0 is not read: unknown, not shown');
  tr.at(T0 + 17 * MIN); // the cursor after the points about to come before it
  tr.add(0, 0, pts.filter((p) => p.ts < T0 + 15 * MIN));
  assert.equal(tr.contig, 2);
  assert.equal(tr.at(T0 + 14.5 * MIN), true);
  assert.ok(Math.abs(tr.lat - 38.145) < 1e-12, 'between the last fix of one chunk and the first of the next');
  tr.add(0, 0, pts); // again: nothing twice
  assert.equal(tr.pts.length, 11);
  // After the last fix with the next chunks unread: held, shown.
  const t2 = new Track('R2', T0, T0 + 3600000);
  t2.add(0, 0, [P(T0 + MIN, 38), P(T0 + 2 * MIN, 39)]);
  assert.equal(t2.at(T0 + 20 * MIN), false, 'its chunk is not read');
  t2.add(1, 1, []);
  assert.equal(t2.at(T0 + 20 * MIN), true);
  assert.equal(t2.lat, 39);
  // A next fix beyond an unread chunk: the last known fix is held.
  t2.add(3, 3, [P(T0 + 50 * MIN, 40)]);
  assert.equal(t2.at(T0 + 25 * MIN), true);
  assert.equal(t2.lat, 39);
  t2.add(2, 2, []);
  assert.equal(t2.at(T0 + 26 * MIN), true);
  assert.ok(t2.lat > 39 && t2.lat < 40, 'now on the line to it');
});

// A fake history API: fixes of each route, answered by from/to, the
// requests it had, each answered when release() is called.
function fakeAPI(fixes) {
  const reqs = [];
  const waiting = [];
  const getJSON = (url) => {
    const m = /routes\/([^/]+)\/history\?from=(\d+)&to=(\d+)/.exec(url);
    const [id, from, to] = [decodeURIComponent(m[1]), Number(m[2]), Number(m[3])];
    reqs.push({ id, from, to });
    const ans = { fixes: (fixes[id] || []).filter((f) => f.ts >= from && f.ts <= to) };
    return new Promise((resolve) => waiting.push(() => resolve(ans)));
  };
  const release = async () => {
    while (waiting.length) {
      waiting.shift()();
      await new Promise((r) => setImmediate(r));
    }
  };
  return { getJSON, reqs, release, waiting };
}

test('the pager: the head chunk first, bounded, then ahead; the first fix sought', async () => {
  const day = 24 * 3600000;
  const fixes = { R1: [], R2: [], R3: [] };
  // R1 and R2 drive 07:00–09:00 a fix a minute; R3 has nothing.
  for (let m = 7 * 60; m < 9 * 60; m++) { fixes.R1.push(P(T0 + m * MIN, 38 + m / 1e4)); fixes.R2.push(P(T0 + m * MIN + 30000, 39)); }
  const tracks = ['R1', 'R2', 'R3'].map((id) => new Track(id, T0, T0 + day));
  const api = fakeAPI(fixes);
  let loads = 0;
  const pg = new Pager(tracks, api.getJSON, { parallel: 2, onLoad: () => { loads++; pg.pump(clockT); } });
  let clockT = T0;
  pg.pump(clockT);
  assert.equal(api.reqs.length, 2, 'at most 2 at once');
  assert.ok(api.reqs.every((r) => r.to - r.from === CHUNK - 1), 'a first request reads one chunk');
  assert.equal(pg.ready(T0), false);
  assert.equal(pg.first(), null);
  // Answer until the first fix is known.
  for (let i = 0; i < 100 && pg.first() === null; i++) await api.release();
  assert.equal(pg.first(), T0 + 7 * 60 * MIN, "the window's first fix (R1's at 07:00)");
  assert.ok(api.reqs.every((r) => r.to - r.from < 8 * CHUNK), 'spans of at most 8 chunks');
  // Seeking, the quiet morning took few requests: 7 hours in spans of
  // 1, 2, 4, 8, 8… chunks (a chunk at a time, it would be 28 a route).
  const r1 = api.reqs.filter((r) => r.id === 'R1');
  assert.deepEqual(r1.slice(0, 5).map((r) => Math.round((r.to - r.from) / CHUNK)), [1, 2, 4, 8, 8]);
  assert.ok(r1.length <= 7, `${r1.length} requests of R1`);
  assert.ok(api.reqs.length <= 3 * 10, `${api.reqs.length} requests`);
  pg.seeking = false;
  const before = api.reqs.length;
  clockT = T0 + 8 * 3600000;
  pg.pump(clockT);
  for (let i = 0; i < 100 && api.waiting.length; i++) await api.release();
  assert.ok(pg.ready(clockT));
  for (const tr of tracks) {
    for (let k = -1; k <= 3; k++) assert.ok(tr.loaded(tr.chunkOf(clockT) + k), `${tr.id}: chunk ${k} from the head read`);
    // (R3, with no fix, was read through while the first fix was sought.)
    if (tr.id !== 'R3') assert.equal(tr.loaded(tr.chunkOf(clockT) + 6), false, `${tr.id}: not the whole day`);
  }
  assert.ok(api.reqs.length > before);
  assert.ok(api.reqs.slice(before).every((r) => r.to - r.from < CHUNK || !tracks.find((t) => t.id === r.id).pts.length),
    'routes with points read a chunk at a time');
  assert.equal(pg.errors, 0);
  assert.ok(loads > 0);
  const t1 = tracks[0];
  assert.equal(t1.at(clockT + 30000), true);
  assert.ok(Math.abs(t1.lat - (38 + (8 * 60 + 0.5) / 1e4)) < 1e-12);
  assert.equal(tracks[2].at(clockT), false, 'a route without history is not shown');
});

test('the pager: a window without fixes; errors count and do not stall', async () => {
  const tracks = [new Track('R1', T0, T0 + 3600000)];
  let n = 0;
  const pg = new Pager(tracks, async () => { n++; throw new Error('boom'); }, { onLoad: () => pg.pump(T0) });
  pg.pump(T0);
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  assert.equal(pg.errors, n);
  assert.ok(pg.ready(T0));
  assert.equal(pg.first(), Infinity, 'no fix in the window');
  const t2 = [new Track('R1', T0, T0 + 3600000)];
  const pg2 = new Pager(t2, async () => ({ fixes: [] }), { onLoad: () => pg2.pump(T0) });
  pg2.pump(T0);
  pg2.close();
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  assert.equal(t2[0].contig, 0, 'answers after close are dropped');
});

test("the pager asks for a chunk up to its last ms (trail.js loadHistory's pages)", async () => {
  const tr = new Track('R1', T0, T0 + CHUNK);
  const seen = [];
  const getJSON = async (url) => { seen.push(url); return { fixes: [] }; };
  const pg = new Pager([tr], getJSON);
  pg.pump(T0);
  await new Promise((r) => setImmediate(r));
  assert.equal(seen.length, 1);
  assert.match(seen[0], new RegExp(`^api/v1/routes/R1/history\\?from=${T0}&to=${T0 + CHUNK - 1}$`));
});

test('after a seek, a route quiet for long shows at its last fix before the head, read back in doubling spans', async () => {
  const day = 24 * 3600000;
  // R1 drives 07:00–08:00 (a fix a minute), then nothing until 12:00.
  // R2 starts at 11:00. R3 drives through the morning, a fix a minute.
  const fixes = { R1: [], R2: [], R3: [] };
  for (let m = 7 * 60; m <= 8 * 60; m++) fixes.R1.push(P(T0 + m * MIN, 38 + m / 1e4));
  for (let m = 12 * 60; m < 13 * 60; m++) fixes.R1.push(P(T0 + m * MIN, 37));
  for (let m = 11 * 60; m < 12 * 60; m++) fixes.R2.push(P(T0 + m * MIN, 39));
  for (let m = 6 * 60; m < 13 * 60; m++) fixes.R3.push(P(T0 + m * MIN, 36 + m / 1e4));
  const tracks = ['R1', 'R2', 'R3'].map((id) => new Track(id, T0, T0 + day));
  const api = fakeAPI(fixes);
  let t = T0;
  const pg = new Pager(tracks, api.getJSON, { parallel: 4, onLoad: () => pg.pump(t) });
  // The window's first fix is found (R3's, at 06:00), reading from its start.
  pg.pump(t);
  for (let i = 0; i < 200 && pg.first() === null; i++) await api.release();
  assert.equal(pg.first(), T0 + 6 * 60 * MIN);
  pg.seeking = false;
  for (let i = 0; i < 50 && api.waiting.length; i++) await api.release();
  // A scrub to 10:30: R1's last fix (08:00) is 2.5 hours before the head.
  t = T0 + 10.5 * 60 * MIN;
  const before = api.reqs.length;
  pg.lookBack();
  pg.pump(t);
  for (let i = 0; i < 200 && api.waiting.length; i++) await api.release();
  const [r1, r2, r3] = tracks;
  assert.equal(r1.at(t), true, 'R1 is shown');
  assert.equal(r1.lat, 38 + 480 / 1e4, 'at its last fix before the head (08:00)');
  assert.equal(r3.at(t), true, 'R3, busy, at the head');
  assert.ok(Math.abs(r3.lat - (36 + 630 / 1e4)) < 1e-12);
  assert.equal(r2.at(t), false, 'R2 has no fix before the head: not shown');
  for (const tr of tracks) assert.equal(tr.back, false, `${tr.id}: the look-back is over`);
  // Bounded: R1 read back from the head in spans of 1, 2, 4… chunks, to
  // its 08:00 fix, not the whole morning; R3 needed nothing beyond the
  // head's reads; R2 was read through up to its first fix while the
  // window's first fix was sought (its contig), so nothing back.
  const back = (id) => api.reqs.slice(before).filter((r) => r.id === id && r.to < tracks[0].from + tracks[0].chunkOf(t - CHUNK) * CHUNK);
  const spans = back('R1').map((r) => [Math.round((r.from - T0) / CHUNK), Math.round((r.to + 1 - T0) / CHUNK)]);
  assert.ok(spans.length >= 2, `R1 read back: ${JSON.stringify(spans)}`);
  let top = r1.chunkOf(t) - 1; // the head's reads take the head's chunk and the one before
  spans.forEach(([from, to], k) => {
    assert.equal(to, top, `read ${k} goes on down from the last: ${JSON.stringify(spans)}`);
    assert.ok(to - from <= 2 ** k, `read ${k} spans at most ${2 ** k} chunks: ${JSON.stringify(spans)}`);
    top = from;
  });
  assert.ok(back('R1').every((r) => r.to >= T0 + 7 * 60 * MIN), 'none below its first fix');
  assert.deepEqual(back('R3'), []);
  assert.deepEqual(back('R2'), []);
  assert.ok(api.reqs.length - before <= 3 * 5 + 3, `${api.reqs.length - before} requests after the seek`);
  // Playing on from there moves R1 on, from its 08:00 fix, not the head's.
  assert.equal(r1.at(t + 60000), true);
  assert.equal(r1.lat, 38 + 480 / 1e4, 'held until its next fix (12:00)');
});
