// One depot's picture and its events (depotstate.js): node --test ui/web/src/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newDepotState, loadSnapshot, applyEvent, applyInOrder, admitSeq, counts, openOffers } from './depotstate.js';

const env = (seq, type, payload, timestamp = '2026-12-02T09:00:00Z') => ({ seq, id: `evt_${seq}`, type, payload, timestamp });
const route = (seq, p) => env(seq, 'route:update', p);

test('a route delta merges into the route, with only known keys of their types', () => {
  const st = newDepotState('D1');
  applyEvent(st, route(1, { routeId: 'R1', routeCode: 'CX01', statusColor: 'GREEN', totalStops: 10, completedStops: 2 }));
  // A delta as the network may send it: __proto__ as an own key (JSON.parse
  // makes one), a key the page does not know, a wrong type.
  const p = JSON.parse('{"routeId":"R1","completedStops":5,"__proto__":{"polluted":true},"onclick":"x","statusColor":"RED<b>","currentLat":"1"}');
  assert.deepEqual(applyEvent(st, route(2, p)), { kind: 'route', id: 'R1' });
  const r = st.routes.get('R1');
  assert.deepEqual(Object.keys(r).sort(), ['completedStops', 'currentLat', 'routeCode', 'routeId', 'statusColor', 'totalStops']);
  assert.equal(r.completedStops, 5);
  assert.equal(r.totalStops, 10, 'a field the delta does not carry is kept');
  assert.equal(r.routeCode, 'CX01');
  assert.equal(r.statusColor, null, 'a colour that is no colour');
  assert.equal(r.currentLat, null);
  assert.equal(Object.getPrototypeOf(r), Object.prototype);
  assert.equal({}.polluted, undefined);
  assert.equal(applyEvent(st, route(3, { routeId: '' })), null, 'no id, no route');
  assert.equal(applyEvent(st, route(4, { routeId: 7 })), null);
  assert.equal(st.routes.size, 1);
});

test('routes count by colour; anything else is UNKNOWN', () => {
  const st = newDepotState('D1');
  const colours = ['GREEN', 'GREEN', 'YELLOW', 'RED', 'PURPLE', undefined, 'red'];
  colours.forEach((c, i) => applyEvent(st, route(i + 1, { routeId: `R${i}`, statusColor: c })));
  assert.deepEqual(counts(st), { GREEN: 2, YELLOW: 1, RED: 1, UNKNOWN: 3 });
  applyEvent(st, route(9, { routeId: 'R0', statusColor: 'RED' }));
  assert.deepEqual(counts(st), { GREEN: 1, YELLOW: 1, RED: 2, UNKNOWN: 3 });
});

test('duplicates are ignored and counted; a skip is a gap; an unknown type still moves the seq', () => {
  const st = newDepotState('D1');
  st.lastSeq = 10;
  const seen = [];
  for (const s of [11, 12, 12, 11, 10, 13, 16, 15, 17]) {
    const { admit } = applyInOrder(st, route(s, { routeId: 'R1', completedStops: s }));
    if (admit === 'next') seen.push(s);
  }
  assert.deepEqual(seen, [11, 12, 13, 16, 17]);
  assert.equal(st.dupes, 4);
  assert.equal(st.gaps, 1);
  assert.equal(st.events, 5);
  assert.equal(st.routes.get('R1').completedStops, 17);
  assert.deepEqual(applyInOrder(st, env(18, 'route:reassigned', {})), { admit: 'next', change: null });
  assert.deepEqual(applyInOrder(st, env(19, 'no:such', {})), { admit: 'next', change: null });
  assert.equal(st.lastSeq, 19);
  assert.equal(st.gaps, 1);
  for (const bad of [null, [], {}, env(0, 'route:update', {}), env(1.5, 'route:update', {}), env('20', 'route:update', {})]) {
    assert.equal(applyInOrder(st, bad).admit, 'bad');
  }
  assert.equal(st.lastSeq, 19);
});

test('the first event of a depot with no known seq is no gap', () => {
  const st = newDepotState('D9');
  assert.equal(admitSeq(st, 5000), 'next');
  assert.equal(st.gaps, 0);
  assert.equal(admitSeq(st, 5002), 'next');
  assert.equal(st.gaps, 1);
});

test('a payload that is no object is not applied, but its seq counts', () => {
  const st = newDepotState('D1');
  assert.deepEqual(applyInOrder(st, env(1, 'route:update', 'R1')), { admit: 'next', change: null });
  assert.equal(st.routes.size, 0);
  assert.equal(st.lastSeq, 1);
});

test('a rescue is raised, acknowledged and resolved', () => {
  const st = newDepotState('D1');
  const alert = { rescueId: 'S1', struggleRoute: { routeId: 'R1', routeCode: 'CX01' } };
  assert.deepEqual(applyEvent(st, env(1, 'rescue:alert', alert)), { kind: 'rescue', id: 'S1', raised: alert });
  assert.deepEqual(st.rescues.get('S1'), { rescueId: 'S1', routeId: 'R1', state: 'open', seq: 1, alert, createdAt: '2026-12-02T09:00:00Z' });
  applyEvent(st, env(2, 'rescue:updated', { rescueId: 'S1', state: 'acknowledged' }));
  assert.equal(st.rescues.get('S1').state, 'acknowledged');
  assert.deepEqual(applyEvent(st, env(3, 'rescue:updated', { rescueId: 'S9', state: 'resolved' })), { kind: 'rescue', id: 'S9' });
  applyEvent(st, env(4, 'rescue:updated', { rescueId: 'S1', state: 'resolved' }));
  assert.equal(st.rescues.size, 0);
});

test('offers: offered, answered, counted while open and unexpired', () => {
  const st = newDepotState('D1');
  const now = Date.parse('2026-12-02T09:00:00Z');
  const offer = (id, exp) => ({ vtoId: id, routeCode: 'CX01', driverName: 'Ana', state: 'open', offeredAt: '2026-12-02T08:59:00Z', expiresAt: exp, extra: '<b>' });
  applyEvent(st, env(1, 'vto:offer', offer('V1', '2026-12-02T09:29:00Z')));
  applyEvent(st, env(2, 'vto:offer', offer('V2', '2026-12-02T09:29:00Z')));
  applyEvent(st, env(3, 'vto:offer', offer('V3', '2026-12-02T08:59:30Z'))); // past its expiry already
  assert.equal(st.offers.get('V1').extra, undefined);
  assert.equal(openOffers(st, now), 2);
  assert.deepEqual(applyEvent(st, env(4, 'vto:accepted', { vtoId: 'V2', state: 'accepted' })), { kind: 'offer', id: 'V2' });
  assert.equal(openOffers(st, now), 1);
  assert.equal(applyEvent(st, env(5, 'vto:declined', { vtoId: 'V7', state: 'declined' })), null, 'an offer not known');
});

test('presence, devices and the heartbeat', () => {
  const st = newDepotState('D1');
  assert.deepEqual(applyEvent(st, env(1, 'driver:presence', { driverId: 'D1', state: 'online', since: 'x', more: 1 })), { kind: 'driver', id: 'D1' });
  assert.deepEqual(st.presence.get('D1'), { state: 'online', since: 'x' });
  applyEvent(st, env(2, 'driver:device', { driverId: 'D1', batt: 50 }));
  assert.equal(st.devices.get('D1').batt, 50);
  assert.equal(applyEvent(st, env(3, 'driver:presence', { state: 'online' })), null);
  const hb = { version: '1' };
  assert.deepEqual(applyEvent(st, env(4, 'system:status', hb)), { kind: 'status', status: hb });
  assert.equal(st.heartbeat, hb);
});

test('a snapshot replaces the picture, keeping only what checks', () => {
  const st = newDepotState('D1');
  applyEvent(st, route(1, { routeId: 'OLD' }));
  loadSnapshot(st, JSON.parse(`{
    "routes": [{"routeId":"R1","statusColor":"GREEN","__proto__":{"x":1}}, {"routeCode":"no id"}, "R2", null],
    "rescues": [{"rescueId":"S1","state":"open"}, {"state":"no id"}],
    "offers": [{"vtoId":"V1","state":"open","onclick":"x"}],
    "presence": {"D1": {"state":"online"}, "D2": "online", "__proto__": {"state":"silent"}},
    "devices": {"D1": {"batt": 80}, "D3": [1]}}`));
  assert.deepEqual([...st.routes.keys()], ['R1']);
  assert.deepEqual(Object.keys(st.routes.get('R1')).sort(), ['routeId', 'statusColor']);
  assert.deepEqual([...st.rescues.keys()], ['S1']);
  assert.equal(st.offers.get('V1').onclick, undefined);
  assert.deepEqual([...st.presence.keys()].sort(), ['D1', '__proto__']);
  assert.deepEqual([...st.devices.keys()], ['D1']);
  assert.equal({}.state, undefined);
  loadSnapshot(st, {});
  assert.equal(st.routes.size + st.rescues.size + st.offers.size + st.presence.size + st.devices.size, 0);
});
