// Unit tests of what the page accepts from the network: node --test ui/web/src/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanRoute, statusOf, num, text, showNum } from './checks.js';

test('a route delta keeps only known fields, each of its type', () => {
  const p = JSON.parse('{"routeId":"R1","statusColor":"RED\\"><img src=x>","completedStops":"7","currentLat":38.5,' +
    '"driverName":{"x":1},"__proto__":{"polluted":true},"onclick":"alert(1)"}');
  const r = cleanRoute(p, { routeId: 'R1', totalStops: 9 });
  assert.deepEqual(Object.keys(r).sort(), ['completedStops', 'currentLat', 'driverName', 'routeId', 'statusColor', 'totalStops']);
  assert.equal(r.statusColor, null);
  assert.equal(r.completedStops, null);
  assert.equal(r.driverName, null);
  assert.equal(r.currentLat, 38.5);
  assert.equal(r.totalStops, 9); // not in the delta: kept
  assert.equal({}.polluted, undefined);
  assert.equal(Object.getPrototypeOf(r), Object.prototype);
});

test('colours, numbers and text are what they claim', () => {
  assert.equal(statusOf('RED'), 'RED');
  assert.equal(statusOf('red'), 'UNKNOWN');
  assert.equal(statusOf('<b>'), 'UNKNOWN');
  assert.equal(num(Infinity), null);
  assert.equal(num('3'), null);
  assert.equal(showNum(null), '—');
  assert.equal(text(5), '');
});

test('push health in the status bar', async () => {
  const { pushSummary } = await import('./checks.js');
  assert.equal(pushSummary(undefined), null);
  assert.equal(pushSummary({ enabled: [] }), null);
  assert.deepEqual(pushSummary({ enabled: ['webpush'], queued: 0, failingTargets: 0 }).text, 'ok');
  const bad = pushSummary({ enabled: ['fcm', 'webpush'], queued: 3, failingTargets: 1, lastSuccess: '<b>x</b>' });
  assert.equal(bad.text, '3 queued · 1 failing');
  assert.equal(bad.bad, true);
  assert.match(bad.title, /^push \(fcm, webpush\)/);
});

test('the fleet link in the status bar', async () => {
  const { upstreamSummary } = await import('./checks.js');
  assert.equal(upstreamSummary(undefined), null);
  assert.equal(upstreamSummary({ connected: true, behind: 0 }).text, 'ok');
  assert.equal(upstreamSummary({ connected: true, behind: 500 }).bad, true);
  assert.equal(upstreamSummary({ connected: false, behind: 3, error: '<img>' }).text, 'DOWN');
});
