// The export buttons' names and windows: node --test ui/web/src/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { localDate, safeName, trailFile, trailURL, dayWindow, eventsURL, cutNote } from './exportfile.js';

const at = (y, mo, d, h = 12, mi = 0) => new Date(y, mo - 1, d, h, mi).getTime();

test('a trail file is named by route and day', () => {
  const now = at(2026, 12, 3, 15);
  assert.equal(trailFile('CX07', at(2026, 12, 3, 0), now + 600000, now, 'gpx'), 'CX07-2026-12-03.gpx');
  assert.equal(trailFile('CX07', at(2026, 12, 3, 14), now + 600000, now, 'geojson'), 'CX07-2026-12-03.geojson');
  assert.equal(trailFile('CX07', at(2026, 12, 1, 8), at(2026, 12, 2, 20), now, 'csv'), 'CX07-2026-12-01_2026-12-02.csv');
  assert.equal(localDate(at(2026, 1, 9)), '2026-01-09');
});

test('a route code from the network makes a plain file name', () => {
  assert.equal(safeName('CX07'), 'CX07');
  assert.equal(safeName('../../etc/passwd'), 'etc_passwd');
  assert.ok(!/[/\\<>:"|?*\s]/.test(safeName('a/b\\c<d>e:"f|g?h*i j')));
  assert.ok(!safeName('../x').startsWith('.'));
  assert.equal(safeName(''), 'route');
  assert.equal(safeName(null), 'route');
  assert.equal(safeName('x'.repeat(200)).length, 60);
});

test('the addresses of the downloads', () => {
  assert.equal(trailURL('R 1/2', 1000.4, 2000.2, 'gpx'), 'api/v1/routes/R%201%2F2/history?from=1000&to=2001&format=gpx');
  const w = dayWindow(at(2026, 12, 3, 15, 30));
  assert.equal(w.from, at(2026, 12, 3, 0));
  assert.equal(w.to, at(2026, 12, 4, 0));
  assert.equal(eventsURL(w), `api/v1/events/export?from=${w.from}&to=${w.to}&format=csv`);
});

test('an export cut short says so', () => {
  const h = (o) => (k) => o[k] ?? null;
  const fmt = () => '14:02';
  assert.equal(cutNote(h({ 'X-Export-Complete': 'true' }), fmt), '');
  assert.equal(cutNote(h({}), fmt), '');
  assert.match(cutNote(h({ 'X-Export-Complete': 'false', 'X-Export-Cut': 'scan', 'X-Export-Through': '2026-12-03T14:02:00Z' }), fmt), /ends at 14:02/);
  assert.match(cutNote(h({ 'X-Export-Complete': 'false', 'X-Export-Cut': 'scan' }), fmt), /more events than one export reads\.$/);
  assert.match(cutNote(h({ 'X-Export-Complete': 'false', 'X-Export-Cut': 'pruned' }), fmt), /no longer kept/);
  assert.match(cutNote(h({ 'X-Export-Complete': 'false', 'X-Export-Cut': 'rows' }), fmt), /more rows/);
});
