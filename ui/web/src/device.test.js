import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deviceLabel, rowKey } from './table.js';

test('device health becomes a short badge and a full tooltip', () => {
  assert.equal(deviceLabel(null), null);
  assert.deepEqual(deviceLabel({ app: 'owntracks', batt: 81.4, battState: 'unplugged', acc: 12.2, conn: 'mobile' }),
    { text: '81%', title: 'OwnTracks · battery 81 % · accurate to 12 m · on mobile', low: false, charging: false });
  assert.equal(deviceLabel({ app: 'traccar', batt: 12, battState: 'unplugged' }).low, true);
  assert.equal(deviceLabel({ app: 'traccar', batt: 12, battState: 'charging' }).low, false);
  assert.equal(deviceLabel({ app: 'driverapp' }).text, 'driver app');
});

test('values from the network are only ever text, and unknown ones are not shown', () => {
  const d = deviceLabel({ app: '<img src=x onerror=alert(1)>', batt: '50', conn: '<b>', battState: {} });
  assert.equal(d.text, '');
  assert.equal(d.title, 'handheld');
});

test('a change of device health rebuilds the row', () => {
  const r = { routeId: 'R1', statusColor: 'GREEN' };
  assert.notEqual(rowKey(r, null, { app: 'owntracks', batt: 81 }), rowKey(r, null, { app: 'owntracks', batt: 80 }));
  assert.equal(rowKey(r, null, { app: 'owntracks', batt: 81, acc: 5 }), rowKey(r, null, { app: 'owntracks', batt: 81, acc: 5 }));
});
