// The route drawer's timeline: node --test ui/web/src/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { entry, Journal, firstSeqSince, readSince, TYPES } from './timeline.js';

const T0 = Date.parse('2026-12-03T08:00:00Z');
const env = (seq, type, payload, ts = T0 + seq * 1000) => ({ seq, type, payload, timestamp: new Date(ts).toISOString() });

test('entry: what concerns the route or its driver, as text', () => {
  const alert = env(1, 'rescue:alert', { rescueId: 'X', struggleRoute: { routeId: 'R1', routeCode: 'CX01', behindSchedule: 7 },
    rescueDriver: { driverId: 'D2', driverName: 'Ben Okafor' } });
  assert.equal(entry(alert, 'R1', 'D1').text, 'Rescue raised: 7 stops behind; Ben Okafor asked to help');
  assert.equal(entry(alert, 'R2', 'D2').text, 'Asked to rescue CX01', "the rescuer's route");
  assert.equal(entry(alert, 'R3', 'D3'), null);
  assert.equal(entry(env(2, 'rescue:updated', { routeId: 'R1', state: 'acknowledged', by: 'ana' }), 'R1', 'D1').text, 'Rescue acknowledged by ana');
  assert.equal(entry(env(3, 'vto:offer', { vtoId: 'V', routeId: 'R2', driverId: 'D2', reason: 'light' }), 'R2', 'D2').text, 'VTO offered: light');
  assert.equal(entry(env(4, 'vto:declined', { vtoId: 'V', driverId: 'D2', by: 'D2' }), 'R2', 'D2').text, 'VTO declined by D2');
  assert.equal(entry(env(4, 'vto:declined', { vtoId: 'V', driverId: 'D2' }), 'R1', 'D1'), null);
  const re = env(5, 'route:reassigned', { routeId: 'R1', routeCode: 'CX01', fromDriverId: 'D1', toDriverId: 'D3', by: 'ana' });
  assert.equal(entry(re, 'R1', 'D3').text, 'Reassigned from D1 to D3 by ana');
  assert.equal(entry(re, 'R9', 'D1').text, 'CX01 moved to D3');
  const pr = env(6, 'driver:presence', { driverId: 'D1', state: 'silent', since: '2026-12-03T08:00:06Z' });
  assert.deepEqual(entry(pr, 'R1', 'D1'), { seq: 6, ts: T0 + 6000, kind: 'presence', text: 'Driver silent' });
  assert.equal(entry(pr, 'R1', ''), null, 'a route without a driver has no presence');
  assert.equal(entry(env(7, 'route:update', { routeId: 'R1' }), 'R1', 'D1'), null, 'moves are the trail, not the timeline');
  assert.equal(entry(env(8, 'vto:offer', 'x'), 'R1', 'D1'), null);
  assert.equal(entry(null, 'R1', 'D1'), null);
  // An empty id in an event matches no route without one.
  assert.equal(entry(env(9, 'vto:offer', { routeId: '', driverId: '' }), '', ''), null);
});

test('Journal keeps each event once, and only those a timeline shows', () => {
  const j = new Journal();
  const pr = env(6, 'driver:presence', { driverId: 'D1', state: 'online' });
  assert.equal(j.add(pr), true);
  assert.equal(j.add(pr), false, 'read again (live, then the read back of the day)');
  assert.equal(j.add(env(7, 'route:update', { routeId: 'R1' })), false);
  assert.equal(j.add(env(3, 'vto:offer', { routeId: 'R1', driverId: 'D1' })), true);
  assert.equal(j.add({ type: 'vto:offer', payload: {} }), false, 'no seq');
  assert.deepEqual(j.entries('R1', 'D1').map((e) => e.seq), [3, 6], 'in seq order whatever the order read');
  assert.deepEqual(j.entries('R1', 'D1', T0 + 5000).map((e) => e.seq), [6], 'since');
  const small = new Journal(2);
  for (const s of [5, 1, 9]) small.add(env(s, 'driver:presence', { driverId: 'D1', state: 'online' }));
  assert.deepEqual(small.entries('R1', 'D1').map((e) => e.seq), [5, 9], 'the oldest goes first');
});

// A log of n events, one a minute from T0, served as GET /events does.
function fakeLog(n, oldest = 1) {
  const log = [];
  for (let s = oldest; s <= n; s++) log.push(env(s, s % 10 === 0 ? 'driver:presence' : 'route:update', { driverId: 'D1', routeId: 'R1', state: 'online' }, T0 + s * 60000));
  const calls = [];
  const getEvents = async (after, limit) => {
    calls.push([after, limit]);
    if (after > 0 && oldest > after + 1) throw new Error('410: pruned'); // as the server answers
    return log.filter((e) => e.seq > after).slice(0, limit);
  };
  // GET /events?types=: at most scan events read through per request.
  const getTyped = (scan) => async (after) => {
    calls.push([after, 'typed']);
    if (after > 0 && oldest > after + 1) throw new Error('410: pruned');
    const read = log.filter((e) => e.seq > after).slice(0, scan);
    return { events: read.filter((e) => TYPES.has(e.type)), scannedTo: read.length ? read[read.length - 1].seq : after };
  };
  return { getEvents, getTyped, calls };
}

test('firstSeqSince finds the first event of the day by binary search', async () => {
  const { getEvents, calls } = fakeLog(1000);
  const after = await firstSeqSince(getEvents, T0 + 500 * 60000 - 1, 1000);
  assert.equal(after, 499, 'seq 500 is the first at or after the time');
  assert.ok(calls.length < 15, `${calls.length} requests`);
  assert.equal(await firstSeqSince(getEvents, T0, 1000), 0, 'the whole log is newer');
  assert.equal(await firstSeqSince(getEvents, T0 + 5000 * 60000, 1000), 999, 'nothing is: read after the last');
  assert.equal(await firstSeqSince(async () => [], T0, 0), 0, 'an empty log');
  const pruned = fakeLog(1000, 400); // the retention pruned seq 1..399
  assert.equal(await firstSeqSince(pruned.getEvents, T0 + 450 * 60000, 1000), 449);
  assert.equal(await firstSeqSince(pruned.getEvents, T0, 1000), 399, 'all of a pruned log is newer: from its oldest');
  const j = new Journal();
  assert.equal(await readSince(pruned.getTyped(100), j, 399, 1000), 1000);
  assert.equal(j.entries('R1', 'D1')[0].seq, 400);
});

test('readSince reads the timeline events of the day through the log, request by request', async () => {
  const { getTyped, calls } = fakeLog(1000);
  const j = new Journal();
  assert.equal(await readSince(getTyped(100), j, 499, 1000), 1000);
  assert.equal(j.entries('R1', 'D1').length, 51, 'every tenth event, 500..1000');
  assert.equal(calls.length, 6, '501 events: six stretches of at most 100');
  const k = new Journal();
  assert.equal(await readSince(getTyped(100), k, 0, 1000, { maxRequests: 3 }), 300, 'cut short: says where it got to');
  assert.equal(k.entries('R1', 'D1').length, 30);
  const e = new Journal();
  assert.equal(await readSince(getTyped(100), e, 1000, 1000), 1000, 'nothing after the last: no request');
  assert.equal(await readSince(async () => ({ events: 'x' }), e, 0, 1000), 0, 'a strange answer ends it');
  assert.equal(await readSince(async () => ({ events: [], scannedTo: 0 }), e, 0, 1000), 0, 'no progress ends it');
});
