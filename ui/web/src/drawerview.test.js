// What the route drawer shows: node --test ui/web/src/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { words, routeFromHash, routeKey, deviceKey, lastFix } from './drawerview.js';

test('routeFromHash reads #route=ID, encoded or not', () => {
  assert.equal(routeFromHash('#route=R12'), 'R12');
  assert.equal(routeFromHash('#route=R%2012%3Cb%3E'), 'R 12<b>');
  assert.equal(routeFromHash('#route=%E0%A4%A'), '', 'a broken encoding is no route');
  assert.equal(routeFromHash('#route='), '');
  assert.equal(routeFromHash('#other=R1'), '');
  assert.equal(routeFromHash(''), '');
  assert.equal(routeFromHash(undefined), '');
});

test('words: ages for people', () => {
  const now = 1_000_000_000;
  assert.equal(words(now - 3000, now), 'just now');
  assert.equal(words(now - 42000, now), '42s ago');
  assert.equal(words(now - 7 * 60000, now), '7m ago');
  assert.equal(words(NaN, now), '—');
});

test('routeKey changes with what the drawer shows, not with a move', () => {
  const r = { routeId: 'R1', routeCode: 'CX01', driverId: 'D1', driverName: 'Ana', statusColor: 'YELLOW', completedStops: 4, totalStops: 9,
    behindSchedule: 2, currentLat: 38.5, currentLng: -121.5, lastUpdated: '2026-12-03T08:00:00Z' };
  const k = routeKey(r);
  assert.equal(routeKey({ ...r, currentLat: 38.6, lastUpdated: '2026-12-03T08:00:01Z' }), k, 'a fix: the age ticks, nothing is rebuilt');
  for (const [f, v] of [['statusColor', 'RED'], ['completedStops', 5], ['driverId', 'D3'], ['driverName', 'Ben'], ['behindSchedule', 3],
    ['lastUpdated', null]]) {
    assert.notEqual(routeKey({ ...r, [f]: v }), k, f);
  }
});

test('deviceKey changes with health and presence, not with the last fix', () => {
  const dev = { driverId: 'D1', batt: 80, battState: 'unplugged', acc: 5, app: 'owntracks', conn: 'wifi', lastFix: '2026-12-03T08:00:00Z' };
  const pr = { state: 'online', since: '2026-12-03T07:00:00Z' };
  const k = deviceKey('D1', dev, pr);
  assert.equal(deviceKey('D1', { ...dev, lastFix: '2026-12-03T08:00:05Z' }, pr), k);
  assert.notEqual(deviceKey('D1', { ...dev, batt: 79 }, pr), k);
  assert.notEqual(deviceKey('D1', dev, { ...pr, state: 'silent' }), k);
  assert.notEqual(deviceKey('D2', dev, pr), k);
  assert.notEqual(deviceKey('D1', undefined, pr), k);
  assert.notEqual(deviceKey('D1', dev, undefined), k);
  assert.equal(typeof deviceKey('D1', 'junk', 7), 'string');
});

test('lastFix is the newer of the device health and the route position', () => {
  const t = (s) => Date.parse(`2026-12-03T08:00:${s}Z`);
  assert.equal(lastFix({ lastFix: '2026-12-03T08:00:01Z' }, { lastUpdated: '2026-12-03T08:00:09Z' }), t('09'));
  assert.equal(lastFix({ lastFix: '2026-12-03T08:00:09Z' }, { lastUpdated: '2026-12-03T08:00:01Z' }), t('09'));
  assert.equal(lastFix({ lastFix: '2026-12-03T08:00:09Z' }, undefined), t('09'));
  assert.equal(lastFix({}, { lastUpdated: '2026-12-03T08:00:01Z' }), t('01'));
  assert.ok(Number.isNaN(lastFix({}, {})));
});
