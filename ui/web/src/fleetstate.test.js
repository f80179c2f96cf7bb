// The fleet's picture (fleetstate.js): node --test ui/web/src/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Fleet, health, worstFirst, totals, STALE_MS } from './fleetstate.js';

const T0 = Date.parse('2026-12-02T09:00:00Z');
const iso = (ms) => new Date(ms).toISOString();
const ev = (seq, type, payload, at = T0) => ({ seq, id: `evt_${seq}`, type, payload, timestamp: iso(at) });
const msg = (depot, event) => ({ depot, event });
const route = (id, colour, extra = {}) => ({ routeId: id, routeCode: id, statusColor: colour, ...extra });

function snapshot() {
  return {
    seq: 100, serverTime: T0, instance: 'hq-1',
    depots: [
      { depot: 'D1', lastHeard: iso(T0 - 1000), lastEventAt: iso(T0 - 1100), lastSeq: 50,
        counts: { GREEN: 99 }, // the page counts the routes it holds, not this
        routes: [route('R1', 'GREEN'), route('R2', 'YELLOW')], rescues: [], offers: [], presence: {}, devices: {} },
      { depot: 'D2', lastHeard: iso(T0 - 5000), lastEventAt: iso(T0 - 5000), lastSeq: 7,
        routes: [route('S1', 'RED')], rescues: [{ rescueId: 'X1', routeId: 'S1', state: 'open' }],
        offers: [{ vtoId: 'V1', state: 'open', expiresAt: iso(T0 + 60000) }] },
      { depot: 'D1', routes: [] },              // a second D1: the first one counts
      { depot: '', routes: [route('Z', 'RED')] }, // no id
      'D4',
    ],
  };
}

test('a snapshot gives every depot, its routes, seq and times', () => {
  const f = new Fleet();
  f.load(snapshot());
  assert.deepEqual([...f.depots.keys()], ['D1', 'D2']);
  assert.equal(f.lastId, 100);
  assert.equal(f.instance, 'hq-1');
  const d1 = f.depots.get('D1');
  assert.equal(d1.lastSeq, 50);
  assert.equal(d1.lastHeard, T0 - 1000);
  assert.deepEqual(health(d1, T0).counts, { GREEN: 1, YELLOW: 1, RED: 0, UNKNOWN: 0 });
  const h2 = health(f.depots.get('D2'), T0);
  assert.equal(h2.rescues, 1);
  assert.equal(h2.offers, 1);
  for (const bad of [null, {}, { seq: 1 }, { seq: '1', depots: [] }, { seq: -1, depots: [] }]) {
    assert.throws(() => f.load(bad));
  }
  assert.equal(f.depots.size, 2, 'a refused answer changes nothing');
});

test('stream messages: replays, duplicates and gaps per depot', () => {
  const f = new Fleet();
  f.load(snapshot());
  const now = T0 + 2000;
  // An event the snapshot already holds (depot seq 50): a duplicate.
  assert.equal(f.take(101, msg('D1', ev(50, 'route:update', { routeId: 'R1', statusColor: 'RED' })), now).admit, 'dupe');
  assert.equal(f.depots.get('D1').routes.get('R1').statusColor, 'GREEN');
  const r = f.take(102, msg('D1', ev(51, 'route:update', { routeId: 'R1', statusColor: 'RED' }, T0 + 1500)), now);
  assert.deepEqual(r.change, { kind: 'route', id: 'R1' });
  assert.equal(r.depot.routes.get('R1').statusColor, 'RED');
  assert.equal(f.lastDelay, 500);
  // The same stream message again (SSE and a poll overlapping): a replay.
  assert.equal(f.take(102, msg('D1', ev(51, 'route:update', { routeId: 'R1' })), now), null);
  assert.equal(f.take(90, msg('D1', ev(52, 'route:update', { routeId: 'R1' })), now), null);
  // D2 skips seq 8: applied, counted.
  f.take(110, msg('D2', ev(9, 'rescue:updated', { rescueId: 'X1', state: 'resolved' })), now);
  assert.equal(f.depots.get('D2').rescues.size, 0);
  assert.equal(f.depots.get('D2').gaps, 1);
  assert.deepEqual({ events: f.events, dupes: f.dupes, gaps: f.gaps, replays: f.replays, lastId: f.lastId },
    { events: 2, dupes: 1, gaps: 1, replays: 2, lastId: 110 });
});

test('a depot that joins after the snapshot appears; what is no event is dropped', () => {
  const f = new Fleet();
  f.load(snapshot());
  f.take(101, msg('D3', ev(4000, 'route:update', route('Q1', 'GREEN'))), T0);
  assert.equal(f.depots.get('D3').routes.get('Q1').statusColor, 'GREEN');
  assert.equal(f.gaps, 0, 'nothing was known of D3: no gap');
  for (const [id, m] of [[102, null], [103, { depot: 'D9' }], [104, { depot: 5, event: ev(1, 'route:update', {}) }],
    [105, msg('x'.repeat(201), ev(1, 'route:update', {}))], [106, msg('D9', { seq: 'one', type: 'route:update', payload: {} })],
    [NaN, msg('D1', ev(51, 'route:update', {}))], [0, msg('D1', ev(51, 'route:update', {}))]]) {
    assert.equal(f.take(id, m, T0), null);
  }
  assert.equal(f.dropped, 7);
  assert.equal(f.depots.has('D9'), false);
  assert.equal(f.lastId, 106, 'a message that is not an event still moves the stream on');
  f.skipTo(120);
  f.skipTo(110);
  f.skipTo('130');
  assert.equal(f.lastId, 120);
});

test('stale past a minute unheard; catching up while old events arrive', () => {
  const f = new Fleet();
  f.load(snapshot());
  const d1 = f.depots.get('D1');
  assert.equal(health(d1, T0 + 30000).stale, false);
  assert.equal(health(d1, T0 - 1000 + STALE_MS + 1).stale, true);
  // Its uplink returns 5 minutes later: the backlog drains, events from
  // 5 minutes ago arrive now.
  const back = T0 + 5 * 60000;
  f.take(101, msg('D1', ev(51, 'system:status', {}, T0 + 1000)), back);
  let h = health(d1, back);
  assert.equal(h.stale, false);
  assert.equal(h.catchingUp, true);
  assert.equal(h.lag, back - (T0 + 1000));
  // Caught up: the newest event is from now.
  f.take(102, msg('D1', ev(52, 'system:status', {}, back + 900)), back + 1000);
  h = health(d1, back + 1000);
  assert.equal(h.catchingUp, false);
  assert.equal(health(f.newDepot('N'), T0).stale, true, 'never heard: stale');
});

test('worst first: rescues, then silent, then behind, then catching up, then by id', () => {
  const f = new Fleet();
  const d = (id, routes, heard, lastEventAt = heard) => ({ depot: id, routes, lastHeard: iso(heard), lastEventAt: iso(lastEventAt) });
  f.load({ seq: 1, depots: [
    d('A-ok', [route('a', 'GREEN')], T0),
    d('B-yellow2', [route('b1', 'YELLOW'), route('b2', 'YELLOW')], T0),
    d('C-red', [route('c', 'RED')], T0),
    d('D-stale', [route('d', 'GREEN')], T0 - 2 * STALE_MS),
    d('E-yellow1', [route('e', 'YELLOW')], T0),
    d('F-behind', [route('f', 'GREEN')], T0, T0 - 10 * 60000),
    d('0-ok', [route('g', 'GREEN')], T0),
  ] });
  const rows = worstFirst(f.depots.values(), T0);
  assert.deepEqual(rows.map(([x]) => x.depot), ['C-red', 'D-stale', 'B-yellow2', 'E-yellow1', 'F-behind', '0-ok', 'A-ok']);
  const t = totals(rows);
  assert.deepEqual({ ...t }, { GREEN: 4, YELLOW: 3, RED: 1, UNKNOWN: 0, routes: 8, rescues: 0, offers: 0, stale: 1, catchingUp: 1, depots: 7 });
});

test('last heard is when the stream took the event, not when the page read it', () => {
  const f = new Fleet();
  f.load(snapshot());
  // A replay after a reconnect: the event was taken by the stream 40 s ago.
  f.take(101, { depot: 'D1', at: iso(T0 - 40000), event: ev(51, 'route:update', route('R1', 'GREEN'), T0 - 40000) }, T0);
  assert.equal(f.depots.get('D1').lastHeard, T0 - 1000); // the snapshot's newer time stands
  f.take(102, { depot: 'D2', at: iso(T0 - 2000), event: ev(8, 'route:update', route('S1', 'RED'), T0 - 2500) }, T0);
  assert.equal(f.depots.get('D2').lastHeard, T0 - 2000);
  // A time from the future (a skewed server) is taken as now.
  f.take(103, { depot: 'D2', at: iso(T0 + 60000), event: ev(9, 'route:update', route('S1', 'RED')) }, T0);
  assert.equal(f.depots.get('D2').lastHeard, T0);
});
